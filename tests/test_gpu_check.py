"""The GPU check (tests/gpu_check.py, ``make gpu-check``) on a machine without CUDA: it says it
was skipped and why, runs nothing, and exits 0 (1 when CUDA is required); the workflow it
would run is the tiny one on ``device: cuda``, a valid config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

import gpu_check
from conftest import REPO


@pytest.mark.slow
@pytest.mark.skipif(gpu_check.cuda_missing() is None, reason="CUDA is present: the check would run, not skip")
def test_without_cuda_the_check_skips_saying_why_and_runs_nothing(tmp_path):
    workdir = tmp_path / "flow"
    cmd = [sys.executable, str(REPO / "tests" / "gpu_check.py"), "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GPU check SKIPPED" in proc.stdout and gpu_check.cuda_missing() in proc.stdout
    assert "not a pass" in proc.stdout and "passed" not in proc.stdout
    assert not workdir.exists()  # no workflow ran
    required = subprocess.run([*cmd, "--require-cuda"], capture_output=True, text=True, timeout=300)
    assert required.returncode == 1 and "SKIPPED" in required.stdout


def test_no_cuda_reason_names_the_cause(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in gpu_check.cuda_missing()
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "sees no CUDA device" in gpu_check.cuda_missing()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_check.cuda_missing() is None


def test_the_workflow_it_runs_is_the_tiny_one_on_cuda(tmp_path):
    from snakemake.utils import validate

    from compress_recover.config import build_plan
    from tinyflow import tiny_config

    config = gpu_check.prepare_workflow(tmp_path)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written == config and written["device"] == "cuda"
    assert {k: v for k, v in written.items() if k != "device"} == {
        k: v for k, v in tiny_config(tmp_path / "tiny-model").items() if k != "device"}
    assert (tmp_path / "tiny-model" / "model.safetensors").is_file()
    validate(written, str(REPO / "compress_recover" / "schema" / "config.schema.yaml"))
    build_plan(written)  # the semantic checks pass too


def test_with_cuda_a_skipped_or_failed_part_fails_the_check(tmp_path, monkeypatch, capsys):
    """The CUDA path's bookkeeping (nothing run on a GPU here): a cuda test skipped although
    CUDA is present, or a failed workflow, is reported as such and exits 1."""
    monkeypatch.setattr(gpu_check, "cuda_missing", lambda: None)
    monkeypatch.setattr(gpu_check, "describe_gpu", lambda: "a pretend GPU")

    class Proc:
        returncode, stdout, stderr = 0, "sss\n3 skipped, 497 deselected in 1.0s\n", ""

    monkeypatch.setattr(gpu_check.subprocess, "run", lambda *a, **k: Proc())
    assert gpu_check.run_cuda_tests(timeout=10) == 1
    monkeypatch.setattr(gpu_check, "run_cuda_tests", lambda timeout: 0)
    monkeypatch.setattr(gpu_check, "prepare_workflow", lambda workdir: {"device": "cuda"})
    monkeypatch.setattr(gpu_check, "run_workflow", lambda *a, **k: 1)
    assert gpu_check.main(["--workdir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cuda tests: passed" in out and "tiny workflow: FAILED" in out and "budget 8 min: met" in out
