"""IDP generation: greedy (or sampled) decoding with a KV cache, the prompt chosen once
from the input (the prefill) and kept for every generated token (tested equal to full
forward passes, and to the choice scoring makes)."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
             max_new_tokens: int | None = None, max_length: int | None = None, min_new_tokens: int = 0,
             do_sample: bool = False, temperature: float | None = None, stopping_criteria=None,
             pad_token_id: int | None = None, eos_token_id=None, use_cache: bool = True,
             generator: torch.Generator | None = None, **unsupported) -> torch.Tensor:
    """Greedy (or temperature-sampled) decoding with a KV cache; returns prompt + new tokens.

    The prompt is chosen once, from the input (the prefill), and kept for every
    generated token. Accepts what lm-eval's ``generate_until`` passes (``max_length``,
    ``stopping_criteria``, ``pad_token_id``, left-padded batches with their mask).
    """
    from transformers import DynamicCache

    if unsupported:
        raise TypeError(f"IDPModel.generate does not support {sorted(unsupported)}")
    if not use_cache:
        raise ValueError("IDPModel.generate always uses its KV cache")
    length = input_ids.shape[1]
    if max_new_tokens is None:
        if max_length is None:
            raise ValueError("give max_new_tokens or max_length")
        max_new_tokens = max_length - length
    if max_new_tokens < 1:
        return input_ids
    if eos_token_id is None:
        eos_token_id = self.generation_config.eos_token_id
    eos = torch.tensor([] if eos_token_id is None else
                       ([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)),
                       device=input_ids.device, dtype=torch.long)
    pad = pad_token_id if pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
    mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
    was_training = self.training
    self.eval()
    cache = DynamicCache()
    logits = self(input_ids, attention_mask=mask, past_key_values=cache, logits_to_keep=1).logits[:, -1]
    ids, done = input_ids, torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for step in range(max_new_tokens):
        scores = logits.float()
        if step < min_new_tokens and len(eos):
            scores[:, eos] = -float("inf")
        if do_sample:
            probs = torch.softmax(scores / (temperature or 1.0), dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            token = scores.argmax(dim=-1)
        token = torch.where(done, torch.full_like(token, pad), token)
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        done |= torch.isin(token, eos)
        if stopping_criteria is not None:
            done |= torch.as_tensor(stopping_criteria(ids, scores), device=ids.device).bool()
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        logits = self.extend(token[:, None], mask, cache, logits_to_keep=1)[:, -1]
    self.train(was_training)
    return ids
