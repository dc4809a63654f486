"""The tiny workflow with GGUF quant levels and a checkpoint made elsewhere: llama.cpp makes
and scores the levels, the import checks the user's file, the levels table and the report
put both paths side by side, and adding a user's checkpoint later runs only its own jobs."""

from __future__ import annotations

import pandas as pd
import pytest

from compress_recover.compress.gguf_file import quantize, write_f32_gguf

from test_gguf import _tiny256
from tinyflow import NO_NETWORK, planned_jobs, snakemake, tiny_config

pytestmark = pytest.mark.workflow


def ladder_config(base, user_gguf=None) -> dict:
    config = tiny_config(base)
    config["models"]["tiny"]["compressions"] = (
        [{"method": "external", "name": "mine", "source": "gguf", "path": str(user_gguf), "recover": False}]
        if user_gguf else [])
    config["compression"]["methods"] = [{"method": "none"}, {"method": "gptq", "bits": 4, "group_size": 32},
                                        {"method": "gguf_level", "type": "Q4_K_M", "recover": False},
                                        {"method": "gguf_level", "type": "Q8_0", "recover": False}]
    config["recovery"]["methods"] = [{"method": "none"}, {"method": "lora", "rank": 2, "alpha": 4}]
    config["recovery"]["seeds"] = [0]
    config["recovery"]["budget"]["steps"] = [2]
    config["data"]["perplexity"] = False
    config["report"] = {"attention_analysis": False}
    return config


def test_levels_and_a_users_checkpoint_run_to_the_report(tmp_path):
    base = _tiny256(tmp_path / "tiny256")
    user = quantize(write_f32_gguf(base, tmp_path / "f32.gguf"), tmp_path / "user.Q3_K_M.gguf", "Q3_K_M")
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = ladder_config(base)
    proc = snakemake(workdir, config, env=NO_NETWORK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = pd.read_csv(workdir / "results/summary.csv")
    cells = set(zip(summary.compression, summary.recovery, strict=True))
    assert {("gguf-q4_k_m", "none"), ("gguf-q8_0", "none"), ("gptq-w4g32", "lora")} <= cells
    assert not {c for c in cells if c[0].startswith("gguf-") and c[1] != "none"}  # recover: false
    levels = pd.read_csv(workdir / "results/levels/levels.csv").set_index("compression")
    assert levels.loc["gguf-q4_k_m", "tensor_types"].count("Q4_K") >= 1
    assert levels.loc["gguf-q8_0", "accuracy_llamacpp"] >= 0 and levels.loc["gguf-q8_0", "tokens_mismatched"] == 0
    assert pd.isna(levels.loc["gptq-w4g32", "accuracy_llamacpp"])  # no GGUF, no llama.cpp path
    steps = pd.read_csv(workdir / "results/levels/level_steps.csv")
    assert list(zip(steps.larger, steps.smaller)) == [("gguf-q8_0", "gguf-q4_k_m")]
    html = (workdir / "results/report.html").read_text()
    assert "Compressions against their model" in html and "llama.cpp" in html

    # the user's own checkpoint added later: only its jobs and the tables after them
    config = ladder_config(base, user)
    jobs = planned_jobs(snakemake(workdir, config, "--dry-run", env=NO_NETWORK))
    assert {"compress_external", "evaluate", "evaluate_llamacpp", "levels", "report"} <= set(jobs)
    assert jobs["compress_external"] == jobs["evaluate_llamacpp"] == jobs["evaluate"] == 1
    assert not {"download", "compress_gguf_level", "compress_gptq", "recover_lora"} & set(jobs)
    proc = snakemake(workdir, config, env=NO_NETWORK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    levels = pd.read_csv(workdir / "results/levels/levels.csv").set_index("compression")
    assert levels.loc["mine", "tensor_types"].count("Q3_K") >= 1 and levels.loc["mine", "questions"] > 0
