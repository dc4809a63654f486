"""What a recovered model costs: extra parameters and bytes, training time, disk size and
inference latency (per evaluation batch and per generated token).

Latency is measured on fixed inputs (held-out text blocks, the same for every model of a
run) with the job's threads, as the median of ``repeats`` timed runs after one warm-up.
Per generated token is the median time of a greedy N-token generation divided by N (the
prefill of the prompt included, amortised; the prefill alone, one generated token, is
reported beside it).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from pathlib import Path

from ..failures import OK, failed_record
from ..io import dir_size, read_json, safetensors_entries, write_json
from ..modeling import quantized_kernels
from ..prompt_choice import pool_summary
from ..recover.load import adapter_failure, load_recovered
from ..runtime import Runtime, library_versions
from ..tokens import token_blocks

log = logging.getLogger(__name__)


def safetensors_parameters(folder: str | Path) -> int:
    """Number of values stored in a folder's safetensors files (read from their headers)."""
    return sum(math.prod(entry["shape"]) for entry in safetensors_entries(folder))


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, *, repeats: int, device, warmup: int = 1) -> dict:
    """Median (and all) wall times of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "times_s": [round(t, 6) for t in times]}


def latency_inputs(tokenizer, text_dir: str | Path, *, batch_size: int, seq_len: int):
    """The first ``batch_size`` held-out blocks of ``seq_len`` tokens (fewer: repeated)."""
    text_dir = Path(text_dir)
    source = text_dir / "heldout.jsonl"
    if not source.exists() or not source.read_text().strip():
        source = text_dir / "train.jsonl"
    blocks = token_blocks(tokenizer, source, seq_len)
    reps = -(-batch_size // blocks.shape[0])
    return blocks.repeat(reps, 1)[:batch_size]


def generate(model, ids, new_tokens: int, pad_token_id: int):
    """Greedy generation of exactly ``new_tokens`` tokens (no early stop)."""
    import torch

    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_token_id)


def measure_latency(model, batch, prompt, *, new_tokens: int, repeats: int, pad_token_id: int) -> dict:
    """Forward latency on ``batch`` and greedy decode latency from ``prompt`` (1, L)."""
    import torch

    device = batch.device
    mask = torch.ones_like(batch)

    def forward():
        with torch.no_grad():
            model(input_ids=batch, attention_mask=mask)

    out = {"batch": {"batch_size": int(batch.shape[0]), "seq_len": int(batch.shape[1]),
                     **timed(forward, repeats=repeats, device=device)}}
    produced = generate(model, prompt, new_tokens, pad_token_id).shape[1] - prompt.shape[1]
    if produced != new_tokens:
        raise RuntimeError(f"generation produced {produced} tokens instead of {new_tokens}")
    one = timed(lambda: generate(model, prompt, 1, pad_token_id), repeats=repeats, device=device)
    many = timed(lambda: generate(model, prompt, new_tokens, pad_token_id), repeats=repeats, device=device)
    out["generation"] = {"prompt_len": int(prompt.shape[1]), "new_tokens": new_tokens,
                         "prefill_s": one["median_s"], "total_s": many["median_s"],
                         "per_token_s": many["median_s"] / new_tokens, "times_s": many["times_s"]}
    return out


MEASURED = ("extra_params", "extra_bytes", "adapter_dir_bytes", "checkpoint_bytes", "disk_bytes", "training_time_s",
            "input_tokens_added",
            "training_tokens", "compression_time_s", "latency", "latency_kernels", "pool")  # none for a failed recovery


def failed_cost(out_json: str, labels: dict, failure: str, repeats: int, runtime: Runtime) -> dict:
    """Write ``out_json`` for a model whose recovery training failed: ``status`` failed, the
    ``failure``, and no measurement (every key of :data:`MEASURED` null); nothing is loaded."""
    cost = {**labels, **failed_record(failure), **dict.fromkeys(MEASURED), "device": runtime.device,
            "threads": runtime.threads, "repeats": repeats, "library_versions": library_versions()}
    write_json(out_json, cost)
    log.error("%s: recovery training failed (%s); no cost measured", labels, failure)
    return cost


def run_cost(*, checkpoint_dir: str, adapter_dir: str | None, text_dir: str, out_json: str, labels: dict,
             batch_size: int, seq_len: int, new_tokens: int, repeats: int, runtime: Runtime) -> dict:
    """Rule ``cost``: write ``out_json`` for one evaluated model (``adapter_dir`` None: no
    recovery; an adapter whose training failed: :func:`failed_cost`)."""
    if new_tokens < 2:
        raise ValueError("cost.new_tokens must be >= 2")
    failure = adapter_failure(adapter_dir)
    if failure is not None:
        return failed_cost(out_json, labels, failure, repeats, runtime)
    runtime = runtime.start()
    device = runtime.device
    # latency of the deployment kernel, never of the dense copy training and scoring may use
    model, tokenizer = load_recovered(checkpoint_dir, adapter_dir, device=device, dtype=runtime.dtype,
                                      trust_remote_code=runtime.trust_remote_code, weights="kernel")
    recovery = read_json(Path(adapter_dir) / "manifest.json") if adapter_dir else {}
    # a method that adds text to the input (few-shot demonstrations) is timed on the longer input
    added = int(recovery.get("input_tokens_added") or 0)
    batch = latency_inputs(tokenizer, text_dir, batch_size=batch_size, seq_len=seq_len + added).to(device)
    latency = measure_latency(model, batch, batch[:1], new_tokens=new_tokens, repeats=repeats,
                              pad_token_id=tokenizer.pad_token_id)
    checkpoint_manifest = Path(checkpoint_dir) / "manifest.json"
    compression = read_json(checkpoint_manifest) if checkpoint_manifest.exists() else {}
    extra_params = safetensors_parameters(adapter_dir) if adapter_dir else 0
    extra_bytes = sum(f.stat().st_size for f in Path(adapter_dir).glob("*.safetensors")) if adapter_dir else 0
    # the weights a user ships: the GGUF file where the checkpoint keeps one (its safetensors
    # are the dequantized copy the torch path reads), else the safetensors
    gguf = sorted(Path(checkpoint_dir).glob("*.gguf"))
    checkpoint_bytes = sum(f.stat().st_size for f in (gguf or Path(checkpoint_dir).glob("*.safetensors")))
    cost = {
        **labels,
        "status": OK,
        "failure": "",
        "extra_params": extra_params,
        "extra_bytes": extra_bytes,
        "adapter_dir_bytes": dir_size(adapter_dir) if adapter_dir else 0,
        "checkpoint_bytes": checkpoint_bytes,
        "disk_bytes": checkpoint_bytes + extra_bytes,
        "training_time_s": recovery.get("training_time_s", 0.0),
        "trained": recovery.get("trained", True) if adapter_dir else None,
        "input_tokens_added": added,
        "training_tokens": recovery.get("budget", {}).get("tokens", 0),
        "compression_time_s": compression.get("wall_time_s"),
        "latency": latency,
        "latency_kernels": quantized_kernels(model) or ["dense"],
        "pool": pool_summary(recovery.get("pool")),  # a prompt pool's routing in training (None: no pool)
        "device": device,
        "dtype": runtime.dtype,
        "threads": runtime.threads,
        "repeats": repeats,
        "library_versions": library_versions(),
    }
    write_json(out_json, cost)
    log.info("%s: extra params %d, batch %.4f s, per token %.4f s", labels, extra_params,
             latency["batch"]["median_s"], latency["generation"]["per_token_s"])
    return cost
