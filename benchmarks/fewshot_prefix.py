"""Benchmark: what k demonstrations cost to score, drawn per question against one seeded order per task.

A few-shot evaluation puts k dev questions before every question. Drawn afresh for every
question (lm-eval's default sampling, what ``DevFactSampler`` did before issue 37), no two
questions share a prompt prefix, so every context is about (k + 1)x as long and is run
whole. Drawn as the first k allowed of one seeded order per task (``DevFactSampler`` now,
MMLU's dev-set convention), most questions of a task share one prefix, which shared-prefix
scoring (``hf-prefix``) runs once per batch. Three sides, each in its own fresh Python
process, alternated over ``--repeats`` rounds, on one checkpoint and a finished run's
few-shot task folders (``results/data/fewshot_tasks``):

- ``zero_shot``: the same questions with no demonstration;
- ``per_question``: k demonstrations drawn per question (the old sampler, patched in here);
- ``fixed``: k demonstrations, the first allowed of one seeded order (the pipeline's).

Each side's time is the scoring call (model loaded, tasks built, requests scored), and the
prompt tokens run are counted. Goal: fixed / zero_shot <= 1.3 (3-shot costing little more
than zero-shot).

    python benchmarks/fewshot_prefix.py --checkpoint results/smollm2-135m/none/checkpoint \
        --fewshot-tasks results/data/fewshot_tasks [--k 3] [--threads 1] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sides import run_sides

SIDES = ("zero_shot", "per_question", "fixed")
GOAL = 1.3


def _per_question_sampling() -> None:
    """The sampler as it was: k drawn from the allowed pool for every question, one generator."""
    from compress_recover.data.fewshot_task import may_demonstrate
    from compress_recover.evaluate.fewshot_sampler import DevFactSampler

    def sample(self, n, eval_doc=None, df=None, **kwargs):
        if df:
            self.df = df
        return self.rnd.sample([d for d in self.candidates() if may_demonstrate(d, eval_doc)], n)

    DevFactSampler.sample = sample


def side(args) -> dict:
    from compress_recover.evaluate.evaluate import run_evaluation
    from compress_recover.runtime import Runtime

    if args.side == "per_question":
        _per_question_sampling()
    folders = sorted(p for p in Path(args.fewshot_tasks).iterdir() if (p / "manifest.json").exists())
    with tempfile.TemporaryDirectory() as tmp:
        tasks = [{"task": f.name, "task_dir": str(f), "out_json": f"{tmp}/{f.name}.json",
                  "out_samples": f"{tmp}/{f.name}.jsonl"} for f in folders]
        start = time.perf_counter()
        run_evaluation(checkpoint_dir=args.checkpoint, adapter_dir=None, tasks=tasks, labels={"seed": 0},
                       batch_size=32, limit=None, num_fewshot=0 if args.side == "zero_shot" else args.k,
                       runtime=Runtime(device="cpu", threads=args.threads, seed=0, dtype=args.dtype))
        seconds = time.perf_counter() - start
        contexts = {args_[0] for f in folders for line in open(f"{tmp}/{f.name}.jsonl")
                    for args_ in json.loads(line)["arguments"]}
        accuracy = statistics.fmean(json.loads(line)["acc"] for f in folders for line in open(f"{tmp}/{f.name}.jsonl"))
    return {"seconds": seconds, "contexts": len(contexts), "prefixes": len({c.rsplit("\n\n", 1)[0] for c in contexts}),
            "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--fewshot-tasks", required=True)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--side", choices=SIDES)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args)))
        return
    from compress_recover.runtime import matmul_gflops

    gflops = matmul_gflops(dtype="float32")
    forwarded = ["--checkpoint", args.checkpoint, "--fewshot-tasks", args.fewshot_tasks, "--k", str(args.k),
                 "--threads", str(args.threads), "--dtype", args.dtype]
    values = run_sides(__file__, SIDES, forwarded, args.repeats)
    median = {name: statistics.median(v["seconds"] for v in runs) for name, runs in values.items()}
    print(f"machine: {gflops:.0f} GFLOPS fp32 (2048² matmul); {args.threads} thread(s), {args.dtype}, k = {args.k}")
    for name in SIDES:
        v = values[name][-1]
        print(f"  {name:13s} {median[name]:7.1f} s  contexts {v['contexts']:5d}  distinct prefixes "
              f"{v['prefixes']:5d}  accuracy {v['accuracy']:.3f}")
    ratio = median["fixed"] / median["zero_shot"]
    print(f"per_question / zero_shot {median['per_question'] / median['zero_shot']:.2f}x; "
          f"fixed / zero_shot {ratio:.2f}x (goal <= {GOAL}); per_question / fixed "
          f"{median['per_question'] / median['fixed']:.2f}x")


if __name__ == "__main__":
    main()
