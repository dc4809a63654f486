"""Benchmark: what IDP costs next to LoRA and a single soft prompt, side by side in one run.

On one compressed checkpoint (default: the demo's 3-bit GPTQ SmolLM2) it builds, from
the recovery methods of config.yaml, (a) LoRA, (b) IDP (a pool of m prompts of n
tokens), (c) a single prompt of the same n tokens (IDP with a pool of one: exactly
prompt tuning, same code path) and (d) the configured prompt tuning, each on its own
copy of the model. Trained adapters from results/ are used when they exist; otherwise
fresh seeded ones (parameter counts and latency do not depend on the values).

Timed runs alternate between the models (a, b, c, d, a, b, ...) so machine drift hits
all alike; medians are compared. Prints extra parameters, forward latency on one
evaluation-sized batch and greedy generation latency per token (t(N) / N), then the three
ratios:

- IDP extra params / LoRA extra params        (paper: ~1/21)
- IDP latency / LoRA latency                  (paper: ~0.4, "60% lower")
- IDP latency / single-prompt latency         (goal: <= 1.05)

Latency is on the deployment kernel (the quantized layers as the checkpoint loads them, named in
the first line), with the machine's fp32 matmul GFLOPS beside it.

    python benchmarks/recovery_cost.py [--checkpoint results/smollm2-135m/gptq-w3g64/checkpoint]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml


def _methods(config_file: str) -> dict[str, dict]:
    config = yaml.safe_load(Path(config_file).read_text())
    found = {}
    for raw in config["recovery"]["methods"]:
        if raw["method"] in ("lora", "prompt_tuning", "idp") and raw["method"] not in found:
            found[raw["method"]] = {k: v for k, v in raw.items() if k != "objective"}
    missing = {"lora", "idp"} - set(found)
    if missing:
        raise SystemExit(f"{config_file}: recovery.methods has no {sorted(missing)} entry to benchmark")
    return found


def _build(checkpoint: str, adapter: Path | None, raw: dict, seed: int):
    from compress_recover.modeling import load_model
    from compress_recover.recover import RECOVERY
    from compress_recover.recover.load import load_recovered

    if adapter is not None and adapter.is_dir():
        model, _ = load_recovered(checkpoint, adapter, device="cpu")
        return model, f"trained ({adapter})"
    model, _ = load_model(checkpoint, device="cpu")
    config = RECOVERY.parse(raw, "benchmark")
    return RECOVERY[config.method].load()(model, config, seed).eval(), "fresh (seeded init)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/smollm2-135m/gptq-w3g64/checkpoint")
    parser.add_argument("--text", default="results/data/text")
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from compress_recover.evaluate.cost import generate, latency_inputs, safetensors_parameters
    from compress_recover.runtime import configure_threads

    if not Path(args.checkpoint, "config.json").is_file():
        raise SystemExit(f"{args.checkpoint}: no checkpoint; run the pipeline first (make demo)")
    configure_threads(args.threads)
    methods = _methods(args.config)
    results_dir = Path(args.checkpoint).parent
    idp = methods["idp"]

    def trained(raw: dict) -> Path:  # the run folder the pipeline trains this entry in (seed args.seed)
        return results_dir / f"{raw.get('name') or raw['method']}.seed{args.seed}" / "adapter"

    variants = {
        "lora": (methods["lora"], trained(methods["lora"])),
        "idp": (idp, trained(idp)),
        "single_prompt": ({k: v for k, v in idp.items() if k != "name"} | {"pool_size": 1, "routing": "hard"}, None),
    }
    if "prompt_tuning" in methods:
        variants["prompt_tuning"] = (methods["prompt_tuning"], trained(methods["prompt_tuning"]))
    models, origin, extra = {}, {}, {}
    for name, (raw, adapter) in variants.items():
        models[name], origin[name] = _build(args.checkpoint, adapter, raw, args.seed)
        extra[name] = sum(p.numel() for n, p in models[name].named_parameters()
                          if "lora_" in n or "prompt" in n)
        if adapter is not None and adapter.is_dir():
            assert extra[name] == safetensors_parameters(adapter), name
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    batch = latency_inputs(tokenizer, args.text, batch_size=args.batch_size, seq_len=args.seq_len)
    mask = torch.ones_like(batch)
    prompt = batch[:1]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def forward(model):
        with torch.no_grad():
            model(input_ids=batch, attention_mask=mask)

    timings = {name: {"batch": [], "genN": []} for name in models}
    for model in models.values():  # warm-up
        forward(model)
        generate(model, prompt, 2, pad)
    for _ in range(args.repeats):
        for name, model in models.items():
            for key, fn in (("batch", lambda: forward(model)),
                            ("genN", lambda: generate(model, prompt, args.new_tokens, pad))):
                start = time.perf_counter()
                fn()
                timings[name][key].append(time.perf_counter() - start)
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in timings.items()}
    per_token = {name: m["genN"] / args.new_tokens for name, m in med.items()}

    from compress_recover.modeling import quantized_kernels
    from compress_recover.runtime import matmul_gflops

    kernels = sorted({k for m in models.values() for k in quantized_kernels(m)}) or ["dense"]
    print(f"checkpoint {args.checkpoint}; deployment kernel {', '.join(kernels)}; batch {args.batch_size} x "
          f"{args.seq_len} tokens; {args.new_tokens} greedy tokens; {args.repeats} interleaved repeats; "
          f"{args.threads} threads; fp32 matmul {matmul_gflops():.0f} GFLOPS")
    print(f"{'model':<15} {'extra params':>12} {'batch s':>9} {'token ms':>9}  adapter")
    for name in models:
        print(f"{name:<15} {extra[name]:>12,} {med[name]['batch']:>9.4f} {1000 * per_token[name]:>9.2f}  "
              f"{origin[name]}")
    print(f"IDP extra params / LoRA extra params: {extra['idp'] / extra['lora']:.4f} "
          f"(1/{extra['lora'] / extra['idp']:.1f}; paper ~1/21)")
    print(f"IDP latency / LoRA latency: batch {med['idp']['batch'] / med['lora']['batch']:.3f}, "
          f"per token {per_token['idp'] / per_token['lora']:.3f} (paper ~0.4)")
    print("why: IDP's extra parameters are its m x n prompt vectors (m x n x width); LoRA's are r x (in + out) per "
          "target matrix per layer. IDP's latency adds m x n input positions in the selection layers and n in the "
          "others (quadratic attention over a longer input, nothing per weight); unmerged LoRA adds two low-rank "
          "matmuls per target matrix per layer on every token (merging would remove them but undo the compression).")
    print(f"IDP latency / single-prompt latency: batch {med['idp']['batch'] / med['single_prompt']['batch']:.3f}, "
          f"per token {per_token['idp'] / per_token['single_prompt']:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
