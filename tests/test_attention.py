"""Attention and activation analysis on the tiny model: prompt mass, entropy, drift."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from compress_recover.aggregate.attention import run_attention_analysis
from compress_recover.recover.recover import run_recovery
from compress_recover.runtime import Runtime

from conftest import RECOVERY_EXAMPLES

METHODS = RECOVERY_EXAMPLES


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks") / "capitals"
    folder.mkdir()
    rows = [{"question": f"Question: What is the capital city of country {i}?\nAnswer:"} for i in range(6)]
    (folder / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_attention_analysis_measures_prompts_entropy_and_drift(tiny_checkpoint, text_dir, task_dir, tmp_path):
    adapters = {"none": ""}
    for name, raw in METHODS.items():
        out = tmp_path / name
        run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(out), method_config=raw,
                     key="recovery.methods[1]", text_dir=str(text_dir), steps=2, batch_size=2, seq_len=16,
                     runtime=Runtime(device="cpu", seed=0, threads=1))
        adapters[name] = str(out)
    table = run_attention_analysis(base_dir=str(tiny_checkpoint), checkpoint_dir=str(tiny_checkpoint),
                                   adapters=adapters, task_dir=str(task_dir), questions=4,
                                   labels={"model": "tiny", "compression": "none"}, out_csv=str(tmp_path / "a.csv"),
                                   out_png=str(tmp_path / "a.png"), runtime=Runtime(device="cpu", seed=0, threads=1))
    assert (tmp_path / "a.png").stat().st_size > 5000
    assert pd.read_csv(tmp_path / "a.csv").shape == table.shape
    value = table[table.compression == "none"].set_index(["recovery", "layer", "metric"])["value"]
    layers = sorted(table.layer.unique())
    assert layers == [0, 1]
    for layer in layers:
        # no prompt, no prompt mass; prompts attract a share of the attention
        assert value[("none", layer, "prompt_mass")] == 0 and value[("lora", layer, "prompt_mass")] == 0
        assert 0 < value[("prompt_tuning", layer, "prompt_mass")] < 1
        assert 0 < value[("idp", layer, "prompt_mass")] < 1
        # the compressed model is the base model here: no drift; the prompt moves the hidden states
        assert value[("none", layer, "cosine_distance")] == pytest.approx(0, abs=1e-5)
        assert value[("prompt_tuning", layer, "cosine_distance")] > 1e-4
        assert value[("none", layer, "attention_entropy")] > 0
    # base rows are there too, with zero distance to themselves
    assert (table[(table.compression == "base")].query("metric == 'cosine_distance'").value.abs() < 1e-6).all()
