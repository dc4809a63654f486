"""How an IDP pool chooses its prompts in training: one function per ``routing`` mode,
chosen through :data:`ROUTERS` (inference is always the argmax of the router's logits).

Each function takes the model, the pool expanded per example (B, m, n, hidden), the input
embeddings (B, L, hidden), the input mask and the examples' block indices, and returns a
:class:`Routed`: the selection layers' output states, the kept prompt's states, the choice,
the router's logits, an auxiliary loss (or None) and the mask of the input positions the
loss runs on.

``hard``, ``soft`` and ``gumbel`` choose from each block's first ``context_tokens`` tokens
(a question-sized context, as inference chooses from a question) and put the loss on the
rest: a position's choice never reads the token it learns to predict.

- ``hard``: the inference rule (argmax), only the chosen prompt gets gradients; nothing
  keeps the pool in use (it collapses: docs/idp.md).
- ``shard``: prompt i trains on the blocks whose index is i mod m (the whole block).
- ``soft``: a softmax(attention / temperature) mixture of the pool.
- ``curated``: prompt i's content trains only on the blocks of its own text source
  (``sources``; the whole block); with ``route_weight`` > 0 the router learns which
  source a context comes from (a cross-entropy on every prompt's score, read from the
  block's first ``context_tokens`` tokens); after training the router is centred on
  calibration spans of every source.
- ``gumbel``: a joint pool that cannot collapse: centred router logits, a straight-through
  Gumbel-softmax whose temperature and noise anneal (training ends on inference's argmax)
  and Switch Transformer's load-balancing loss over a running window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .idp_maths import (anneal, balance_loss, context_mask, router_logits,
                        straight_through_gumbel)


@dataclass
class Routed:
    x: torch.Tensor            # (B, m*n + L, hidden): the selection layers' output
    kept: torch.Tensor         # (B, n, hidden): the kept prompt's states after them
    selected: torch.Tensor     # (B,): the prompt each example trained with
    scores: torch.Tensor       # (B, m): the router's logits
    aux_loss: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None  # (B, L): input positions the loss runs on (None: every real one)


def gather_kept(x: torch.Tensor, selected: torch.Tensor, m: int, n: int) -> torch.Tensor:
    batch, _, hidden = x.shape
    index = (selected[:, None] * n + torch.arange(n, device=x.device)).unsqueeze(-1).expand(batch, n, hidden)
    return x[:, : m * n].gather(1, index)


def context_span(model, input_mask: torch.Tensor) -> torch.Tensor:
    """The span each block's choice is made from in training (its first ``context_tokens``
    real tokens, :func:`.idp_maths.context_mask`); the loss runs on the rest of the block,
    so a ``context_tokens`` that leaves a block no token to learn from is refused."""
    cfg = model.idp_config
    span = context_mask(input_mask, cfg.context_tokens)
    if not bool((input_mask - span).sum(dim=1).all()):
        raise ValueError(f"idp.context_tokens: {cfg.context_tokens} leaves no token of a training block to learn "
                         f"from (routing '{cfg.routing}': the choice reads the first context_tokens, the loss the "
                         "rest); lower it or raise recovery.budget.seq_len")
    return span


def _winner_only(model, pool, emb, input_mask, selected, score_mask=None) -> Routed:
    """The forward of the chosen prompts, with gradients to the chosen prompt of each example
    only; the router's logits read the queries of ``score_mask`` (default: every real one)."""
    m, n = pool.shape[1], pool.shape[2]
    keep = nn.functional.one_hot(selected, m).bool()[:, :, None, None]
    x, attention = model._selection_pass(torch.where(keep, pool, pool.detach()), emb, input_mask,
                                         score_mask=score_mask)
    return Routed(x, gather_kept(x, selected, m, n), selected, model.router(attention))


