"""The shared training loop: every recovery method gets the same budget and objective.

The budget (steps x batch_size x seq_len tokens of the training text, one seed) is set
once in config.yaml; the method decides only which parameters train and their lr.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from ..tokens import batch_schedule
from .objective import Objective
from .teacher_logits import distill_kl_topk

log = logging.getLogger(__name__)


class NonFiniteTrainingError(FloatingPointError):
    """Training diverged: ``step`` is the step where it did, ``losses`` the finite losses
    of the steps before it."""

    def __init__(self, message: str, step: int, losses=()):
        super().__init__(message)
        self.step = step
        self.losses = list(losses)


class NonFiniteLossError(NonFiniteTrainingError):
    pass


class NonFiniteWeightsError(NonFiniteTrainingError):
    pass


def check_finite_weights(params, step: int, losses=()) -> None:
    """Refuse trainable parameters that went NaN or infinite (a finite loss does not prove the
    update that followed it was finite); ``losses``: those of the steps so far."""
    import torch

    bad = sum(int((~torch.isfinite(p.detach())).sum()) for p in params)
    if bad:
        raise NonFiniteWeightsError(f"{bad} trainable value(s) are NaN or infinite after step {step} (learning rate "
                                    "too high?); no adapter written", step, losses)


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
    which a model that sets ``wants_block_index`` reads); returns (loss, parts).

    ``teacher``: the uncompressed model, or its cached top-k logits (a :class:`.teacher_logits.TeacherCache`,
    looked up by block index).

    Input-side methods return logits with their prompt positions first (as peft's soft
    prompts do): the last ``L`` positions are the ones aligned with the input tokens. A
    model whose output has a ``loss_mask`` (B, L) (a prompt pool that chooses from a block's
    first tokens) is distilled on those positions only, as its own next-token loss is.
    """
    import torch

    extra = {"block_index": block_index} if getattr(model, "wants_block_index", False) else {}
    out = model(input_ids=ids, labels=ids if objective.lm_weight > 0 else None, **extra)
    parts, loss = {}, 0.0
    aux = getattr(out, "aux_loss", None)  # a routing loss, as transformers' mixture-of-experts models return
    if aux is not None:
        parts["aux"] = aux
        loss = loss + aux
    if objective.lm_weight > 0:
        parts["lm"] = out.loss
        loss = loss + objective.lm_weight * out.loss
    if objective.kd_weight > 0:
        if teacher is None:
            raise ValueError(f"objective '{objective.loss}' needs the uncompressed model as teacher")
        length = ids.shape[1]
        if out.logits.shape[1] < length:
            raise RuntimeError(f"the model returned {out.logits.shape[1]} positions for {length} input tokens")
        # the positions the model's own loss runs on (a prompt pool that chooses from a block's
        # first tokens learns from the rest only); None: every position
        keep = getattr(out, "loss_mask", None)

        def kept(t):
            return t if keep is None else t[keep.bool()].unsqueeze(0)

        student = kept(out.logits[:, -length:])
        if hasattr(teacher, "topk_for"):  # the cached top-k logits (rule teacher_logits_<text>)
            if block_index is None:
                raise ValueError("cached teacher logits are looked up by block index; none given")
            values, indices = teacher.topk_for(block_index)
            parts["kd"] = distill_kl_topk(student, kept(values), kept(indices), objective.temperature)
        else:
            with torch.no_grad():
                teacher_logits = teacher(input_ids=ids).logits
            parts["kd"] = distill_kl(student, kept(teacher_logits), objective.temperature)
        loss = loss + objective.kd_weight * parts["kd"]
    return loss, {k: v.item() for k, v in parts.items()}


def float32_trainable(model) -> int:
    """Standard mixed precision: the frozen weights stay in the model's dtype (bfloat16 under
    ``dtype: auto`` on hardware that computes it natively), the trainable parameters (adapter
    weights, soft prompts) and so AdamW's state are float32. peft already casts its adapters
    to float32 (``autocast_adapter_dtype``); this casts whatever a method left in a lower
    precision. Returns how many it cast."""
    import torch

    cast = 0
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
            cast += 1
    return cast


def train_loop(model, blocks, *, steps: int, batch_size: int, lr: float, weight_decay: float,
               seed: int, device: str, objective: Objective | None = None, teacher=None,
               log_every: int = 10, checkpoints: dict[int, Callable[[list[float]], None]] | None = None,
               gradient_clip: float | None = None) -> list[float]:
    """Train on ``blocks`` with ``objective`` (default: next-token loss); returns the loss
    of every step.

    ``gradient_clip``: the global norm of the trainable parameters' gradient is clipped to
    it before each update (None: not clipped).
    ``checkpoints``: step -> a function called with the losses so far right after that
    step's update (it saves the adapter). The learning rate is constant (AdamW, no
    schedule) and the batch order is drawn step by step from the seed, so the state after
    step n does not depend on ``steps``: a checkpoint at n equals a run trained for n steps.

    Stops with NonFiniteLossError at the first NaN or infinite loss, and with
    NonFiniteWeightsError when an update left a trainable value NaN or infinite (checked
    before every checkpoint and at the end), before anything more is saved; both carry the
    step and the losses so far.
    """
    import torch

    objective = objective or Objective()
    float32_trainable(model)  # before the optimizer, so its state is float32 too
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("the recovery method left no trainable parameter")
    if teacher is not None and hasattr(teacher, "eval"):
        teacher.eval()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = batch_schedule(blocks.shape[0], steps=steps, batch_size=batch_size, seed=seed)
    model.train()
    losses = []
    start = time.perf_counter()
    for step, idx in enumerate(schedule, 1):
        loss, parts = objective_loss(model, blocks[idx].to(device), objective, teacher, block_index=torch.tensor(idx))
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"training loss became {loss.item()} at step {step} (learning rate too high?); "
                                     "no adapter written", step, losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if gradient_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip)
        optimizer.step()
        losses.append(loss.item())
        if checkpoints and step in checkpoints:
            check_finite_weights(params, step, losses)
            checkpoints[step](list(losses))
        if step % log_every == 0 or step in (1, steps):
            detail = " ".join(f"{k} {v:.4f}" for k, v in parts.items()) if len(parts) > 1 else ""
            history = getattr(model, "history", None)  # a prompt pool's choices per step
            if history:
                window = history[-(step % log_every or log_every):]
                detail += " chosen " + "/".join(str(sum(c)) for c in zip(*window))
            log.info("step %d/%d loss %.4f %s(%.1f s)", step, steps, loss.item(), detail + " " if detail else "",
                     time.perf_counter() - start)
    check_finite_weights(params, steps, losses)
    model.eval()
    return losses
