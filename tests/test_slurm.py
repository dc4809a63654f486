"""The tiny workflow submitted to a real single-node Slurm through profiles/slurm.

The cluster (tests/slurm_cluster.py) runs in a network namespace of its own; Snakemake runs
inside it too, so sbatch reaches slurmctld on the namespace's loopback. Every command runs
under `timeout -s KILL`, so a hung poll cannot hang CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest

from conftest import REPO
from slurm_cluster import SlurmCluster, missing_requirements
from tinyflow import LOCAL_RULES, planned_jobs, snakemake, snakemake_cmd, write_config

pytestmark = pytest.mark.workflow

PROFILE = REPO / "profiles" / "slurm"
# Compared with the local run: everything but what depends on time and load.
STABLE_COLUMNS = ["model", "compression", "recovery", "task", "subtask", "metric", "value", "stderr", "n",
                  "extra_params", "extra_bytes"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = missing_requirements()
    if why:
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"cannot start Slurm (REQUIRE_SLURM=1): {why}")
        pytest.skip(f"cannot start Slurm: {why}; .ci/run installs it and sets REQUIRE_SLURM=1")
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=4) as slurm:
        yield slurm


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """The text corpus's wheel, fetched here: the cluster's namespace has no network at all,
    like compute nodes without the package index (see wheels.fetch_wheel_member)."""
    from compress_recover.data.text import GENSIM_LEE

    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest",
                    str(folder), f"{GENSIM_LEE.package}=={GENSIM_LEE.version}"], check=True, capture_output=True)
    return folder


def submit(cluster: SlurmCluster, workdir, *args: str, limit: int = 1200, wheels=None) -> subprocess.CompletedProcess:
    """Snakemake with the cluster profile, inside the cluster's namespace, killed after ``limit`` s."""
    env = {**cluster.env, **({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)} if wheels else {})}
    cmd = snakemake_cmd(workdir, "--profile", str(PROFILE), "--jobs", "8",
                        # no accounting database here: poll squeue, and start polling early
                        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                        *args)
    return cluster.run(["timeout", "-s", "KILL", str(limit), *cmd], timeout=limit + 30, env=env)


def rules_of(jobs: list[dict[str, str]]) -> Counter:
    """Rule names of Slurm jobs, from the comment the plugin gives each (rule_<name>_wildcards_...)."""
    names = Counter()
    for job in jobs:
        match = re.match(r"rule_(\w+?)_wildcards_", job.get("Comment", ""))
        assert match, f"job {job['JobId']} has no rule in its comment: {job.get('Comment')!r}"
        names[match.group(1)] += 1
    return names


def test_tiny_workflow_through_slurm_equals_the_local_run(cluster, finished_run, wheelhouse, tmp_path):
    local_dir, config = finished_run
    expected = planned_jobs(snakemake(tmp_path, config, "--dry-run"))
    remote = {rule: n for rule, n in expected.items() if rule not in LOCAL_RULES | {"total"}}
    assert remote and "evaluate" in remote and "compress_gptq" in remote
    before = {job["JobId"] for job in cluster.jobs()}

    start = time.monotonic()
    proc = submit(cluster, tmp_path, wheels=wheelhouse)
    wall = time.monotonic() - start
    out = proc.stdout[-4000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, out
    print(f"tiny workflow through Slurm: {wall:.0f} s, {sum(remote.values())} Slurm jobs")

    # every non-local job went through sbatch, once, and completed
    jobs = [job for job in cluster.jobs() if job["JobId"] not in before]
    assert rules_of(jobs) == remote, out
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
    completed = cluster.jobcomp.read_text().count("JobState=COMPLETED")
    assert completed >= sum(remote.values())
    # the plugin kept each job's Slurm log under logs/slurm/
    slurm_logs = list((tmp_path / "logs" / "slurm").rglob("*.log"))
    assert len(slurm_logs) == sum(remote.values()), slurm_logs

    # the same results as the local run
    ours = pd.read_csv(tmp_path / "results/summary.csv")[STABLE_COLUMNS]
    theirs = pd.read_csv(local_dir / "results/summary.csv")[STABLE_COLUMNS]
    keys = ["model", "compression", "recovery", "task", "subtask", "metric"]
    pd.testing.assert_frame_equal(ours.sort_values(keys).reset_index(drop=True),
                                  theirs.sort_values(keys).reset_index(drop=True), rtol=1e-5)
    for name in ("flips.csv", "paired_tests.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results/analysis" / name),
                                      pd.read_csv(local_dir / "results/analysis" / name), rtol=1e-5)
    assert (tmp_path / "results/report.html").exists()
    # and a second submission has nothing to do
    again = submit(cluster, tmp_path, "--dry-run", limit=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_failing_job_is_retried_and_reported_with_its_logs(cluster, finished_run, tmp_path):
    local_dir, config = finished_run
    broken = tmp_path / "broken-model"
    shutil.copytree(local_dir / "tiny-model", broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    config = {**config, "models": {"broken": {"source": "local", "path": str(broken)}}}
    write_config(tmp_path, config)
    before = {job["JobId"] for job in cluster.jobs()}

    target = "results/broken/none/checkpoint"
    proc = submit(cluster, tmp_path, target, limit=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    jobs = [job for job in cluster.jobs() if job["JobId"] not in before]
    # the profile's retries: 2, so three attempts, each a Slurm job that failed
    assert rules_of(jobs) == {"download": 3}, out[-5000:]
    assert {job["JobState"] for job in jobs} == {"FAILED"}
    # reported with the rule's log and the Slurm job's log, both kept
    assert "logs/broken/none/download.log" in out
    rule_log = (tmp_path / "logs/broken/none/download.log").read_text()
    assert "models.broken.path: could not load the checkpoint" in rule_log
    slurm_logs = sorted((tmp_path / "logs" / "slurm").rglob("*.log"))
    assert len(slurm_logs) == 3 and any(str(p.relative_to(tmp_path)) in out for p in slurm_logs), out[-5000:]
    assert not (tmp_path / target).exists()
