"""Incremental reruns of the tiny workflow: what a changed config schedules (Snakemake's
Python API, fast) and what a job killed mid-write leaves behind (the CLI, for real)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import build_tiny_llama
from tinyflow import dag_jobs, per_rule, planned_jobs, scheduled, snakemake, snakemake_cmd, tiny_config, write_config

pytestmark = pytest.mark.workflow

# the aggregate jobs every new evaluation reruns (levels: every compression against its model)
AGGREGATE = {"summary": 1, "analysis": 1, "levels": 1, "figures": 1, "report": 1, "all": 1}
# a remedy's new runs: levels reads only the unrecovered models, so it does not rerun
AFTER_A_REMEDY = {k: v for k, v in AGGREGATE.items() if k != "levels"}


def test_a_finished_run_schedules_nothing(finished_run):
    workdir, config = finished_run
    assert scheduled(workdir, config) == []


def test_adding_a_model_schedules_exactly_its_jobs_and_the_aggregate(finished_run):
    workdir, config = finished_run
    grown = copy.deepcopy(config)
    second = workdir / "tiny-model-2"
    if not second.exists():
        build_tiny_llama(second, seed=1)
    grown["models"]["tiny2"] = {"source": "local", "path": str(second)}
    jobs = scheduled(workdir, grown)
    seeds = len(config["recovery"]["seeds"])
    # the base model, and 4-bit GPTQ as is, with three trained recoveries and few-shot per seed, and one EoRA
    cells = 1 + 1 + 3 * seeds + seeds + 1
    checkpoints = 3 * seeds * (len(config["recovery"]["budget"]["steps"]) - 1)  # each evaluated, not costed
    # one evaluate job per model scores its three tasks (two knowledge tasks, held-out perplexity); the
    # few-shot task folders are the model's too, so none is built again
    assert per_rule(jobs) == {"download": 1, "teacher_logits_corpus": 1, "generated_text": 1, "compress_gptq": 1,
                              "recover_lora": seeds, "recover_prompt_tuning": seeds, "recover_idp": seeds,
                              "compute_eora": 1, "compute_fewshot": seeds, "evaluate": cells + checkpoints,
                              "cost": cells, "attention": 1, **AGGREGATE}
    # every job but the aggregate is the new model's
    assert {w.get("model") for rule, w in jobs if rule not in AGGREGATE} == {"tiny2"}


def test_changing_one_method_parameter_reschedules_exactly_its_branch(finished_run):
    workdir, config = finished_run
    changed = copy.deepcopy(config)
    idp = next(m for m in changed["recovery"]["methods"] if m["method"] == "idp")
    idp["pool_size"] = 3
    jobs = scheduled(workdir, changed)
    seeds = config["recovery"]["seeds"]
    points = len(config["recovery"]["budget"]["steps"])  # the final run and its checkpoints, each evaluated
    assert per_rule(jobs) == {"recover_idp": len(seeds), "evaluate": points * len(seeds), "cost": len(seeds),
                              "attention": 1, **AFTER_A_REMEDY}
    assert {w["recovery"] for rule, w in jobs if rule in {"recover_idp", "cost"}} == {
        f"idp-mix0.5.seed{s}" for s in seeds}
    assert {w["recovery"] for rule, w in jobs if rule == "evaluate"} == {
        f"idp-mix0.5.seed{s}{step}" for s in seeds for step in ("", ".step2")}
    # the calibration budget feeds compression: everything downstream of it reruns
    changed = copy.deepcopy(config)
    changed["compression"]["calibration"]["samples"] = 3
    runs = 1 + 4 * len(seeds) + 1  # the compressed model as is and its recoveries (EoRA once)
    assert per_rule(scheduled(workdir, changed)) == {
        "compress_gptq": 1, "recover_lora": len(seeds), "recover_prompt_tuning": len(seeds),
        "recover_idp": len(seeds), "compute_eora": 1, "compute_fewshot": len(seeds),
        "evaluate": runs + 3 * len(seeds) * (points - 1), "cost": runs, "attention": 1, **AGGREGATE}
    assert scheduled(workdir, config) == []


def test_a_compress_job_killed_mid_write_leaves_nothing_that_counts_as_done(tmp_path):
    config = tiny_config(build_tiny_llama(tmp_path / "tiny-model"))
    target = "results/tiny/gptq-w4g32/checkpoint"
    folder = tmp_path / "results/tiny/gptq-w4g32"
    write_config(tmp_path, config)
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "--cores", "2", target), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not list(folder.glob(".checkpoint.tmp-*")):
            assert proc.poll() is None, "snakemake ended before compress started writing"
            assert time.monotonic() < deadline, "compress never started writing"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, mid-write
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (tmp_path / target).exists(), "compress finished before it could be killed"
    assert list(folder.glob(".checkpoint.tmp-*")), "the half-written temporary folder should still be there"
    # nothing counts as done: exactly the compression is scheduled again
    assert planned_jobs(snakemake(tmp_path, config, target, "--dry-run")) == {"compress_gptq": 1, "total": 1}
    assert snakemake(tmp_path, config, "--unlock").returncode == 0
    rerun = snakemake(tmp_path, config, target)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / target / "manifest.json").exists()
    assert not list(folder.glob(".checkpoint.tmp-*")), "the rerun should remove what the killed job left"
    assert planned_jobs(snakemake(tmp_path, config, target, "--dry-run")) == {}


def test_a_changed_local_model_file_reruns_its_download_and_what_follows(finished_run):
    """Local model files are inputs of the download: a changed one schedules it again (a
    merely touched one does not: Snakemake compares the content's checksum too)."""
    workdir, config = finished_run
    config_json = Path(config["models"]["tiny"]["path"]) / "generation_config.json"
    original, before = config_json.read_bytes(), config_json.stat()
    try:
        config_json.write_bytes(original + b"\n")  # same JSON, other bytes
        os.utime(config_json, ns=(before.st_atime_ns, time.time_ns() + 10**9))
        rules = per_rule(scheduled(workdir, config))
        assert rules["download"] == 1 and rules["compress_gptq"] == 1 and rules["evaluate"] >= 2
    finally:
        config_json.write_bytes(original)
        os.utime(config_json, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert scheduled(workdir, config) == []


def _evaluate_logs(workdir: Path, since: float) -> dict[str, str]:
    """The evaluate logs written after ``since``: {recovery folder: text}."""
    return {str(p.relative_to(workdir / "logs")): p.read_text() for p in (workdir / "logs").rglob("evaluate.log")
            if p.stat().st_mtime > since}


def test_adding_or_changing_a_task_in_a_finished_run_scores_only_it(finished_run, tmp_path):
    """The workflow reruns every evaluate job when a task is added or changed (its inputs
    changed), and each of them scores only that task: the others' scores are reused from the
    job's cache, verified by hashes (compress_recover/evaluate/reuse.py)."""
    import shutil

    from conftest import write_choice_task

    source, config = finished_run
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir, symlinks=True)
    grown = copy.deepcopy(config)
    rows = [{"q": f"Is {n} even?", "a": n % 2} for n in range(6)]
    shots = [{"q": f"Is {n} even?", "a": n % 2} for n in range(10, 14)]  # the few-shot runs' demonstrations
    folder = write_choice_task(tmp_path / "tasks", "parity", rows, ["yes", "no"], shots)
    grown["data"]["task_dirs"] = [{"path": str(folder), "tasks": ["parity"], "knowledge": False}]
    evaluations = sum(rule == "evaluate" for rule, _ in dag_jobs(workdir, config))
    for change in ("added", "changed"):
        if change == "changed":
            write_choice_task(folder, "parity", [{**r, "q": r["q"].replace("even", "odd")} for r in rows], ["yes", "no"],
                              shots)
        jobs = per_rule(scheduled(workdir, grown))
        assert set(jobs) - set(AGGREGATE) == {"evaluate"}, jobs  # nothing but the evaluations reruns
        since = time.time()
        proc = snakemake(workdir, grown, "--until", "evaluate")
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs = _evaluate_logs(workdir, since)
        assert len(logs) == jobs["evaluate"] == evaluations, (change, sorted(logs))
        for name, text in logs.items():
            assert "task(s) reused unchanged; scoring ['parity']" in text, (change, name, text[-2000:])
