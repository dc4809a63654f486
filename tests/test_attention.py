"""Attention and activation analysis on the tiny model: prompt mass, entropy, drift."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from compress_recover.evaluate.attention import layer_metrics, run_attention_analysis
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


@pytest.mark.slow
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


def test_layer_metrics_on_uniform_attention():
    # every input token attends uniformly to all K positions, P of them prompt positions:
    # entropy = log K nats, prompt mass = P / K
    import math

    import torch

    heads, length, dim = 3, 5, 4
    for prompt in (0, 1, 4, 8):
        k = prompt + length
        attn = torch.full((1, heads, length, k), 1.0 / k)
        hidden = torch.randn(1, k, dim, generator=torch.Generator().manual_seed(prompt))
        out = layer_metrics(attn, hidden, hidden, length)
        assert out["attention_entropy"] == pytest.approx(math.log(k), rel=1e-5)
        assert out["prompt_mass"] == pytest.approx(prompt / k, rel=1e-5)
        assert out["cosine_distance"] == pytest.approx(0.0, abs=1e-6)   # the same hidden states as the base
        h = hidden[0, -length:]
        assert out["hidden_norm"] == pytest.approx(h.norm(dim=-1).mean().item(), rel=1e-5)
    # causal and uniform: input token i sees the P prompt positions and tokens 0..i
    prompt = 3
    k = prompt + length
    attn = torch.zeros(1, heads, length, k)
    for i in range(length):
        attn[0, :, i, :prompt + i + 1] = 1.0 / (prompt + i + 1)
    out = layer_metrics(attn, torch.ones(1, k, dim), torch.ones(1, k, dim), length)
    seen = [prompt + i + 1 for i in range(length)]
    assert out["attention_entropy"] == pytest.approx(sum(map(math.log, seen)) / length, rel=1e-5)
    assert out["prompt_mass"] == pytest.approx(sum(prompt / s for s in seen) / length, rel=1e-5)
