"""Rule ``compute_<method>``: a recovery method that trains nothing (``trained = False``): an
adapter computed from the weights and calibration data, or a record of prompt settings.

The method's entry point returns (a PEFT model to save, or None; its details); the folder
gets the adapter (safetensors) if any and a manifest like a trained run's (``status`` ok,
``trained`` false, no budget, no losses; ``training_time_s`` is the time the adapter took
to compute, so the cost tables stay comparable), written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from ..failures import OK
from ..io import atomic_dir, dir_size, write_manifest
from ..runtime import Runtime, library_versions
from ..shape import ModelShape

log = logging.getLogger(__name__)


def run_compute(*, checkpoint_dir: str, out_dir: str, method_config: dict, key: str, runtime: Runtime,
                seed: int | None = None, text_dir: str | None = None, base_dir: str | None = None,
                fewshot_task_dirs: list[str] | str = ()) -> dict:
    """Compute (or build) the training-free recovery ``method_config`` for the compressed
    ``checkpoint_dir`` into ``out_dir``, with what its entry point reads: ``text_dir`` (the
    calibration text), ``base_dir`` (the uncompressed checkpoint), ``fewshot_task_dirs``
    (the few-shot task folders). ``seed``: the run's seed (None: the runtime's). Returns the manifest."""
    from . import RECOVERY
    from .recover import merge_note

    config = RECOVERY.parse(method_config, key)
    config.check_shape(key, str(checkpoint_dir), ModelShape.of_checkpoint(checkpoint_dir))
    if config.trained:
        raise ValueError(f"{key}: method '{config.method}' trains; rule recover_{config.method} trains it")
    fewshot_task_dirs = [fewshot_task_dirs] if isinstance(fewshot_task_dirs, str) else list(fewshot_task_dirs)
    inputs = {"base_dir": base_dir, "text_dir": text_dir, "fewshot_task_dirs": fewshot_task_dirs}
    merge = merge_note(checkpoint_dir, config)
    if seed is not None:
        runtime = dataclasses.replace(runtime, seed=seed)
    runtime = runtime.start()
    entry = RECOVERY[config.method].load()
    start = time.perf_counter()
    model, details = entry(config=config, key=key, checkpoint_dir=checkpoint_dir, runtime=runtime, **inputs)
    elapsed = time.perf_counter() - start
    # the entry point returns its adapter's parameters as the trainable ones (as peft does)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) if model is not None else 0
    with atomic_dir(out_dir) as tmp:
        if model is not None:
            model.save_pretrained(str(tmp), safe_serialization=True)
        manifest = {
            "method": config.method, "name": config.slug(), "params": config.params(), "trained": False,
            "objective": None, "text": inputs.get("text_dir"), "texts": [], "teacher": None, "teacher_logits": None,
            "status": OK, "details": details, "input_tokens_added": details.get("input_tokens_added", 0),
            "shortfalls": details.get("shortfalls", []),
            "trainable_parameters": int(trainable), "device": runtime.device, "dtype": "float32",
            "threads": runtime.threads, "seed": runtime.seed, "library_versions": library_versions(), "merge": merge,
            "budget": {"steps": 0, "tokens": 0, "seed": runtime.seed},
            "training_time_s": round(elapsed, 2), "compute_time_s": round(elapsed, 2), "losses": [],
        }
        manifest["adapter_bytes"] = dir_size(tmp)
        manifest = write_manifest(tmp, manifest)
    log.info("%s: computed in %.1f s without training; %d adapter parameters; %s", config.slug(), elapsed,
             trainable, details)
    return manifest
