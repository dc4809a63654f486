"""The shared training loop and the recover job: every method gets the same budget.

The budget (steps x batch_size x seq_len tokens of the training text, one seed) is set
once in config.yaml; the method decides only which parameters train and their lr.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from ..io import atomic_dir, dir_size, write_json
from ..runtime import configure_threads, library_versions, resolve_device, seed_everything
from ..textdata import batch_schedule, token_blocks
from . import RECOVERY
from .objective import Objective

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


def distill_kl(student_logits, teacher_logits, temperature: float):
    """Mean over tokens of KL(teacher || student) of the softened next-token distributions,
    times temperature**2. Both (B, L, V), aligned on the same L input positions."""
    import torch.nn.functional as F

    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = F.kl_div(student.flatten(0, 1), teacher.flatten(0, 1), log_target=True, reduction="batchmean")
    return kl * t * t


def objective_loss(model, ids, objective: Objective, teacher=None, block_index=None):
    """The objective's loss on one batch of full blocks ``ids`` (with their block indices,
    which IDP's shard routing reads); returns (loss, parts).

    Prompt methods return logits with their prompt positions first (peft's prompt tuning
    and IDP): the last ``L`` positions are the ones aligned with the input tokens.
    """
    import torch

    extra = {"block_index": block_index} if getattr(model, "wants_block_index", False) else {}
    out = model(input_ids=ids, labels=ids if objective.lm_weight > 0 else None, **extra)
    parts, loss = {}, 0.0
    if objective.lm_weight > 0:
        parts["lm"] = out.loss
        loss = loss + objective.lm_weight * out.loss
    if objective.kd_weight > 0:
        if teacher is None:
            raise ValueError(f"objective '{objective.loss}' needs the uncompressed model as teacher")
        with torch.no_grad():
            teacher_logits = teacher(input_ids=ids).logits
        length = ids.shape[1]
        if out.logits.shape[1] < length:
            raise RuntimeError(f"the model returned {out.logits.shape[1]} positions for {length} input tokens")
        parts["kd"] = distill_kl(out.logits[:, -length:], teacher_logits, objective.temperature)
        loss = loss + objective.kd_weight * parts["kd"]
    return loss, {k: v.item() for k, v in parts.items()}


def train_loop(model, blocks, *, steps: int, batch_size: int, lr: float, weight_decay: float,
               seed: int, device: str, objective: Objective | None = None, teacher=None,
               log_every: int = 10) -> list[float]:
    """Train on ``blocks`` with ``objective`` (default: next-token loss); returns the loss
    of every step.

    Stops with NonFiniteLossError at the first NaN or infinite loss, before anything
    is saved.
    """
    import torch

    objective = objective or Objective()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("the recovery method left no trainable parameter")
    if teacher is not None:
        teacher.eval()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = batch_schedule(blocks.shape[0], steps=steps, batch_size=batch_size, seed=seed)
    model.train()
    losses = []
    start = time.perf_counter()
    for step, idx in enumerate(schedule, 1):
        loss, parts = objective_loss(model, blocks[idx].to(device), objective, teacher, block_index=torch.tensor(idx))
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"training loss became {loss.item()} at step {step}; no adapter written")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % log_every == 0 or step in (1, steps):
            detail = " ".join(f"{k} {v:.4f}" for k, v in parts.items()) if len(parts) > 1 else ""
            log.info("step %d/%d loss %.4f %s(%.1f s)", step, steps, loss.item(), detail + " " if detail else "",
                     time.perf_counter() - start)
    model.eval()
    return losses


def merge_note(checkpoint_dir: str, method: str) -> dict:
    """Whether merging a LoRA adapter into this checkpoint would keep its compression.

    Adapters are kept unmerged: merging B @ A into a pruned weight fills its zeros,
    and into a GPTQ weight would need requantization.
    """
    from ..io import read_json

    manifest_file = Path(checkpoint_dir) / "manifest.json"
    details = read_json(manifest_file).get("details", {}) if manifest_file.exists() else {}
    if method != "lora":
        return {"merged": False, "note": "input-side method: nothing to merge into the weights"}
    if details.get("pruned_layers_sparsity"):
        return {"merged": False, "merge_breaks_sparsity": True,
                "note": f"merging would densify layers pruned to {details['pruned_layers_sparsity']:.3f} sparsity"}
    if details.get("bits"):
        return {"merged": False, "merge_breaks_quantization": True,
                "note": f"merging into {details['bits']}-bit GPTQ weights would need requantization"}
    return {"merged": False, "merge_breaks_sparsity": False, "note": "dense checkpoint: merging is lossless"}


def run_recovery(*, checkpoint_dir: str, out_dir: str, method_config: dict, key: str, text_dir: str,
                 steps: int, batch_size: int, seq_len: int, device: str, dtype: str, seed: int,
                 threads: int, objective: dict | None = None, teacher_dir: str | None = None,
                 trust_remote_code: bool = False) -> dict:
    """Train recovery method ``method_config`` on the compressed model with ``objective``
    (distillation needs ``teacher_dir``, the uncompressed checkpoint); save it in ``out_dir``."""
    from ..modeling import load_model

    config = RECOVERY.parse(method_config, key)
    objective = Objective.from_dict(objective, f"{key}.objective")
    if objective.needs_teacher and not teacher_dir:
        raise ValueError(f"{key}.objective: loss '{objective.loss}' needs the uncompressed checkpoint (teacher_dir)")
    prepare = RECOVERY[config.method].load()
    configure_threads(threads)
    seed_everything(seed)
    device = resolve_device(device)
    model, tokenizer = load_model(checkpoint_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    blocks = token_blocks(tokenizer, Path(text_dir) / "train.jsonl", seq_len)
    teacher = None
    if objective.needs_teacher:
        teacher, _ = load_model(teacher_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        for p in teacher.parameters():
            p.requires_grad_(False)
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
            "budget": {"steps": steps, "batch_size": batch_size, "seq_len": seq_len,
                       "tokens": steps * batch_size * seq_len, "seed": seed},
            "trainable_parameters": int(trainable),
            "training_time_s": round(train_time, 2),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "losses": losses,
            "device": device,
            "threads": threads,
            "library_versions": library_versions(),
        }
        manifest["adapter_bytes"] = dir_size(tmp)
        manifest["merge"] = merge_note(checkpoint_dir, config.method)
        write_json(tmp / "manifest.json", manifest)
    return manifest
