"""Rule ``recover_<method>`` for a method that trains nothing (``trained = False``): an
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
from ..registry import MethodConfig
from ..runtime import Runtime, library_versions

log = logging.getLogger(__name__)


def run_training_free(*, config: MethodConfig, key: str, checkpoint_dir: str, out_dir: str, runtime: Runtime,
                      seed: int | None, merge: dict, **inputs) -> dict:
    """Compute (or build) the recovery ``config`` for the compressed ``checkpoint_dir`` into
    ``out_dir``; ``inputs`` are passed to its entry point (``base_dir``, ``text_dir``,
    ``calibration``, ``fewshot_task_dirs``). Returns the manifest."""
    from . import RECOVERY

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
