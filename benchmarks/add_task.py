"""Benchmark: what adding a task to a finished evaluate job costs, against scoring that task alone.

An evaluate job scores every task of one model; Snakemake reruns it when a task is added.
With per-task reuse (``compress_recover/evaluate/reuse.py``) the rerun scores only the new
task. Two sides, each in its own fresh Python process, alternated over ``--repeats``
rounds, on one checkpoint:

- ``alone``: a job that scores only the new task (a held-out-sized relation, ``element_name``);
- ``added``: the rerun of a job that already scored the other four knowledge tasks (cache
  filled beforehand, untimed), now with the new task added;
- ``without_reuse``: the same rerun without the cache (what it cost before reuse existed).

Both times are the process's whole wall time (start-up, model load, scoring, writing).
Goal: added / alone <= 1.2.

    python benchmarks/add_task.py --checkpoint results/smollm2-135m/none/checkpoint
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sides import build_tasks, run_sides

T0 = time.perf_counter()  # this process's start, as near as Python allows: a side's time is its whole run

OLD = ["capitals", "currencies", "city_country", "element_symbol"]
NEW = "element_name"
GOAL = 1.2


def _evaluate(args, tasks: list[str], out: Path, cache: Path | None) -> None:
    from compress_recover.evaluate.evaluate import run_evaluation
    from compress_recover.runtime import Runtime

    specs = [{"task": t, "task_dir": f"{args.tasks}/{t}", "out_json": str(out / f"{t}.json"),
              "out_samples": str(out / f"{t}.samples.jsonl")} for t in tasks]
    run_evaluation(checkpoint_dir=args.checkpoint, adapter_dir=None, tasks=specs,
                   labels={"model": "m", "compression": "none", "recovery": "none"}, batch_size=args.batch_size,
                   limit=None, num_fewshot=0, runtime=Runtime(device="cpu", seed=0, threads=args.threads),
                   cache_dir=None if cache is None else str(cache))


def side(args) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{args.side}-") as tmp:
        if args.side == "alone":
            _evaluate(args, [NEW], Path(tmp), None)
        elif args.side == "without_reuse":
            _evaluate(args, [*OLD, NEW], Path(tmp), None)
        else:
            out = Path(tmp) / "eval"
            shutil.copytree(args.filled, out)
            shutil.copytree(f"{args.filled}_cache", Path(tmp) / "cache")
            _evaluate(args, [*OLD, NEW], out, Path(tmp) / "cache")
    print(json.dumps(time.perf_counter() - T0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/smollm2-135m/none/checkpoint")
    parser.add_argument("--questions", type=int, default=0, help="questions per knowledge task (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--side", choices=["alone", "added", "without_reuse"], help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    parser.add_argument("--filled", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    if not Path(args.checkpoint, "config.json").is_file():
        raise SystemExit(f"{args.checkpoint}: no checkpoint; run the pipeline first (make demo) or pass --checkpoint")

    from compress_recover.runtime import configure_threads, matmul_gflops

    with tempfile.TemporaryDirectory(prefix="add-task-") as tmp:
        build_tasks(tmp, [*OLD, NEW], args.questions)
        args.tasks, args.filled = tmp, f"{tmp}/filled"
        _evaluate(args, OLD, Path(args.filled), Path(f"{args.filled}_cache"))  # the finished job (untimed)
        common = ["--checkpoint", args.checkpoint, "--tasks", tmp, "--filled", args.filled, "--batch-size",
                  str(args.batch_size), "--threads", str(args.threads)]
        runs = run_sides(__file__, ("alone", "added", "without_reuse"), common, args.repeats)
    configure_threads(args.threads)
    gflops = matmul_gflops()
    alone, added, rescored = (statistics.median(runs[n]) for n in ("alone", "added", "without_reuse"))
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} thread(s))")
    print(f"checkpoint {args.checkpoint}: new task {NEW} after {', '.join(OLD)} "
          f"({args.questions or 'all'} questions each), {args.repeats} rounds, process wall time")
    print(f"score the new task alone:          {alone:7.1f} s")
    print(f"rerun the job with the task added: {added:7.1f} s")
    print(f"the same rerun without reuse:      {rescored:7.1f} s ({rescored / alone:.2f}x alone)")
    print(f"ratio {added / alone:.2f} (goal <= {GOAL:g}: {'met' if added / alone <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
