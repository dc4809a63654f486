"""The tiny workflow on a second decoder family (GPT-NeoX: fused attention projection, no
model.model.layers): every method that goes through GPTQModel, peft and lm-eval runs to
the report; the ones that walk a Llama-style decoder are refused at plan time
(tests/test_bad_inputs.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from tinyflow import NO_NETWORK, snakemake, tiny_config

pytestmark = pytest.mark.workflow

NEOX_TARGETS = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def neox_config(model_dir) -> dict:
    config = tiny_config(model_dir)
    config["models"] = {"neox": {"source": "local", "path": str(model_dir)}}
    config["recovery"]["methods"] = [
        {"method": "none"}, {"method": "lora", "rank": 4, "alpha": 8, "target_modules": NEOX_TARGETS},
        {"method": "prompt_tuning", "num_virtual_tokens": 4}, {"method": "fewshot", "k": 2}]
    config["recovery"]["seeds"] = [0]
    config["recovery"]["budget"]["steps"] = [2]
    config["report"] = {"attention_analysis": False}
    return config


def test_the_tiny_workflow_runs_on_a_gpt_neox(tmp_path):
    from conftest import build_tiny_neox

    config = neox_config(build_tiny_neox(tmp_path / "tiny-neox"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = snakemake(workdir, config, env=NO_NETWORK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = pd.read_csv(workdir / "results/summary.csv")
    cells = set(zip(summary.compression, summary.recovery, strict=True))
    assert cells >= {("none", "none"), ("gptq-w4g32", "none"), ("gptq-w4g32", "lora"),
                     ("gptq-w4g32", "prompt_tuning"), ("gptq-w4g32", "fewshot")}, cells
    assert (summary.status == "ok").all() and set(summary.model) == {"neox"}
    page = (workdir / "results/report.html").read_text()
    assert "neox / gptq-w4g32:" in page and "id='explorer'" in page
    # LoRA wrapped the family's own fused projection
    import json

    manifest = json.loads((workdir / "results/neox/gptq-w4g32/lora.seed0/adapter/adapter_config.json").read_text())
    assert set(manifest["target_modules"]) == set(NEOX_TARGETS)
