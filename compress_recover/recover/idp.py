"""Inference-time Dynamic Prompting (IDP): our reference implementation.

A pool of ``m`` soft prompts of ``n`` tokens each. In the first ``selection_layers``
decoder layers all ``m`` prompts stand before the input (each prompt at positions
0..n-1, the input after them at n, n+1, ...; a prompt attends only to itself, the input
attends to every prompt and causally to itself). Each prompt is scored by the mean
attention the (non-padded) input tokens pay to its tokens, averaged over heads and over
the selection layers; per example the argmax prompt is kept and the others are dropped
for the rest of the forward pass, so the remaining layers cost what one prompt costs.

The output logits have the kept prompt's ``n`` positions first, as peft's prompt
tuning has. With ``m = 1`` the model is exactly prompt tuning with that prompt.

The choice is causal at inference: it reads the tokens of the call that fills the KV
cache (the prefill) and nothing after them. Scoring runs a question's context alone (the
prompt is chosen there, once for all its answer choices) and each choice on a copy of
that cache with :meth:`IDPModel.extend`; generation chooses the same way from the same
context, so scoring and generation agree (tested). A single call on a whole sequence
(training) chooses from that whole sequence.

Saved as ``idp_prompts.safetensors`` (tensor ``prompts``, shape (m, n, hidden)) and
``idp_config.json``; :func:`load_idp` (the method's registered adapter loader) puts a
saved pool on a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .idp_config import IDPConfig

PROMPTS_FILE = "idp_prompts.safetensors"
CONFIG_FILE = "idp_config.json"


# ---- pure tensor maths -------------------------------------------------------------

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


# ---- the model --------------------------------------------------------------------

# Arguments HF-style callers pass that change nothing here.
_IGNORED_KWARGS = {"use_cache", "return_dict"}


class _Output:
    def __init__(self, logits, loss=None, selected=None, scores=None):
        self.logits, self.loss, self.selected, self.scores = logits, loss, selected, scores

    def __getitem__(self, key):
        return getattr(self, key)


class IDPModel(nn.Module):
    """A frozen decoder-only HF causal LM (Llama family layout) with an IDP prompt pool.

    A :class:`compress_recover.prompt_choice.PromptChooser` (``prompts``, ``extend``, the
    output's ``scores`` and the two attributes below)."""

    # The prompt is chosen from the tokens of the call that fills the cache: a scorer must
    # run a context alone and continue it with `extend` (see the module docstring).
    chooses_from_context: ClassVar[bool] = True
    # the samples field an evaluation records the chosen prompt in (and its ablation scores)
    choice_field: ClassVar[str] = IDPConfig.choice_field

    def __init__(self, model, prompts: torch.Tensor, config: IDPConfig):
        super().__init__()
        inner = getattr(model, "model", None)
        if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
            raise TypeError(f"IDP needs a decoder-only model with the Llama layout; got {type(model).__name__}")
        if not 1 <= config.selection_layers < len(inner.layers):
            raise ValueError(f"idp.selection_layers: {config.selection_layers} must be in [1, {len(inner.layers) - 1}]")
        # Attention probabilities are read off the selection layers only: those run with eager
        # attention (which returns them), the others with the model's own (e.g. sdpa).
        self.model = model
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.prompts = nn.Parameter(prompts.detach().clone().float())
        self.idp_config = config
        self.wants_block_index = config.routing == "shard"

    # attributes lm-eval's HFLM and generation read off a model
    @property
    def config(self):
        return self.model.config

    @property
    def device(self):
        return self.model.device

    @property
    def dtype(self):
        return self.model.dtype

    @property
    def generation_config(self):
        return self.model.generation_config

    def tie_weights(self, *args, **kwargs):
        return None

    def _layers(self, x, layers, mask, positions, capture: list | None = None, cache=None):
        inner = self.model.model
        cos_sin = inner.rotary_emb(x, position_ids=positions)
        config = self.model.config
        previous = config._attn_implementation
        if capture is not None:
            config._attn_implementation = "eager"
        try:
            for layer in layers:
                hook = None
                if capture is not None:
                    hook = layer.self_attn.register_forward_hook(lambda mod, args, out: capture.append(out[1]))
                try:
                    x = layer(x, attention_mask=mask, position_ids=positions, position_embeddings=cos_sin,
                              past_key_values=cache, use_cache=cache is not None)
                finally:
                    if hook is not None:
                        hook.remove()
        finally:
            config._attn_implementation = previous
        return x

    def _selection_pass(self, prompts: torch.Tensor, emb: torch.Tensor, input_mask: torch.Tensor, cache=None):
        """Run the selection layers on [all prompts; input]; return hidden states and scores."""
        cfg = self.idp_config
        batch, length, _ = emb.shape
        m, n, _ = self.prompts.shape
        pool = prompts.reshape(batch, m * n, -1).to(emb.dtype)
        x = torch.cat([pool, emb], dim=1)
        prompt_positions = torch.arange(n, device=emb.device).repeat(m).unsqueeze(0).expand(batch, -1)
        positions = torch.cat([prompt_positions, input_positions(input_mask, n)], dim=1)
        mask = additive(selection_mask(m, n, input_mask), emb.dtype)
        attn: list = []
        x = self._layers(x, self.model.model.layers[: cfg.selection_layers], mask, positions, capture=attn,
                         cache=cache)
        if any(a is None for a in attn):
            raise RuntimeError("the selection layers returned no attention probabilities (eager attention needed)")
        scores = torch.stack([prompt_scores(a.float(), m, n, input_mask) for a in attn]).mean(dim=0)
        return x, scores

    def _branch(self, x: torch.Tensor, input_mask: torch.Tensor, copies: int, cache):
        """Repeat each example's selection-layer states (and their cache) ``copies`` times:
        what the selection layers computed is the same whichever prompt is kept after them,
        so forcing k prompts runs those layers once per example, not k times."""
        if cache is not None:
            for layer in cache.layers[: self.idp_config.selection_layers]:
                layer.batch_repeat_interleave(copies)
        return x.repeat_interleave(copies, dim=0), input_mask.repeat_interleave(copies, dim=0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, block_index: torch.Tensor | None = None,
                selected: torch.Tensor | None = None, past_key_values=None, logits_to_keep: int = 0,
                **kwargs):
        """Logits (B, n + L, V) with the kept prompt's positions first (only the last
        ``logits_to_keep`` positions when it is > 0).

        At inference ``selected`` (B,) forces the kept prompts instead of the argmax; a
        (B, k) ``selected`` continues each example under each of its k prompts (B*k output
        rows, example-major; the ablations score a question under every prompt of the pool)
        with the selection layers run once per example. ``past_key_values`` (a transformers
        DynamicCache) is filled for :meth:`extend` and :meth:`generate`; ``scores`` stay (B, m).
        """
        unknown = sorted(k for k, v in kwargs.items() if v is not None and k not in _IGNORED_KWARGS)
        if unknown:
            raise TypeError(f"IDPModel.forward got unsupported argument(s) {unknown}")
        cfg = self.idp_config
        batch, length = input_ids.shape
        m, n, hidden = self.prompts.shape
        input_mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        emb = self.model.model.embed_tokens(input_ids)
        pool = self.prompts.unsqueeze(0).expand(batch, m, n, hidden)
        train_grad = self.training and torch.is_grad_enabled()
        scores = None
        if train_grad and cfg.routing == "soft":
            x, scores = self._selection_pass(pool, emb, input_mask)
            weights = torch.softmax(scores / cfg.temperature, dim=-1)  # (B, m)
            kept = (x[:, : m * n].unflatten(1, (m, n)) * weights[:, :, None, None].to(x.dtype)).sum(dim=1)
            selected = scores.argmax(dim=-1)
        else:
            if not train_grad:
                x, scores = self._selection_pass(pool, emb, input_mask, cache=past_key_values)
                if selected is None:
                    selected = scores.argmax(dim=-1)
                elif selected.dim() == 2:  # each example continued under each of its k prompts
                    if labels is not None:
                        raise ValueError("a (B, k) 'selected' gives B*k rows: no labels")
                    x, input_mask = self._branch(x, input_mask, selected.shape[1], past_key_values)
                    selected = selected.reshape(-1).to(input_ids.device)
                    batch = selected.shape[0]
                else:
                    selected = selected.to(input_ids.device)
            else:
                if selected is not None or past_key_values is not None:
                    raise ValueError("'selected' and 'past_key_values' are for inference (eval mode, no grad)")
                if cfg.routing == "shard":
                    if block_index is None:
                        raise ValueError("idp routing 'shard' needs the block index of every training example")
                    selected = block_index.to(input_ids.device) % m
                else:
                    with torch.no_grad():
                        _, scores = self._selection_pass(pool, emb, input_mask)
                    selected = scores.argmax(dim=-1)
                # Same forward values, but only the kept prompt of each example gets gradients.
                keep = nn.functional.one_hot(selected, m).bool()[:, :, None, None]
                x, _ = self._selection_pass(torch.where(keep, pool, pool.detach()), emb, input_mask)
            index = (selected[:, None] * n + torch.arange(n, device=x.device)).unsqueeze(-1).expand(batch, n, hidden)
            kept = x[:, : m * n].gather(1, index)

        x = torch.cat([kept, x[:, m * n:]], dim=1)
        prompt_positions = torch.arange(n, device=x.device).unsqueeze(0).expand(batch, -1)
        positions = torch.cat([prompt_positions, input_positions(input_mask, n)], dim=1)
        mask = additive(causal_mask(n, input_mask), x.dtype)
        x = self._layers(x, self.model.model.layers[cfg.selection_layers:], mask, positions, cache=past_key_values)
        if logits_to_keep and labels is not None:
            raise ValueError("logits_to_keep and labels: the loss needs every position's logits")
        logits = self.model.lm_head(self.model.model.norm(x[:, -logits_to_keep:] if logits_to_keep else x))
        loss = None
        if labels is not None:
            # As peft's prompt tuning: the last prompt position predicts the first input token.
            pred = logits[:, n - 1: n + length - 1].float()
            target = labels.masked_fill(input_mask == 0, -100)
            loss = nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1),
                                               ignore_index=-100)
        return _Output(logits=logits, loss=loss, selected=selected, scores=scores)

    # ---- generation -------------------------------------------------------------

    def extend(self, input_ids: torch.Tensor, full_mask: torch.Tensor, cache, logits_to_keep: int = 0) -> torch.Tensor:
        """Logits (B, T, V) of ``input_ids`` (B, T) continuing ``cache``, filled by an earlier
        call (the prefill, which chose the prompts): the selection layers still see the whole
        pool, the others the kept prompt, the new tokens attend causally to each other, so
        this equals one full forward pass of the whole sequence with the same kept prompts.
        ``full_mask`` (B, past + T) masks every input token so far, the new ones included.
        The choice is not revisited: what comes after the prefill cannot change it."""
        cfg = self.idp_config
        m, n, _ = self.prompts.shape
        batch, steps = input_ids.shape
        total = full_mask.shape[1]
        x = self.model.model.embed_tokens(input_ids)
        positions = input_positions(full_mask, n)[:, -steps:]
        keys = full_mask.bool()[:, None, :].expand(batch, steps, total).clone()
        keys[:, :, total - steps:] &= torch.ones(steps, steps, dtype=torch.bool, device=x.device).tril()

        def with_prompts(width: int) -> torch.Tensor:
            return additive(torch.cat([keys.new_ones(batch, steps, width), keys], dim=-1), x.dtype)

        layers = self.model.model.layers
        x = self._layers(x, layers[: cfg.selection_layers], with_prompts(m * n), positions, cache=cache)
        x = self._layers(x, layers[cfg.selection_layers:], with_prompts(n), positions, cache=cache)
        return self.model.lm_head(self.model.model.norm(x[:, -logits_to_keep:] if logits_to_keep else x))

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

    def save_pretrained(self, out_dir: str, **_):
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"prompts": self.prompts.detach().cpu().contiguous()}, str(out / PROMPTS_FILE))
        meta = {"method": "idp", **self.idp_config.params(), "hidden_size": int(self.prompts.shape[-1]),
                "base_model": str(getattr(self.model, "name_or_path", ""))}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_idp(model, adapter_dir: str | Path) -> IDPModel:
    """Put the IDP prompt pool saved in ``adapter_dir`` on ``model`` (safetensors, no pickle)."""
    from safetensors.torch import load_file

    import dataclasses

    meta = json.loads((Path(adapter_dir) / CONFIG_FILE).read_text())
    config = IDPConfig(**{f.name: meta[f.name] for f in dataclasses.fields(IDPConfig) if f.name in meta})
    prompts = load_file(str(Path(adapter_dir) / PROMPTS_FILE))["prompts"]
    if prompts.shape[-1] != model.config.hidden_size:
        raise ValueError(f"{adapter_dir}: prompts of width {prompts.shape[-1]} do not fit a model of width "
                         f"{model.config.hidden_size}")
    idp = IDPModel(model, prompts, config).to(model.device)
    idp.eval()
    return idp


def prepare(model, config: IDPConfig, seed: int) -> IDPModel:
    """A new pool, each prompt initialised from embeddings of random vocabulary tokens,
    drawn from ``seed`` by the helper prompt tuning shares (:mod:`.soft_prompts`): a
    prompt-tuning prompt of the same length starts as this pool's first prompt."""
    from .soft_prompts import vocab_prompts

    torch.manual_seed(seed)
    prompts = vocab_prompts(model.model.embed_tokens.weight, (config.pool_size, config.num_virtual_tokens), seed)
    return IDPModel(model, prompts, config).to(model.device)
