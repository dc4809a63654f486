"""Benchmark: the wall time of a (cold) demo run, with the machine's speed before and after.

Records the 2048² matmul GFLOPS in float32 and bfloat16 on --threads threads (each in a fresh
process) and the load average before the run, runs the command (default ``snakemake --cores
all`` in --workdir), then records its wall time, the GFLOPS and load average after, the git
commit, the CPU (model name; amx_bf16 / avx512_bf16 flags) and the config's dtype, writes
them as JSON (--out, default <workdir>/logs/demo_time.json) and prints a summary. A load
average well above 0 before the run means something else was running: the time is then not
the machine's.

    python benchmarks/demo_time.py [--workdir .] [--estimate] [--out F] [-- command ...]

For the number the README quotes, from a fresh clone: ``make setup``, then
``python benchmarks/demo_time.py --estimate`` (``--estimate`` runs ``python -m
compress_recover.estimate`` first, so that ``benchmarks/stage_times.py`` can set its
prediction against the run afterwards; its probe is not part of the timed wall).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RATE = ("import sys, torch; from compress_recover.runtime import configure_threads, matmul_gflops; "
        "configure_threads(int(sys.argv[1])); print(matmul_gflops(repeats=10, dtype=sys.argv[2]))")


def gflops(threads: int, dtype: str) -> float:
    """The matmul rate, measured in a fresh Python (the run's jobs each start one)."""
    done = subprocess.run([sys.executable, "-c", RATE, str(threads), dtype], capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 1)


def speed(threads: int) -> dict:
    """The load average (read first: the measurement below loads the machine) and the rates."""
    load = round(os.getloadavg()[0], 2)
    return {"loadavg_1m": load, "float32": gflops(threads, "float32"), "bfloat16": gflops(threads, "bfloat16")}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def config_dtype(workdir: Path, command: list[str]) -> str | None:
    """The run's ``dtype`` as configured: the last ``--configfile`` of the command that sets it
    (relative paths as the command, run in ``workdir``, reads them), else the workdir's
    config.yaml, else the checkout's (a ``--directory`` run such as make quick's)."""
    import yaml

    given = [Path(command[i + 1]) for i, word in enumerate(command[:-1]) if word == "--configfile"]
    for path in [*reversed([p if p.is_absolute() else workdir / p for p in given]), workdir / "config.yaml",
                 REPO / "config.yaml"]:
        if path.is_file():
            dtype = (yaml.safe_load(path.read_text()) or {}).get("dtype")
            if dtype is not None:
                return dtype
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--estimate", action="store_true", help="run python -m compress_recover.estimate first")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("command", nargs="*", help="default: snakemake --cores all")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from compress_recover.estimate import cpu_model

    workdir = args.workdir.resolve()
    command = args.command or [str(Path(sys.executable).with_name("snakemake")), "--cores", "all"]
    record = {"commit": commit(), "cpu": cpu_model(), "cpus": os.cpu_count(), "workdir": str(workdir),
              "command": command, "dtype": config_dtype(workdir, command), "threads": args.threads}
    if args.estimate:
        subprocess.run([sys.executable, "-m", "compress_recover.estimate", "--workdir", str(workdir)], check=True,
                       cwd=workdir)
        record["estimate"] = str(workdir / "logs" / "estimate.json")
    record["before"] = speed(args.threads)
    print(f"before: {record['before']}", flush=True)
    record["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir)
    record["wall_s"] = round(time.perf_counter() - start, 1)
    record["returncode"] = done.returncode
    record["after"] = speed(args.threads)
    out = args.out or workdir / "logs" / "demo_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    b, a = record["before"], record["after"]
    print(f"{' '.join(command)}: {record['wall_s'] / 60:.1f} min wall (exit {done.returncode}) at {record['commit']} "
          f"on {record['cpu']}, {record['cpus']} CPUs, dtype {record['dtype']}; "
          f"matmul 2048² on {args.threads} threads: "
          f"{b['float32']:.0f} GFLOPS fp32 / {b['bfloat16']:.0f} bf16 before, {a['float32']:.0f} / {a['bfloat16']:.0f} "
          f"after; load average {b['loadavg_1m']} before, {a['loadavg_1m']} after")
    if max(b["loadavg_1m"], a["loadavg_1m"]) > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine was busy (load average above half its CPUs): not this machine's time")
    print(f"written: {out}")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
