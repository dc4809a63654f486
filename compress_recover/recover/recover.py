"""Rule ``recover_<method>``: train one registered recovery method on a compressed model
and save its adapter with a manifest (method, objective, budget, losses, time, merge note,
``status`` ok), or, when the training diverged, a manifest alone with ``status`` failed and why."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial
from pathlib import Path

from ..failures import OK, failed_record
from ..io import atomic_dir, dir_size, read_json, write_manifest
from ..modeling import dense_on_cpu, load_model
from ..registry import MethodConfig, NoMethod
from ..runs import budget_tokens
from ..runtime import Runtime, library_versions
from ..shape import ModelShape, check_context
from ..tokens import budget_steps, token_blocks
from . import RECOVERY
from .objective import Objective
from .teacher_logits import LOGITS_FILE, TeacherCache
from .train import NonFiniteTrainingError, train_loop

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
    """The cached top-k teacher logits (a folder written by rule ``teacher_logits_<text>``, checked
    against this job's training tokens), or else the uncompressed checkpoint itself."""
    if (Path(teacher_dir) / LOGITS_FILE).is_file():
        return TeacherCache(teacher_dir, blocks, device=load["device"])
    teacher, _ = load_model(teacher_dir, **load)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def run_recovery(*, checkpoint_dir: str, out_dir: str, method_config: dict, key: str, text_dir: str,
                 steps: int | list[int], batch_size: int, seq_len: int, runtime: Runtime,
                 objective: dict | None = None, teacher_dir: str | None = None, seed: int | None = None,
                 checkpoint_dirs: list[str] = (), gradient_clip: float | None = None,
                 source_dirs: list[str] | None = None) -> dict:
    """Train recovery method ``method_config`` on the compressed model with ``objective``
    (distillation needs ``teacher_dir``: the uncompressed model's cached logits on the
    training text, rule ``teacher_logits_<text>``, or the uncompressed checkpoint); save it in ``out_dir``.

    ``steps``: the budget, or a list of budgets: training runs to the largest (saved in
    ``out_dir``) and saves the adapter after each earlier one in ``checkpoint_dirs`` (same
    order), each a complete adapter folder with its own manifest.
    A training that diverges (a NaN or infinite loss or weight) is a result, not a crash:
    every folder it had not yet reached (``out_dir`` and the later checkpoints; those saved
    before stay valid adapters) is written by :func:`save_failure`, a manifest with
    ``status`` failed and why, and no weights; the returned manifest is ``out_dir``'s.
    ``seed``: the run's training seed (one of ``recovery.seeds``): it draws the initial
    trainable parameters and the training blocks; None takes ``runtime.seed``.
    ``source_dirs``: the training texts of a method that trains one part per text (its
    config's ``training_texts``; a curated prompt pool), in its order; it then chooses the
    training blocks from them (``use_training_text``).
    A method that trains nothing (its config's ``trained`` is False) is refused: rule
    ``compute_<method>`` computes it (:func:`.compute.run_compute`)."""
    config = RECOVERY.parse(method_config, key)
    shape = ModelShape.of_checkpoint(checkpoint_dir)
    config.check_shape(key, str(checkpoint_dir), shape)
    check_context(key, str(checkpoint_dir), shape, config, seq_len)
    if not config.trained:
        raise ValueError(f"{key}: method '{config.method}' trains nothing; rule compute_{config.method} computes it "
                         "(compress_recover.recover.compute.run_compute)")
    all_steps = budget_steps(steps)
    if len(checkpoint_dirs) != len(all_steps) - 1:
        raise ValueError(f"{key}: budget steps {all_steps} need {len(all_steps) - 1} checkpoint folder(s) for the "
                         f"earlier steps, got {len(checkpoint_dirs)}")
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
    texts = list(source_dirs) if source_dirs else [text_dir]
    wanted = len(config.training_texts("corpus"))
    if len(texts) != wanted:
        raise ValueError(f"{key}: the method trains on {wanted} text(s), {len(texts)} given")
    if len(texts) > 1 and objective.needs_teacher:
        raise ValueError(f"{key}.objective: loss '{objective.loss}' needs the teacher's logits on one training "
                         "text; a run that trains on several texts takes loss: lm")
    text_blocks = [token_blocks(tokenizer, Path(t) / "train.jsonl", seq_len) for t in texts]
    model = prepare(model, config, seed)
    if hasattr(model, "use_training_text"):  # it chooses its training blocks and keeps what it measures on
        blocks = model.use_training_text(text_blocks, seed)
    else:
        (blocks,) = text_blocks
    teacher = None
    if objective.needs_teacher:
        teacher = _teacher(teacher_dir, blocks, load)
    pool_before = model.routing_summary() if hasattr(model, "routing_summary") else None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    final = all_steps[-1]
    log.info("%s: %d trainable parameters; objective %s; %d steps x %d x %d tokens from %d blocks%s", config.slug(),
             trainable, objective.params(), final, batch_size, seq_len, blocks.shape[0],
             f"; checkpoints after steps {all_steps[:-1]}" if len(all_steps) > 1 else "")
    common = {
        "method": config.method,
        "name": config.slug(),
        "params": config.params(),
        "objective": objective.params(),
        "text": text_dir,
        "texts": texts,
        "teacher": teacher_dir,
        "teacher_logits": ({k: teacher.manifest[k] for k in ("teacher", "top_k", "top_k_mass_mean", "sha256")}
                           if isinstance(teacher, TeacherCache) else None),
        "trainable_parameters": int(trainable),
        "device": device,
        "dtype": runtime.dtype,  # the frozen weights' precision; trainable parameters are float32
        "trainable_dtype": "float32",
        "threads": runtime.threads,
        "weights": weights,
        "library_versions": library_versions(),
        "merge": merge_note(checkpoint_dir, config),
        "trained": True,
    }
    budget = {"batch_size": batch_size, "seq_len": seq_len, "seed": seed, "budget_steps": all_steps,
              "gradient_clip": gradient_clip}
    start = time.perf_counter()
    written = set()

    def save(folder: str, losses: list[float]) -> dict:
        written.add(folder)
        record = {}
        if hasattr(model, "training_record"):  # a prompt pool: its choices before, during and after training
            record["pool"] = {"before": pool_before, **model.training_record()}
        return save_adapter(model, folder, {**common, **record}, {**budget, "steps": len(losses)}, losses,
                            time.perf_counter() - start)

    checkpoints = {n: partial(save, folder) for n, folder in zip(all_steps[:-1], checkpoint_dirs, strict=True)}
    try:
        losses = train_loop(model, blocks, steps=final, batch_size=batch_size, lr=config.lr,
                            weight_decay=getattr(config, "weight_decay", 0.0), seed=seed, device=device,
                            objective=objective, teacher=teacher, checkpoints=checkpoints,
                            gradient_clip=gradient_clip)
    except NonFiniteTrainingError as err:
        unwritten = [(n, f) for n, f in zip(all_steps, [*checkpoint_dirs, out_dir], strict=True) if f not in written]
        log.error("%s: training diverged: %s; recorded as failed in %s", config.slug(), err,
                  ", ".join(f for _, f in unwritten))
        failures = [save_failure(folder, common, {**budget, "steps": n}, str(err), failed_at_step=err.step,
                                 losses=err.losses, train_time=time.perf_counter() - start)
                    for n, folder in unwritten]
        return failures[-1]
    return save(out_dir, losses)


def _budget(budget: dict) -> dict:
    return {**budget, "tokens": budget_tokens(budget["steps"], budget)}


def save_adapter(model, out_dir: str, common: dict, budget: dict, losses: list[float], train_time: float) -> dict:
    """Write the adapter (safetensors) and its manifest (``status`` ok) atomically; returns the manifest."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        manifest = {
            **common,
            "status": OK,
            "budget": _budget(budget),
            "training_time_s": round(train_time, 2),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "losses": losses,
        }
        manifest["adapter_bytes"] = dir_size(tmp)
        manifest = write_manifest(tmp, manifest)
    return manifest


def save_failure(folder: str, common: dict, budget: dict, reason: str, *, failed_at_step: int,
                 losses: list[float], train_time: float) -> dict:
    """Record a training that diverged before the adapter of ``folder`` (planned for
    ``budget["steps"]`` steps) was reached: a folder holding only its ``manifest.json``, with
    ``status`` failed, the ``failure`` (why), the step it failed at and the losses before
    it; no weights. Written atomically; returns the manifest."""
    with atomic_dir(folder) as tmp:
        manifest = write_manifest(tmp, {
            **common,
            **failed_record(reason),
            "failed_at_step": failed_at_step,
            "budget": _budget(budget),
            "training_time_s": round(train_time, 2),
            "losses": list(losses),
        })
    return manifest
