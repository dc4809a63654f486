"""IDP's pure tensor maths: attention masks, positions, the prompt scores and the router's
logits, the load-balancing loss and the straight-through Gumbel choice.

No model here: every function takes and returns tensors, so each is tested on its own.
"""

from __future__ import annotations

import torch


def selection_mask(pool_size: int, prompt_len: int, input_mask: torch.Tensor) -> torch.Tensor:
    """Boolean (B, S, S) attention pattern of the selection layers, S = m*n + L.

    Prompt tokens attend causally within their own prompt; input token i attends to
    every prompt token and to non-padded input tokens j <= i.
    """
    batch, length = input_mask.shape
    p = pool_size * prompt_len
    size = p + length
    allowed = torch.zeros(size, size, dtype=torch.bool, device=input_mask.device)
    causal_n = torch.ones(prompt_len, prompt_len, dtype=torch.bool, device=input_mask.device).tril()
    for j in range(pool_size):
        s = j * prompt_len
        allowed[s:s + prompt_len, s:s + prompt_len] = causal_n
    allowed[p:, :p] = True
    allowed[p:, p:] = torch.ones(length, length, dtype=torch.bool, device=input_mask.device).tril()
    allowed = allowed.unsqueeze(0).expand(batch, size, size).clone()
    allowed[:, :, p:] &= input_mask.bool().unsqueeze(1)
    return allowed


def causal_mask(prompt_len: int, input_mask: torch.Tensor) -> torch.Tensor:
    """Boolean (B, S, S) causal pattern over [prompt; input], S = n + L, padding masked."""
    batch, length = input_mask.shape
    size = prompt_len + length
    allowed = torch.ones(size, size, dtype=torch.bool, device=input_mask.device).tril()
    allowed = allowed.unsqueeze(0).expand(batch, size, size).clone()
    allowed[:, :, prompt_len:] &= input_mask.bool().unsqueeze(1)
    return allowed


def input_positions(input_mask: torch.Tensor, offset: int) -> torch.Tensor:
    """Position ids of the input tokens: ``offset``, ``offset + 1``, ... over the real
    tokens whatever the padding side (padding repeats a neighbour's position; it is masked)."""
    return offset + (input_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, K) boolean -> (B, 1, Q, K) additive mask, as HF attention layers take it."""
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    out.masked_fill_(~mask, torch.finfo(dtype).min)
    return out.unsqueeze(1)


def prompt_scores(attn: torch.Tensor, pool_size: int, prompt_len: int, input_mask: torch.Tensor) -> torch.Tensor:
    """Mean attention that the input tokens pay to each prompt's tokens: (B, m).

    ``attn``: (B, heads, S, S) attention probabilities of one selection layer.
    Averaged over heads, over the prompt's tokens and over non-padded input queries.
    """
    p = pool_size * prompt_len
    to_prompts = attn[:, :, p:, :p].mean(dim=1)  # (B, L, m*n), mean over heads
    per_prompt = to_prompts.unflatten(-1, (pool_size, prompt_len)).mean(dim=-1)  # (B, L, m)
    weights = input_mask.to(per_prompt.dtype).unsqueeze(-1)
    return (per_prompt * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def router_logits(attention: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """The router's logits (B, m): the log of each prompt's mean attention, less its
    input-independent part ``offset`` (m,) (the mean log attention on calibration inputs;
    None or zeros: not centred). The choice is their argmax; the log keeps the argmax of
    the raw attention when nothing is centred."""
    logits = attention.float().clamp(min=1e-30).log()
    return logits if offset is None else logits - offset.to(logits)


def context_mask(input_mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """``input_mask`` kept on each row's first ``tokens`` real tokens only (the span a
    choice is made from in training, shaped like a question's context at inference)."""
    return input_mask * (input_mask.long().cumsum(dim=-1) <= tokens).to(input_mask.dtype)


def balance_loss(probs: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's load-balancing loss, m * sum_i f_i * P_i: ``share`` f (m,) the
    fraction of inputs routed to each prompt (no gradient; a running mean over steps, the
    batch being small), ``probs`` (B, m) the router's probabilities, P their batch mean.
    It is 1 for an evenly used pool and grows as the pool collapses onto the prompts the
    router already favours; its gradient lowers the probability of the over-used ones."""
    m = probs.shape[-1]
    return m * (share.detach().to(probs) * probs.mean(dim=0)).sum()


def straight_through_gumbel(logits: torch.Tensor, temperature: float, noise: float,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights (B, m), choice (B,)): a straight-through Gumbel-softmax choice.

    The forward value of ``weights`` is the one-hot of argmax(logits + noise * g), g Gumbel
    draws from ``generator``; its gradient is that of softmax((logits + noise * g) /
    temperature), so every prompt's logit gets a gradient, not only the winner's. With
    ``noise`` 0 the choice is the inference rule's argmax."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device if generator is None else
                   generator.device).to(logits.device)
    g = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))
    perturbed = logits + noise * g
    soft = torch.softmax(perturbed / temperature, dim=-1)
    choice = perturbed.argmax(dim=-1)
    hard = torch.nn.functional.one_hot(choice, logits.shape[-1]).to(soft)
    return hard - soft.detach() + soft, choice


def anneal(step: int, steps: int, start: float, end: float) -> float:
    """Geometric interpolation from ``start`` (step 0) to ``end`` (step ``steps`` and after)."""
    if steps <= 0:
        return end
    frac = min(step / steps, 1.0)
    return start * (end / start) ** frac
