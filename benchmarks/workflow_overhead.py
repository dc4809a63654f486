"""Benchmark: what the workflow itself costs before any job runs.

Prints, measured in one run on this machine:
  (1) the dry-run time (`snakemake -n`, the whole CLI, Python start-up included) of a
      generated grid: the default config with --models models and 11 compressions (1,247
      jobs with 6 models at 37689ac) (goal < 5 s), and
  (2) the no-op rerun time (`snakemake --cores 1` with nothing to do) of the default grid
      in this checkout (goal < 3 s); it needs `make demo` to have finished here.
Each is the median of --repeats runs; each is also printed as a ratio to its goal. Beside
(1), the same dry run of a trivial Snakefile with as many jobs (one rule, no inputs) shows
the floor that Snakemake itself sets on this machine.

    python benchmarks/workflow_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DRY_RUN_GOAL_S = 5.0
NOOP_GOAL_S = 3.0


def large_grid(models: int) -> dict:
    """The default config with many models and compressions: about 205 jobs per model."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {f"smollm2-{i}": {"source": "embedded"} for i in range(models)}
    config["compression"]["methods"] = [
        {"method": "none"},
        *({"method": "gptq", "bits": b, "group_size": g} for b in (2, 3, 4, 8) for g in (32, 64)),
        {"method": "wanda", "sparsity": 0.5},
        {"method": "sparsegpt", "n_m": "2:4"},
    ]
    return config


TRIVIAL = """
rule all:
    input: expand("out/{{i}}.txt", i=range({n}))
rule make:
    output: "out/{{i}}.txt"
    log: "logs/{{i}}.log"
    shell: "touch {{output}}"
"""


def snakemake(workdir: Path, configfile: Path | None, *args: str, snakefile: Path = REPO / "Snakefile",
              ) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
           *(["--configfile", str(configfile)] if configfile else []), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)  # a dry run or the tiny workflow
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def job_count(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", type=int, default=6, help="models in the generated grid (~205 jobs each)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        workdir = Path(tmp)
        configfile = workdir / "config.yaml"
        configfile.write_text(yaml.safe_dump(large_grid(args.models)))
        runs = [snakemake(workdir, configfile, "--dry-run", "--quiet", "rules") for _ in range(args.repeats)]
        jobs = job_count(runs[0][1])
        dry = statistics.median(t for t, _ in runs)
        trivial = workdir / "trivial"
        trivial.mkdir()
        (trivial / "Snakefile").write_text(TRIVIAL.format(n=jobs - 1))
        floor = statistics.median(snakemake(trivial, None, "--dry-run", "--quiet", "rules",
                                            snakefile=trivial / "Snakefile")[0] for _ in range(args.repeats))
    print(f"dry run of a generated grid: {jobs} jobs, median {dry:.2f} s of {args.repeats} "
          f"(goal < {DRY_RUN_GOAL_S:.0f} s; ratio to goal {dry / DRY_RUN_GOAL_S:.2f})")
    print(f"  a trivial Snakefile with {jobs} jobs: median {floor:.2f} s (ours / trivial {dry / floor:.2f})")

    configfile = REPO / "config.yaml"
    _, pending = snakemake(REPO, configfile, "--dry-run", "--quiet", "rules")
    if "Nothing to be done" not in pending:
        print(f"no-op rerun of the default grid: not measured, {job_count(pending)} jobs are still to run "
              "here (run `make demo` first)")
        return
    noop = statistics.median(snakemake(REPO, configfile, "--cores", "1")[0] for _ in range(args.repeats))
    print(f"no-op rerun of the default grid: median {noop:.2f} s of {args.repeats} "
          f"(goal < {NOOP_GOAL_S:.0f} s; ratio to goal {noop / NOOP_GOAL_S:.2f})")


if __name__ == "__main__":
    main()
