"""Benchmark: shared-prefix scoring vs stock lm-eval HFLM on the knowledge suite.

Builds the five knowledge tasks (``--questions`` per task, seeded as the pipeline does),
then scores lm-eval's own log-likelihood requests of all of them with stock ``HFLM`` and
with our ``hf-prefix`` model (``compress_recover.evaluate.prefix_lm``), each side in its
own fresh Python process, same checkpoint, batch size and threads, sides alternated over
``--repeats`` rounds. Prints requests per second of each side (median), their ratio against
the goal (>= 3), the largest log-likelihood difference between the sides, and this machine's
matmul GFLOPS.

    python benchmarks/scoring_throughput.py --checkpoint results/smollm2-135m/none/checkpoint
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sides import build_tasks, run_sides, task_requests

GOAL = 3.0
TASKS = ("capitals", "currencies", "city_country", "element_symbol", "element_name")


def side(args) -> None:
    """One side, in this (fresh) process: print {requests, seconds} and write the scores."""
    from lm_eval.models.huggingface import HFLM

    from compress_recover.evaluate.prefix_lm import PrefixScoringLM
    from compress_recover.recover.load import load_recovered
    from compress_recover.runtime import configure_threads

    configure_threads(args.threads)
    instances, _ = task_requests(args.tasks, TASKS)
    model, tokenizer = load_recovered(args.checkpoint, args.adapter, device="cpu")
    cls = PrefixScoringLM if args.side == "ours" else HFLM
    lm = cls(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, device="cpu")
    start = time.perf_counter()
    scores = lm.loglikelihood(instances, disable_tqdm=True)
    seconds = time.perf_counter() - start
    Path(args.tasks, f"{args.side}.json").write_text(json.dumps([s for s, _ in scores]))
    print(json.dumps({"requests": len(instances), "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/smollm2-135m/none/checkpoint")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--questions", type=int, default=50, help="questions per knowledge task (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--side", choices=["stock", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    if not Path(args.checkpoint, "config.json").is_file():
        raise SystemExit(f"{args.checkpoint}: no checkpoint; run the pipeline first (make demo) or pass --checkpoint")

    from compress_recover.runtime import configure_threads, matmul_gflops

    with tempfile.TemporaryDirectory(prefix="scoring-") as tmp:
        build_tasks(tmp, TASKS, args.questions)
        runs = run_sides(__file__, ("stock", "ours"), ["--tasks", tmp, "--checkpoint", args.checkpoint,
                                                       "--batch-size", str(args.batch_size), "--threads",
                                                       str(args.threads),
                                                       *(["--adapter", args.adapter] if args.adapter else [])],
                         args.repeats)
        stock, ours = (json.loads(Path(f"{tmp}/{n}.json").read_text()) for n in ("stock", "ours"))
    configure_threads(args.threads)
    gflops = matmul_gflops()
    rate = {n: statistics.median(r["requests"] / r["seconds"] for r in rs) for n, rs in runs.items()}
    ratio = rate["ours"] / rate["stock"]
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} thread(s))")
    print(f"checkpoint {args.checkpoint}{' + ' + args.adapter if args.adapter else ''}: "
          f"{runs['stock'][0]['requests']} requests ({len(TASKS)} tasks x {args.questions or 'all'} questions), "
          f"batch {args.batch_size}, {args.repeats} rounds")
    print(f"stock HFLM:      {rate['stock']:8.1f} requests/s")
    print(f"shared prefix:   {rate['ours']:8.1f} requests/s")
    print(f"ratio {ratio:.2f} (goal >= {GOAL:g}: {'met' if ratio >= GOAL else 'NOT met'}); "
          f"largest log-likelihood difference {max(abs(a - b) for a, b in zip(stock, ours, strict=True)):.2e}")


if __name__ == "__main__":
    main()
