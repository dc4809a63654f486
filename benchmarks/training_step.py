"""Benchmark: our recovery training step vs a bare peft training loop, side by side.

Both sides train LoRA (the config.yaml entry, or rank 8 on every projection) on the same
checkpoint, the same token blocks (``--batch-size`` x ``--seq-len`` of the text's
``train.jsonl``) with AdamW at the same lr and threads, each side in its own fresh Python
process, sides alternated over ``--repeats`` rounds:

- ours: the pipeline's loader (quantized layers dense on CPU) and its training loop
  (``compress_recover.recover.train.train_loop``: batch schedule, objective, checks);
- bare: ``AutoModelForCausalLM.from_pretrained`` + ``peft.get_peft_model`` and the
  textbook loop (forward with labels, backward, step), as a peft user writes it.

Prints seconds per step of each side (median over steps after ``--warmup``, median over
rounds), the ratio ours / bare against the goal (<= 1.10), and this machine's matmul
GFLOPS.

    python benchmarks/training_step.py --checkpoint results/smollm2-135m/none/checkpoint \\
        --text results/data/text
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sides import lora_step_times, run_sides

GOAL = 1.10
LORA = {"method": "lora", "rank": 8, "alpha": 16, "lr": 2.0e-4}


def _blocks(checkpoint: str, text: str, seq_len: int):
    from transformers import AutoTokenizer

    from compress_recover.tokens import token_blocks

    return token_blocks(AutoTokenizer.from_pretrained(checkpoint), Path(text) / "train.jsonl", seq_len)


def ours(args, lora: dict) -> list[float]:
    from compress_recover.modeling import dense_on_cpu, load_model
    from compress_recover.recover import RECOVERY

    model, _ = load_model(args.checkpoint, device="cpu", weights=dense_on_cpu("cpu"))
    config = RECOVERY.parse(lora, "benchmark")
    model = RECOVERY["lora"].load()(model, config, 0)
    blocks = _blocks(args.checkpoint, args.text, args.seq_len)
    return lora_step_times(model, blocks, config, steps=args.steps, batch_size=args.batch_size, device="cpu")


def bare(args, lora: dict) -> list[float]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=0.0,
                                             target_modules=lora.get("target_modules", ["q_proj", "k_proj", "v_proj",
                                                                                          "o_proj", "gate_proj",
                                                                                          "up_proj", "down_proj"]),
                                             task_type="CAUSAL_LM"))
    blocks = _blocks(args.checkpoint, args.text, args.seq_len)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lora["lr"])
    model.train()
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        ids = blocks[[(step * args.batch_size + i) % blocks.shape[0] for i in range(args.batch_size)]]
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/smollm2-135m/none/checkpoint")
    parser.add_argument("--text", default="results/data/text")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--side", choices=["ours", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    import yaml

    entries = yaml.safe_load(Path(args.config).read_text())["recovery"]["methods"] if Path(args.config).is_file() \
        else []
    lora = next(({k: v for k, v in e.items() if k not in ("objective", "name")} for e in entries
                 if e["method"] == "lora"), LORA)
    from compress_recover.runtime import configure_threads, matmul_gflops

    configure_threads(args.threads)
    if args.side:
        torch_times = (ours if args.side == "ours" else bare)(args, lora)
        print(json.dumps(statistics.median(torch_times[args.warmup:])))
        return
    for path in (Path(args.checkpoint, "config.json"), Path(args.text, "train.jsonl")):
        if not path.is_file():
            raise SystemExit(f"{path} does not exist; run the pipeline first (make demo) or pass --checkpoint/--text")
    per_step = run_sides(__file__, ("bare", "ours"), ["--checkpoint", args.checkpoint, "--text", args.text,
                                                      "--config", args.config, "--steps", str(args.steps),
                                                      "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                                                      "--seq-len", str(args.seq_len), "--threads", str(args.threads)],
                         args.repeats)
    gflops = matmul_gflops()
    o, b = statistics.median(per_step["ours"]), statistics.median(per_step["bare"])
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} threads)")
    print(f"LoRA {json.dumps(lora)} on {args.checkpoint}: {args.batch_size} x {args.seq_len} tokens a step, "
          f"{args.steps - args.warmup} timed steps x {args.repeats} rounds")
    print(f"bare peft loop: {b:.3f} s/step")
    print(f"ours:           {o:.3f} s/step")
    print(f"ratio ours/bare {o / b:.2f} (goal <= {GOAL:.2f}: {'met' if o / b <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
