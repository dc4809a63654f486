"""Benchmark: where a finished run's time went, per stage, against the demo's goal.

Sums the per-job timings Snakemake wrote (``benchmark:`` files, ``logs/**/*.benchmark.tsv``)
per stage (the rule that wrote them), reads the run's wall time from its Snakemake log, and
prints both with this machine's measured matmul GFLOPS (2048 x 2048 fp32, --threads
threads) so that the times can be scaled to another machine. Job time per stage adds jobs
that ran side by side, so it exceeds the wall time when --cores > 1.

    python benchmarks/stage_times.py [--workdir .] [--threads 2] [--goal-min 20]

Run it after a cold ``snakemake --cores all`` (``make clean-results demo``): a rerun that
did nothing leaves the last run's timings, and its own log has no jobs.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def stage_of(tsv: Path) -> str:
    """``logs/.../compress.benchmark.tsv`` -> ``compress`` (the rule or rule family)."""
    return tsv.name.removesuffix(".benchmark.tsv")


def job_seconds(workdir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted((workdir / "logs").rglob("*.benchmark.tsv")):
        with tsv.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        out[stage_of(tsv)].extend(float(r["s"]) for r in rows)
    return out


def last_run_wall_s(workdir: Path) -> tuple[float | None, Path | None]:
    """Seconds from the first to the last job time stamp of the newest Snakemake log that ran jobs."""
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        stamps = [datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
                  for line in log.read_text().splitlines() if (m := STAMP.match(line.strip()))]
        if len(stamps) >= 2:
            return (stamps[-1] - stamps[0]).total_seconds(), log
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--goal-min", type=float, default=20.0)
    args = parser.parse_args()

    from compress_recover.runtime import configure_threads, matmul_gflops

    stages = job_seconds(args.workdir)
    if not stages:
        raise SystemExit(f"{args.workdir / 'logs'}: no *.benchmark.tsv; run the pipeline first (make demo)")
    configure_threads(args.threads)
    gflops = matmul_gflops()
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} threads)")
    print(f"{'stage':<12}{'jobs':>6}{'job time s':>12}{'max job s':>11}")
    for stage, times in sorted(stages.items(), key=lambda kv: -sum(kv[1])):
        print(f"{stage:<12}{len(times):>6}{sum(times):>12.1f}{max(times):>11.1f}")
    print(f"{'all timed':<12}{sum(map(len, stages.values())):>6}{sum(map(sum, stages.values())):>12.1f}")
    wall, log = last_run_wall_s(args.workdir)
    if wall is None:
        print("wall time: no Snakemake log with jobs under .snakemake/log")
        return
    goal = args.goal_min * 60
    print(f"wall time of the last run ({log.name}): {wall / 60:.1f} min; goal {args.goal_min:g} min: "
          f"ratio {wall / goal:.2f} ({'met' if wall <= goal else 'NOT met'})")


if __name__ == "__main__":
    main()
