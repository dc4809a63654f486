"""A run killed mid-job (SIGKILL: an out-of-memory kill, a lost node): after Snakemake's
--unlock, the next run makes every missing output and leaves nothing to do."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tinyflow import snakemake, snakemake_cmd, tiny_config, write_config

pytestmark = pytest.mark.workflow


def _small(config: dict) -> dict:
    """The tiny config with one trained remedy and one seed: the kill needs jobs, not a grid."""
    config["recovery"]["methods"] = [{"method": "none"}, {"method": "lora", "rank": 4, "alpha": 8}]
    config["recovery"]["seeds"] = [0]
    config["recovery"]["budget"]["steps"] = [2]
    return config


def test_a_run_killed_mid_job_makes_every_output_after_unlock(tmp_path):
    from conftest import build_tiny_llama

    config = _small(tiny_config(build_tiny_llama(tmp_path / "tiny-model")))
    workdir = tmp_path / "run"
    workdir.mkdir()
    write_config(workdir, config)
    proc = subprocess.Popen(snakemake_cmd(workdir, "--cores", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    try:
        while not list((workdir / "logs").rglob("evaluate.log")):  # an evaluation has started
            assert proc.poll() is None, "the run ended before any evaluation started"
            assert time.time() < deadline, "no evaluation started in 15 minutes"
            time.sleep(0.5)
        time.sleep(3)  # well inside the job
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, no chance to clean up
        proc.wait(timeout=60)
    assert not (workdir / "results/report.html").exists()
    # the lock a killed run leaves stops the next one, saying so
    locked = snakemake(workdir, config)
    assert locked.returncode != 0 and "unlock" in (locked.stdout + locked.stderr).lower()
    unlocked = snakemake(workdir, config, "--unlock")
    assert unlocked.returncode == 0, unlocked.stderr[-2000:]
    done = snakemake(workdir, config)
    assert done.returncode == 0, done.stderr[-4000:]
    for path in ("results/report.html", "results/summary.csv", "results/summary.parquet",
                 "results/analysis/questions.csv", "results/tiny/gptq-w4g32/attention/analysis.csv",
                 "results/tiny/gptq-w4g32/attention/attention.png", "results/figures/overview.png"):
        assert (workdir / path).is_file(), path
    again = snakemake(workdir, config, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
