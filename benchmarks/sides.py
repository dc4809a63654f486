"""Shared by the benchmarks: run each side of a comparison in its own fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence


def run_sides(script: str, names: Sequence[str], argv: Sequence[str], repeats: int,
              timeout: int = 7200) -> dict[str, list]:
    """``python script --side NAME *argv`` for every side, sides alternated over ``repeats``
    rounds (so drift on a noisy machine hits all alike); each prints one JSON value as its
    last line. Returns side -> the values of its rounds; a failing side stops the benchmark."""
    values: dict[str, list] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            proc = subprocess.run([sys.executable, script, "--side", name, *argv], capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode:
                raise SystemExit(f"{name} side failed:\n{proc.stderr[-3000:]}")
            values[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return values
