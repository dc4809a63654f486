"""profiles/slurm and profiles/default against the workflow's rules (no cluster needed;
tests/test_slurm.py submits through the profile to a real one)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from tinyflow import LOCAL_RULES, load_workflow

SLURM = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
DEFAULT = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())


@pytest.fixture(scope="module")
def workflow():
    """The parsed workflow (rules, localrules, threads) on the default config."""
    with load_workflow(REPO / "config.yaml", REPO) as wf:
        yield wf._workflow


def _evaluate(expression, attempt: int) -> int:
    return int(eval(str(expression), {}, {"attempt": attempt}))  # the profile's own expressions


@pytest.mark.slow
def test_cheap_rules_run_on_the_submit_host(workflow):
    assert set(workflow._localrules) == LOCAL_RULES


@pytest.mark.slow
def test_every_submitted_rule_has_attempt_scaled_resources(workflow):
    rules = {rule.name: rule for rule in workflow.rules}
    per_rule = SLURM["set-resources"]
    unknown = set(per_rule) - set(rules)
    assert not unknown, f"profiles/slurm names rules the workflow does not have: {sorted(unknown)}"
    submitted = set(rules) - LOCAL_RULES
    assert submitted <= set(per_rule), f"no set-resources for {sorted(submitted - set(per_rule))}"
    for name in submitted:
        res = per_rule[name]
        for key in ("mem_mb", "runtime"):
            first, second = _evaluate(res[key], 1), _evaluate(res[key], 2)
            assert 0 < first < second, f"{name}.{key} = {res[key]!r} does not grow with the attempt"
        threads = rules[name].resources["_cores"]
        if isinstance(threads, int):
            assert res["cpus_per_task"] >= threads, f"{name}: {res['cpus_per_task']} CPUs for {threads} threads"
    for name in submitted:
        if name.startswith(("compress_", "recover_")) or name == "evaluate":
            assert "gpu" in per_rule[name], f"{name}: no gpu resource to configure"
    defaults = SLURM["default-resources"]
    assert _evaluate(defaults["mem_mb"], 2) > _evaluate(defaults["mem_mb"], 1)


def test_slurm_profile_retries_and_keeps_logs_under_logs_slurm():
    assert SLURM["executor"] == "slurm" and SLURM["retries"] >= 1
    assert SLURM["slurm-logdir"] == "logs/slurm" and SLURM["slurm-keep-successful-logs"] is True


def test_the_default_profile_sets_no_resources_or_executor():
    """profiles/default is always loaded as the workflow profile and overrides --profile per key."""
    assert not {"executor", "default-resources", "set-resources", "retries", "jobs"} & set(DEFAULT), DEFAULT


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["slurm", "default"])
def test_snakemake_accepts_the_profile(profile, tmp_path):
    """Every key of the profile is a valid option (a dry run through the CLI, with the plugin)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(REPO / "config.yaml"),
                           "--profile", str(REPO / "profiles" / profile), "--dry-run", "--quiet", "rules"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "download" in proc.stdout + proc.stderr