def route_hard(model, pool, emb, input_mask, block_index) -> Routed:
    span = context_span(model, input_mask)
    with torch.no_grad():
        _, attention = model._selection_pass(pool, emb, input_mask, score_mask=span)
    routed = _winner_only(model, pool, emb, input_mask, model.router(attention).argmax(dim=-1), score_mask=span)
    routed.loss_mask = input_mask - span
    return routed


def route_shard(model, pool, emb, input_mask, block_index) -> Routed:
    if block_index is None:
        raise ValueError("idp routing 'shard' needs the block index of every training example")
    return _winner_only(model, pool, emb, input_mask, block_index.to(emb.device) % pool.shape[1])


def route_curated(model, pool, emb, input_mask, block_index) -> Routed:
    """Each block trains its own source's prompt (the language-model loss reaches no other).
    With ``route_weight`` > 0 the router is trained too: a cross-entropy of the router's
    centred logits on the block's first ``context_tokens`` tokens against its source,
    whose gradient reaches every prompt's score (a second pass of the selection layers
    with the whole pool trainable, read for the scores only)."""
    if block_index is None or model.block_sources is None:
        raise ValueError("idp routing 'curated' needs the block index of every training example and the "
                         "source of every block (use_training_text)")
    source = model.block_sources[block_index.cpu()].to(emb.device)
    routed = _winner_only(model, pool, emb, input_mask, source)
    cfg = model.idp_config
    if cfg.route_weight > 0:
        _, attention = model._selection_pass(pool, emb, input_mask, score_mask=context_mask(input_mask,
                                                                                            cfg.context_tokens))
        raw = router_logits(attention)
        model.track_offset(raw.detach())
        routed.scores = raw - model.score_offset
        routed.aux_loss = cfg.route_weight * nn.functional.cross_entropy(routed.scores, source)
    return routed


def route_soft(model, pool, emb, input_mask, block_index) -> Routed:
    m, n = pool.shape[1], pool.shape[2]
    span = context_span(model, input_mask)
    x, attention = model._selection_pass(pool, emb, input_mask, score_mask=span)
    weights = torch.softmax(attention / model.idp_config.temperature, dim=-1)  # (B, m)
    kept = (x[:, : m * n].unflatten(1, (m, n)) * weights[:, :, None, None].to(x.dtype)).sum(dim=1)
    return Routed(x, kept, attention.argmax(dim=-1), model.router(attention), loss_mask=input_mask - span)


def route_gumbel(model, pool, emb, input_mask, block_index) -> Routed:
    cfg = model.idp_config
    m, n = pool.shape[1], pool.shape[2]
    span = context_span(model, input_mask)
    x, attention = model._selection_pass(pool, emb, input_mask, score_mask=span)
    raw = router_logits(attention)
    step = model.training_step
    model.track_offset(raw.detach())
    logits = raw - model.score_offset
    temperature = anneal(step, cfg.anneal_steps, cfg.temperature, cfg.final_temperature)
    noise = max(0.0, 1.0 - step / cfg.anneal_steps) if cfg.anneal_steps > 0 else 0.0
    weights, choice = straight_through_gumbel(logits, temperature, noise, model.generator)
    kept = (x[:, : m * n].unflatten(1, (m, n)) * weights[:, :, None, None].to(x.dtype)).sum(dim=1)
    share = model.track_share(choice)
    aux = cfg.balance_weight * balance_loss(torch.softmax(logits / temperature, dim=-1), share)
    return Routed(x, kept, choice, logits, aux_loss=aux, loss_mask=input_mask - span)


ROUTERS: dict[str, Callable[..., Routed]] = {
    "hard": route_hard,
    "shard": route_shard,
    "soft": route_soft,
    "curated": route_curated,
    "gumbel": route_gumbel,
}
# the modes whose router is centred (its input-independent part removed) for inference
CENTRED = frozenset({"curated", "gumbel"})
# the modes that train on the block index (the training loop passes it)
BY_BLOCK = frozenset({"shard", "curated"})
