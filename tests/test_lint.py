"""The workflow passes Snakemake's linter and snakefmt, and common.smk stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    proc = _run(sys.executable, "-m", "snakemake", "--lint")
    assert proc.returncode == 0 and "good condition" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakefmt_check_is_clean():
    proc = _run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/")
    assert proc.returncode == 0, proc.stdout + proc.stderr


HEAVY = {"torch", "transformers", "lm_eval", "gptqmodel", "peft", "llmcompressor", "datasets", "matplotlib"}


def test_building_the_dag_imports_nothing_heavy():
    """Parsing the Snakefile (rules/common.smk and every rule file) and building the DAG of the
    default config imports no ML library: a dry run stays fast and works without them."""
    code = f"""
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings
with SnakemakeApi(OutputSettings(quiet={{Quietness.ALL}})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1),
                      config_settings=ConfigSettings(configfiles=[Path("config.yaml")]),
                      snakefile=Path("Snakefile"), workdir=Path(sys.argv[1]))
    wf.dag(DAGSettings()).execute_workflow(executor="dryrun")
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({sorted(HEAVY)!r}))
assert not heavy, heavy
"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", code, tmp], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
