"""make setup on a machine whose Python is not the pinned set's: it stops before installing
anything, naming the version it found and how to point it at a Python 3.11."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_setup_with_another_python_stops_before_installing_and_names_the_versions(tmp_path):
    fake = tmp_path / "python3.13"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.13.1' && exit 0\n"
                    "case \"$2\" in *version_info*) exit 1;; esac\necho 'would build a venv' > \"$0.used\"\n")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-C", str(REPO), "setup", f"PYTHON={fake}", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "needs Python 3.11" in proc.stderr and "Python 3.13.1" in proc.stderr
    assert "PYTHON=/path/to/python3.11" in proc.stderr
    assert not venv.exists() and not Path(f"{fake}.used").exists()  # nothing was built
