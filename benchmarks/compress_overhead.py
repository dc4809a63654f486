"""Benchmark: our compress step vs the bare library call, side by side in one run.

Runs, on the same checkpoint and the same calibration blocks, (a) the bare library
call (GPTQModel load + quantize + save, or llm-compressor's oneshot + save) and (b)
``compress_recover.compress.compress.run_compression``, which the ``compress_<method>``
rule's script calls (it adds config parsing, width checks, calibration sampling,
tokenizer copy and the manifest with measured sparsity). Prints both wall times and
their ratio (goal: <= 1.10), and for GPTQ our time against its goal (<= 60 s), with this
machine's matmul GFLOPS. Each side runs in its own fresh Python process, the bare one with
the library's documented defaults (GPTQModel: bfloat16 forwards on CPU, batch size 1);
runs alternate (bare, ours, bare, ours, ...) so drift on a noisy machine hits both alike;
the medians are compared.

    python benchmarks/compress_overhead.py --checkpoint results/smollm2-135m/none/checkpoint \
        --text results/data/text --method '{"method": "gptq", "bits": 3, "group_size": 64}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sides import run_sides

GPTQ_GOAL_S = 60.0


def bare(method: dict, checkpoint: str, calibration, out: Path, device: str) -> None:
    import torch

    if method["method"] == "gptq":
        from gptqmodel import GPTQModel, QuantizeConfig

        qc = QuantizeConfig(bits=method.get("bits", 4), group_size=method.get("group_size", 64),
                            desc_act=method.get("desc_act", False), sym=method.get("sym", True),
                            damp_percent=method.get("damp_percent", 0.05), offload_to_disk=False)
        model = GPTQModel.load(checkpoint, qc, device=device)
        model.quantize([{"input_ids": r[None], "attention_mask": torch.ones_like(r)[None]} for r in calibration],
                       batch_size=1)
        model.save(str(out))
        return
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import WandaPruningModifier
    from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    names = [f"model.layers.{i}.{n}" for i, b in enumerate(model.model.layers)
             for n, m in b.named_modules() if isinstance(m, torch.nn.Linear)]
    cls = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}[method["method"]]
    ds = Dataset.from_dict({"input_ids": calibration.tolist(), "attention_mask": torch.ones_like(calibration).tolist()})
    oneshot(model=model, dataset=ds, recipe=[cls(sparsity=method["sparsity"], mask_structure="0:0", targets=names)],
            num_calibration_samples=len(calibration), max_seq_length=calibration.shape[1],
            shuffle_calibration_samples=False, pipeline="sequential")
    model.save_pretrained(str(out), safe_serialization=True)


def side(args) -> None:
    """One side in this (fresh) process; prints its wall time in seconds (imports excluded)."""
    from transformers import AutoTokenizer

    from compress_recover.compress.compress import run_compression
    from compress_recover.runtime import Runtime, configure_threads
    from compress_recover.tokens import calibration_blocks

    method = json.loads(args.method)
    configure_threads(args.threads)
    calibration = calibration_blocks(AutoTokenizer.from_pretrained(args.checkpoint), Path(args.text) / "train.jsonl",
                                     samples=args.samples, seq_len=args.seq_len, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.side == "bare":
            bare(method, args.checkpoint, calibration, Path(tmp) / "out", "cpu")
        else:
            run_compression(model_dir=args.checkpoint, out_dir=str(Path(tmp) / "out"), method_config=method,
                            key="benchmark", text_dir=args.text, calibration_samples=args.samples,
                            calibration_seq_len=args.seq_len,
                            runtime=Runtime(device="cpu", seed=0, threads=args.threads))
        print(json.dumps(time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="results/smollm2-135m/none/checkpoint")
    parser.add_argument("--text", default="results/data/text")
    parser.add_argument("--method", default='{"method": "gptq", "bits": 3, "group_size": 64}')
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--side", choices=["bare", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    times = run_sides(__file__, ("bare", "ours"), ["--checkpoint", args.checkpoint, "--text", args.text,
                                                   "--method", args.method, "--samples", str(args.samples),
                                                   "--seq-len", str(args.seq_len), "--threads", str(args.threads)],
                      args.repeats)
    from compress_recover.runtime import configure_threads, matmul_gflops

    configure_threads(args.threads)
    gflops = matmul_gflops()
    bare_s, ours_s = statistics.median(times["bare"]), statistics.median(times["ours"])
    method = json.loads(args.method)
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} threads)")
    print(f"method: {json.dumps(method)}  model: {args.checkpoint}  calibration: {args.samples} x {args.seq_len}")
    print(f"bare library call (its defaults): {bare_s:8.1f} s   (runs: {[round(t, 1) for t in times['bare']]})")
    print(f"our compress step:                {ours_s:8.1f} s   (runs: {[round(t, 1) for t in times['ours']]})")
    print(f"ratio ours / bare: {ours_s / bare_s:.3f}   (goal <= 1.10)")
    if method["method"] == "gptq":
        print(f"our GPTQ: {ours_s:.0f} s (goal <= {GPTQ_GOAL_S:.0f} s: {'met' if ours_s <= GPTQ_GOAL_S else 'NOT met'})")


if __name__ == "__main__":
    main()
