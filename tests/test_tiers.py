"""The two test tiers: `make test-fast` selects the unit tier with the markers conftest.py
excludes, and a test of that tier that runs Snakemake fails instead of slowing it down."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from conftest import FAST_TIER_EXCLUDES, REPO, runs_snakemake


def test_make_test_fast_selects_the_tier_the_guard_watches():
    recipe = re.search(r"^test-fast:.*\n\t(.*)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1)
    expression = re.search(r'-m "([^"]*)"', recipe).group(1)
    assert expression == " and ".join(f"not {name}" for name in FAST_TIER_EXCLUDES)
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert set(FAST_TIER_EXCLUDES) <= {m.split(":", 1)[0] for m in options["markers"]}


@pytest.mark.parametrize("args, runs", [
    ([sys.executable, "-m", "snakemake", "--lint"], True),
    ("snakemake --cores 1 -n", True),
    (["/venv/bin/snakemake", "--list-rules"], True),
    ([sys.executable, "-c", "from snakemake.api import SnakemakeApi\nwith SnakemakeApi() as api: ..."], True),
    ([sys.executable, "-m", "snakefmt", "--check", "Snakefile"], False),
    ([sys.executable, "-c", "from snakemake.utils import validate"], False),
    (["ls", "/tmp/.snakemake/log"], False),
])
def test_a_snakemake_command_line_is_recognised(args, runs):
    assert runs_snakemake(args) is runs


def test_the_fast_tier_refuses_snakemake_through_the_cli_and_the_api(tmp_path):
    from tinyflow import load_workflow

    with pytest.raises(pytest.fail.Exception, match=r"in the fast tier .*mark it @pytest.mark.slow"):
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True)
    with pytest.raises(pytest.fail.Exception, match="SnakemakeApi.workflow"):
        with load_workflow(REPO / "config.yaml", tmp_path):
            pass
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0  # other commands run


@pytest.mark.slow
def test_the_slow_tier_may_run_snakemake():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and re.match(r"\d+\.\d+", proc.stdout), proc.stderr[-2000:]
