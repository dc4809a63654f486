"""Rule ``recover_<method>``: train one registered recovery method on a compressed model
and save its adapter with a manifest (method, objective, budget, losses, time, merge note)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from ..io import atomic_dir, dir_size, read_json, write_json
from ..modeling import dense_on_cpu, load_model
from ..registry import MethodConfig, NoMethod
from ..runtime import Runtime, library_versions
from ..tokens import token_blocks
from . import RECOVERY
from .objective import Objective
from .teacher_logits import LOGITS_FILE, TeacherCache
from .train import train_loop

log = logging.getLogger(__name__)


def merge_note(checkpoint_dir: str, config: MethodConfig) -> dict:
    """Whether merging the adapter into this checkpoint would keep its compression.

    Adapters are kept unmerged: merging a weight adapter into a compressed weight undoes
    the compression (the compression method's ``merge_effect`` in the checkpoint's
    manifest says how); a checkpoint without one (the downloaded model) is dense.
    """
    if not config.mergeable:
        return {"merged": False, "note": f"{config.side}-side method: nothing to merge into the weights"}
    manifest_file = Path(checkpoint_dir) / "manifest.json"
    manifest = read_json(manifest_file) if manifest_file.exists() else {}
    effect = manifest.get("merge_effect") or NoMethod().merge_effect({})
    return {"merged": False, **effect}


def _teacher(teacher_dir: str, blocks, load: dict):
    """The cached top-k teacher logits (a folder written by rule ``teacher_logits``, checked
    against this job's training tokens), or else the uncompressed checkpoint itself."""
    if (Path(teacher_dir) / LOGITS_FILE).is_file():
        return TeacherCache(teacher_dir, blocks, device=load["device"])
    teacher, _ = load_model(teacher_dir, **load)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def run_recovery(*, checkpoint_dir: str, out_dir: str, method_config: dict, key: str, text_dir: str,
                 steps: int, batch_size: int, seq_len: int, runtime: Runtime, objective: dict | None = None,
                 teacher_dir: str | None = None, seed: int | None = None) -> dict:
    """Train recovery method ``method_config`` on the compressed model with ``objective``
    (distillation needs ``teacher_dir``: the uncompressed model's cached logits on the
    training text, rule ``teacher_logits``, or the uncompressed checkpoint); save it in ``out_dir``.

    ``seed``: the run's training seed (one of ``recovery.seeds``): it draws the initial
    trainable parameters and the training blocks; None takes ``runtime.seed``."""
    config = RECOVERY.parse(method_config, key)
    objective = Objective.from_dict(objective, f"{key}.objective")
    if objective.needs_teacher and not teacher_dir:
        raise ValueError(f"{key}.objective: loss '{objective.loss}' needs the uncompressed checkpoint (teacher_dir)")
    prepare = RECOVERY[config.method].load()
    if seed is not None:  # every random draw of this job follows the run's seed
        runtime = dataclasses.replace(runtime, seed=seed)
    runtime = runtime.start()
    device, seed = runtime.device, runtime.seed
    load = {"device": device, "dtype": runtime.dtype, "trust_remote_code": runtime.trust_remote_code}
    weights = dense_on_cpu(device)
    model, tokenizer = load_model(checkpoint_dir, **load, weights=weights)
    blocks = token_blocks(tokenizer, Path(text_dir) / "train.jsonl", seq_len)
    teacher = None
    if objective.needs_teacher:
        teacher = _teacher(teacher_dir, blocks, load)
    model = prepare(model, config, seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("%s: %d trainable parameters; objective %s; %d steps x %d x %d tokens from %d blocks", config.slug(),
             trainable, objective.params(), steps, batch_size, seq_len, blocks.shape[0])
    start = time.perf_counter()
    losses = train_loop(model, blocks, steps=steps, batch_size=batch_size, lr=config.lr,
                        weight_decay=getattr(config, "weight_decay", 0.0), seed=seed, device=device,
                        objective=objective, teacher=teacher)
    train_time = time.perf_counter() - start
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        manifest = {
            "method": config.method,
            "name": config.slug(),
            "params": config.params(),
            "objective": objective.params(),
            "teacher": teacher_dir,
            "teacher_logits": ({k: teacher.manifest[k] for k in ("teacher", "top_k", "top_k_mass_mean", "sha256")}
                               if isinstance(teacher, TeacherCache) else None),
            "budget": {"steps": steps, "batch_size": batch_size, "seq_len": seq_len,
                       "tokens": steps * batch_size * seq_len, "seed": seed},
            "trainable_parameters": int(trainable),
            "training_time_s": round(train_time, 2),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "losses": losses,
            "device": device,
            "threads": runtime.threads,
            "weights": weights,
            "library_versions": library_versions(),
        }
        manifest["adapter_bytes"] = dir_size(tmp)
        manifest["merge"] = merge_note(checkpoint_dir, config)
        write_json(tmp / "manifest.json", manifest)
    return manifest
