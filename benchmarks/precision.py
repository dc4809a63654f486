"""Benchmark: float32 vs bfloat16 frozen weights (``dtype: auto`` on bf16 hardware), side by side.

On one checkpoint (a tiny random Llama built on the spot by default; ``--checkpoint`` for the
demo's base checkpoint, ``results/<model>/none/checkpoint``), each precision runs in its own
fresh Python process, sides alternated over ``--repeats`` rounds, same threads:

- training: LoRA (the config.yaml entry, or rank 8 on every projection) through the
  pipeline's loader and training loop, frozen weights in the side's precision, LoRA and
  AdamW state in float32 (standard mixed precision, as ``run_recovery`` trains); seconds
  per step (``--batch-size`` x ``--seq-len`` seeded random tokens; the content does not
  change the time), median after ``--warmup`` steps;
- scoring: the five knowledge tasks (``--questions`` per task, seeded as the pipeline
  builds them) through the pipeline's scorer (``hf-prefix``), requests per second;
- agreement: per question, the answer each precision picks (the choice of highest
  log-likelihood); the questions whose answer differs, and each side's accuracy.

Prints the ratios bf16 / fp32 (training: fp32 time / bf16 time, > 1 means bf16 is faster),
the differing answers, and this machine's fp32 and bf16 matmul GFLOPS and whether
``dtype: auto`` takes bfloat16 here (:func:`compress_recover.runtime.resolve_dtype`).
On a width-64 toy the matmuls are too small for bf16 units to pay; the number that matters
is the demo checkpoint's.

    python benchmarks/precision.py                      # the tiny model
    python benchmarks/precision.py --checkpoint results/smollm2-135m/none/checkpoint --questions 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sides import build_tasks, lora_step_times, run_sides, task_requests

TASKS = ("capitals", "currencies", "city_country", "element_symbol", "element_name")
LORA = {"method": "lora", "rank": 8, "alpha": 16, "lr": 2.0e-4}
SIDES = ("float32", "bfloat16")


def _lora(config_file: str) -> dict:
    import yaml

    entries = yaml.safe_load(Path(config_file).read_text())["recovery"]["methods"] if Path(config_file).is_file() \
        else []
    return next(({k: v for k, v in e.items() if k not in ("objective", "name")} for e in entries
                 if e["method"] == "lora"), LORA)


def train_side(args, dtype: str) -> float:
    """Median seconds per LoRA step with frozen weights in ``dtype``."""
    import torch

    from compress_recover.modeling import dense_on_cpu, load_model
    from compress_recover.recover import RECOVERY

    model, tokenizer = load_model(args.checkpoint, device=args.device, dtype=dtype, weights=dense_on_cpu(args.device))
    config = RECOVERY.parse(_lora(args.config), "benchmark")
    model = RECOVERY["lora"].load()(model, config, 0)
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(3, len(tokenizer), (4 * args.batch_size, args.seq_len), generator=generator)
    times = lora_step_times(model, blocks, config, steps=args.steps, batch_size=args.batch_size, device=args.device)
    return statistics.median(times[args.warmup:])


def score_side(args, dtype: str) -> dict:
    """Score every question of the built tasks; returns {requests, seconds, answers}."""
    from compress_recover.evaluate.prefix_lm import PrefixScoringLM
    from compress_recover.recover.load import load_recovered

    instances, targets = task_requests(args.tasks, TASKS)
    model, tokenizer = load_recovered(args.checkpoint, args.adapter, device=args.device, dtype=dtype,
                                      weights="dense" if args.device == "cpu" else "kernel")
    lm = PrefixScoringLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size_scoring,
                         device=args.device)
    start = time.perf_counter()
    scores = lm.loglikelihood(instances, disable_tqdm=True)
    seconds = time.perf_counter() - start
    best: dict[str, tuple[float, int]] = {}
    for inst, (logp, _) in zip(instances, scores, strict=True):
        key = f"{inst.task_name}/{inst.doc_id}"
        if key not in best or logp > best[key][0]:
            best[key] = (logp, inst.idx)
    answers = {k: [choice, int(choice == targets[k])] for k, (_, choice) in best.items()}
    return {"requests": len(instances), "seconds": seconds, "answers": answers}


def side(args) -> None:
    from compress_recover.runtime import configure_threads, seed_everything

    configure_threads(args.threads)
    seed_everything(0)
    out = {"step_s": train_side(args, args.side), **score_side(args, args.side)}
    print(json.dumps(out))


def tiny_checkpoint(folder: Path) -> Path:
    """The tests' tiny random Llama (2 layers, width 64, a 512-token BPE vocabulary)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_tiny_llama

    return build_tiny_llama(folder / "tiny-llama")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a checkpoint folder (default: the tiny model)")
    parser.add_argument("--adapter", default=None, help="score with this adapter on top (scoring only)")
    parser.add_argument("--config", default="config.yaml", help="its LoRA entry is trained")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--questions", type=int, default=50, help="questions per knowledge task (0: all)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size-scoring", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return

    from compress_recover.runtime import configure_threads, matmul_gflops, resolve_device, resolve_dtype

    args.device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        checkpoint = args.checkpoint or str(tiny_checkpoint(Path(tmp)))
        if not Path(checkpoint, "config.json").is_file():
            raise SystemExit(f"{checkpoint}: no checkpoint; run the pipeline first (make demo) or omit --checkpoint")
        build_tasks(tmp, TASKS, args.questions)
        argv = ["--tasks", tmp, "--checkpoint", checkpoint, "--config", args.config, "--device", args.device,
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                "--seq-len", str(args.seq_len), "--batch-size-scoring", str(args.batch_size_scoring),
                "--threads", str(args.threads), *(["--adapter", args.adapter] if args.adapter else [])]
        runs = run_sides(__file__, SIDES, argv, args.repeats)
    configure_threads(args.threads)
    gflops = {d: matmul_gflops(dtype=d) for d in SIDES} if args.device == "cpu" else {}
    step = {d: statistics.median(r["step_s"] for r in runs[d]) for d in SIDES}
    rate = {d: statistics.median(r["requests"] / r["seconds"] for r in runs[d]) for d in SIDES}
    answers = {d: runs[d][0]["answers"] for d in SIDES}
    differ = sorted(k for k in answers["float32"] if answers["float32"][k][0] != answers["bfloat16"][k][0])
    n = len(answers["float32"])
    accuracy = {d: sum(c for _, c in answers[d].values()) / n for d in SIDES}
    auto = resolve_dtype("auto", args.device)
    if gflops:
        print(f"machine: {gflops['float32']:.0f} GFLOPS fp32, {gflops['bfloat16']:.0f} GFLOPS bf16 "
              f"(2048x2048 matmul, {args.threads} threads; bf16/fp32 {gflops['bfloat16'] / gflops['float32']:.2f}x); "
              f"dtype: auto takes {auto} here")
    else:
        print(f"device {args.device}; dtype: auto takes {auto} here")
    print(f"checkpoint {args.checkpoint or 'tiny random Llama (2 layers, width 64)'}"
          f"{' + ' + args.adapter if args.adapter else ''}; {args.repeats} rounds, one fresh process per side")
    print(f"LoRA {json.dumps(_lora(args.config))}: {args.batch_size} x {args.seq_len} tokens a step, "
          f"{args.steps - args.warmup} timed steps")
    print(f"  fp32 weights:          {step['float32']:.4f} s/step")
    print(f"  bf16 frozen + fp32 LoRA: {step['bfloat16']:.4f} s/step")
    print(f"  speed-up fp32/bf16 {step['float32'] / step['bfloat16']:.2f}x")
    print(f"scoring ({runs['float32'][0]['requests']} requests, {n} questions of {len(TASKS)} tasks, hf-prefix, "
          f"batch {args.batch_size_scoring}):")
    print(f"  fp32: {rate['float32']:8.1f} requests/s")
    print(f"  bf16: {rate['bfloat16']:8.1f} requests/s")
    print(f"  speed-up bf16/fp32 {rate['bfloat16'] / rate['float32']:.2f}x")
    print(f"agreement: {len(differ)} of {n} answers differ between fp32 and bf16; accuracy fp32 "
          f"{accuracy['float32']:.3f}, bf16 {accuracy['bfloat16']:.3f}"
          + (f"; differing: {', '.join(differ[:10])}{' ...' if len(differ) > 10 else ''}" if differ else ""))


if __name__ == "__main__":
    main()
