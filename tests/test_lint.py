"""The workflow passes Snakemake's linter and snakefmt, and common.smk stays light."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    proc = _run(sys.executable, "-m", "snakemake", "--lint")
    assert proc.returncode == 0 and "good condition" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakefmt_check_is_clean():
    proc = _run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_building_the_dag_imports_no_torch():
    code = ("import sys; from compress_recover import config; "
            "assert not {'torch', 'transformers', 'lm_eval', 'gptqmodel', 'peft'} & set(sys.modules), "
            "sorted(m for m in sys.modules if m.split('.')[0] in {'torch','transformers','lm_eval'})")
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
