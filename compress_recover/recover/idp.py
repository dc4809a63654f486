"""Inference-time Dynamic Prompting (IDP): our reference implementation, the model.

A pool of ``m`` soft prompts of ``n`` tokens each. In the first ``selection_layers``
decoder layers all ``m`` prompts stand before the input (each prompt at positions
0..n-1, the input after them at n, n+1, ...; a prompt attends only to itself, the input
attends to every prompt and causally to itself). Each prompt is scored by the mean
attention the (non-padded) input tokens pay to its tokens, averaged over heads and over
the selection layers; the router's logits are the log of those scores less their
input-independent part (``score_offset``, the mean on calibration inputs; zero for the
uncentred modes). Per example the argmax prompt is kept and the others are dropped for
the rest of the forward pass, so the remaining layers cost what one prompt costs.

The unit is laid out as peft lays out a method: the config (:mod:`.idp_config`), the
tensor maths (:mod:`.idp_maths`), the training routes, one function per mode
(:mod:`.idp_routing`), this model, and generation (:mod:`.idp_generation`).

The output logits have the kept prompt's ``n`` positions first, as peft's prompt
tuning has. With ``m = 1`` the model is exactly prompt tuning with that prompt.

The choice is causal at inference: it reads the tokens of the call that fills the KV
cache (the prefill) and nothing after them. Scoring runs a question's context alone (the
prompt is chosen there, once for all its answer choices) and each choice on a copy of
that cache with :meth:`IDPModel.extend`; generation chooses the same way from the same
context, so scoring and generation agree (tested). A single call on a whole sequence
(training) chooses as its routing mode says.

The pool is measured, not assumed: :meth:`IDPModel.routing_summary` counts the choices on
context spans of the training text (before and after training, in the adapter's
manifest), every training step's choices are kept (``history``), and a curated pool's
routing of each source's held-out blocks is its confusion table.

Saved as ``idp_prompts.safetensors`` (tensor ``prompts`` (m, n, hidden): the trained
parameters) and ``idp_config.json`` (the config and the router's ``score_offset``, m
numbers); :func:`load_idp` (the method's registered adapter loader) puts a saved pool on a
model.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .idp_config import IDPConfig
from .idp_generation import generate
from ..prompt_choice import normalised_entropy
from .idp_maths import additive, causal_mask, input_positions, prompt_scores, router_logits, selection_mask
from .idp_routing import BY_BLOCK, CENTRED, ROUTERS, gather_kept

PROMPTS_FILE = "idp_prompts.safetensors"
CONFIG_FILE = "idp_config.json"

# Arguments HF-style callers pass that change nothing here.
_IGNORED_KWARGS = {"use_cache", "return_dict"}
# Steps over which the running share of each prompt's choices is averaged (load balancing).
SHARE_WINDOW = 16
# Momentum of the running centre of the router's logits in training.
OFFSET_MOMENTUM = 0.9
# Blocks per source measured for routing (context spans) and held out of a curated pool's training.
MEASURED_BLOCKS = 32


class _Output:
    def __init__(self, logits, loss=None, selected=None, scores=None, attention=None, aux_loss=None, loss_mask=None):
        self.logits, self.loss, self.selected, self.scores = logits, loss, selected, scores
        self.attention, self.aux_loss, self.loss_mask = attention, aux_loss, loss_mask

    def __getitem__(self, key):
        return getattr(self, key)


class IDPModel(nn.Module):
    """A frozen decoder-only HF causal LM (Llama family layout) with an IDP prompt pool.

    A :class:`compress_recover.prompt_choice.PromptChooser` (``prompts``, ``extend``, the
    output's ``scores``, the router's logits, and the two attributes below)."""

    # The prompt is chosen from the tokens of the call that fills the cache: a scorer must
    # run a context alone and continue it with `extend` (see the module docstring).
    chooses_from_context: ClassVar[bool] = True
    # the samples field an evaluation records the chosen prompt in (and its ablation scores)
    choice_field: ClassVar[str] = IDPConfig.choice_field

    def __init__(self, model, prompts: torch.Tensor, config: IDPConfig, score_offset: torch.Tensor | None = None,
                 seed: int = 0):
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
        m = self.prompts.shape[0]
        offset = torch.zeros(m) if score_offset is None else score_offset.detach().float().clone()
        self.register_buffer("score_offset", offset)
        self.idp_config = config
        self.wants_block_index = config.routing in BY_BLOCK
        self.block_sources: torch.Tensor | None = None  # curated pools: the source of every training block
        self.source_blocks: dict | None = None  # curated pools: blocks held out, trained and available per source
        self.centred_at: int | None = None  # curated pools: the training step the router was last centred at
        self.calibration: torch.Tensor | None = None  # context spans the routing is measured on
        self.heldout: list[torch.Tensor] = []  # curated pools: each source's held-out blocks
        self.generator = torch.Generator().manual_seed(int(seed) + 1)  # gumbel draws (the prompts used seed)
        self.training_step = 0
        self.share: torch.Tensor | None = None  # running share of each prompt's choices in training
        self.history: list[list[int]] = []  # per training step: how many examples trained with each prompt

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

    generate = generate

    # ---- the router ---------------------------------------------------------------

    def router(self, attention: torch.Tensor) -> torch.Tensor:
        """The router's logits (B, m) from the prompts' mean attention (B, m)."""
        return router_logits(attention, self.score_offset)

    def track_offset(self, raw: torch.Tensor) -> None:
        """Training: the running centre of the router's uncentred logits (B, m) (no gradient)."""
        mean = raw.mean(dim=0).to(self.score_offset)
        if self.training_step == 0:
            self.score_offset.copy_(mean)
        else:
            self.score_offset.mul_(OFFSET_MOMENTUM).add_((1 - OFFSET_MOMENTUM) * mean)

    def track_share(self, choice: torch.Tensor) -> torch.Tensor:
        """Training: the running share of the examples routed to each prompt (Switch's f)."""
        m = self.prompts.shape[0]
        batch = torch.bincount(choice.detach().cpu(), minlength=m).double() / max(len(choice), 1)
        rate = 1.0 / SHARE_WINDOW
        self.share = batch if self.share is None else (1 - rate) * self.share + rate * batch
        return self.share.to(self.score_offset)

    # ---- the passes -----------------------------------------------------------------

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

    def _selection_pass(self, prompts: torch.Tensor, emb: torch.Tensor, input_mask: torch.Tensor, cache=None,
                        score_mask: torch.Tensor | None = None):
        """Run the selection layers on [all prompts; input]; return hidden states and each
        prompt's mean attention (B, m) from the queries of ``score_mask`` (default: every
        real input token)."""
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
        queries = input_mask if score_mask is None else score_mask
        attention = torch.stack([prompt_scores(a.float(), m, n, queries) for a in attn]).mean(dim=0)
        return x, attention

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
        ``logits_to_keep`` positions when it is > 0); ``scores`` the router's logits (B, m),
        ``attention`` the prompts' mean attention (B, m), ``aux_loss`` the routing mode's
        auxiliary loss and ``loss_mask`` (B, L) the input positions its loss runs on, in
        training (None otherwise, and None: every real position).

        In training (train mode with gradients) the routing mode's function chooses
        (:data:`.idp_routing.ROUTERS`). At inference the argmax of the router's logits does;
        ``selected`` (B,) forces the kept prompts instead; a (B, k) ``selected`` continues
        each example under each of its k prompts (B*k output rows, example-major; the
        ablations score a question under every prompt of the pool) with the selection
        layers run once per example. ``past_key_values`` (a transformers DynamicCache) is
        filled for :meth:`extend` and :meth:`generate`.
        """
        unknown = sorted(k for k, v in kwargs.items() if v is not None and k not in _IGNORED_KWARGS)
        if unknown:
            raise TypeError(f"IDPModel.forward got unsupported argument(s) {unknown}")
        batch, length = input_ids.shape
        m, n, hidden = self.prompts.shape
        input_mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        emb = self.model.model.embed_tokens(input_ids)
        pool = self.prompts.unsqueeze(0).expand(batch, m, n, hidden)
        aux, loss_mask = None, None
        if self.training and torch.is_grad_enabled():
            if selected is not None or past_key_values is not None:
                raise ValueError("'selected' and 'past_key_values' are for inference (eval mode, no grad)")
            routed = ROUTERS[self.idp_config.routing](self, pool, emb, input_mask, block_index)
            x, kept, selected, scores = routed.x, routed.kept, routed.selected, routed.scores
            aux, loss_mask, attention = routed.aux_loss, routed.loss_mask, None
            self.history.append(torch.bincount(selected.detach().cpu(), minlength=m).tolist())
            self.training_step += 1
        else:
            x, attention = self._selection_pass(pool, emb, input_mask, cache=past_key_values)
            scores = self.router(attention)
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
            kept = gather_kept(x, selected, m, n)

        x = torch.cat([kept, x[:, m * n:]], dim=1)
        prompt_positions = torch.arange(n, device=x.device).unsqueeze(0).expand(batch, -1)
        positions = torch.cat([prompt_positions, input_positions(input_mask, n)], dim=1)
        mask = additive(causal_mask(n, input_mask), x.dtype)
        x = self._layers(x, self.model.model.layers[self.idp_config.selection_layers:], mask, positions,
                         cache=past_key_values)
        if logits_to_keep and labels is not None:
            raise ValueError("logits_to_keep and labels: the loss needs every position's logits")
        logits = self.model.lm_head(self.model.model.norm(x[:, -logits_to_keep:] if logits_to_keep else x))
        loss = None
        if labels is not None:
            # As peft's prompt tuning: the last prompt position predicts the first input token.
            pred = logits[:, n - 1: n + length - 1].float()
            target = labels.masked_fill((input_mask if loss_mask is None else loss_mask) == 0, -100)
            loss = nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1),
                                               ignore_index=-100)
        return _Output(logits=logits, loss=loss, selected=selected, scores=scores, attention=attention,
                       aux_loss=aux, loss_mask=loss_mask)

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

    # ---- training text, measurement, calibration ---------------------------------------

    def use_training_text(self, sources: list[torch.Tensor], seed: int) -> torch.Tensor:
        """The training blocks from each training text's blocks (a list, one per text).

        A curated pool (one prompt per text) holds ``MEASURED_BLOCKS`` of each source out of
        training (seeded; its routing confusion table is measured on them), trains on the same
        number of blocks from every source (the smallest count; stated in the manifest) and
        records each block's source. Every mode keeps a calibration sample of context spans
        (the first ``context_tokens`` tokens of blocks of every text) to measure the routing
        on and, for a curated pool, to centre the router."""
        cfg = self.idp_config
        rng = random.Random(f"{seed}:idp-sources")
        if cfg.routing == "curated":
            if len(sources) != self.prompts.shape[0]:
                raise ValueError(f"a curated pool of {self.prompts.shape[0]} prompts needs as many texts, got "
                                 f"{len(sources)}")
            orders = [rng.sample(range(len(b)), len(b)) for b in sources]
            held = [min(MEASURED_BLOCKS, len(b) // 10) for b in sources]
            if min(held) < 1:
                raise ValueError(f"a curated pool needs at least 10 blocks of every source; got {[len(b) for b in sources]}")
            self.heldout = [b[sorted(o[:h])] for b, o, h in zip(sources, orders, held, strict=True)]
            each = min(len(o) - h for o, h in zip(orders, held, strict=True))
            train = [b[sorted(o[h:h + each])] for b, o, h in zip(sources, orders, held, strict=True)]
            self.block_sources = torch.arange(len(train)).repeat_interleave(each)
            blocks = torch.cat(train)
            self.source_blocks = {"held_out_per_source": held, "trained_per_source": each,
                                  "available_per_source": [len(b) for b in sources]}
        else:
            (blocks,) = sources
            train = [blocks]
        spans = [b[sorted(rng.sample(range(len(b)), min(MEASURED_BLOCKS, len(b))))] for b in train]
        self.calibration = torch.cat(spans)[:, : cfg.context_tokens]
        return blocks

    @torch.no_grad()
    def choices(self, blocks: torch.Tensor) -> torch.Tensor:
        """The inference rule's choice (B,) for each row of ``blocks`` read as a context."""
        was_training = self.training
        self.eval()
        try:
            ids = blocks[:, : self.idp_config.context_tokens].to(self.device)
            out = self(ids)
            return out.selected.cpu()
        finally:
            self.train(was_training)

    def routing_summary(self) -> dict:
        """How the inference rule uses the pool on the calibration spans: counts per prompt
        and the normalised entropy H / log m; for a curated pool also its confusion table
        (rows: each source's held-out blocks, columns: the prompt they choose)."""
        if self.calibration is None:
            return {}
        m = self.prompts.shape[0]
        counts = torch.bincount(self.choices(self.calibration), minlength=m).tolist()
        out = {"spans": int(len(self.calibration)), "context_tokens": self.idp_config.context_tokens,
               "counts": counts, "entropy": round(normalised_entropy(counts), 4)}
        if self.heldout:
            out["confusion"] = [torch.bincount(self.choices(b), minlength=m).tolist() for b in self.heldout]
        return out

    def _centre_curated(self) -> None:
        """Centre a curated pool's router for its prompts as they are now (once per training
        step: the manifest's record and the saved adapter both need it)."""
        if self.idp_config.routing == "curated" and self.calibration is not None \
                and self.centred_at != self.training_step:
            self.centre()
            self.centred_at = self.training_step

    @torch.no_grad()
    def centre(self) -> None:
        """Set ``score_offset`` to the mean uncentred router logit of each prompt on the
        calibration spans (a curated pool's prompts never trained against each other, so the
        part of their score that does not depend on the input is removed here)."""
        self.score_offset.zero_()
        was_training = self.training
        self.eval()
        try:
            out = self(self.calibration.to(self.device))
            self.score_offset.copy_(out.scores.mean(dim=0).to(self.score_offset))
        finally:
            self.train(was_training)

    def training_record(self) -> dict:
        """What the adapter's manifest records of the pool: the choices per training step and
        the routing after training (:meth:`routing_summary`). A curated pool is centred first
        (:meth:`centre`), as it is saved."""
        self._centre_curated()
        record = {"routing": self.idp_config.routing, "centred": self.idp_config.routing in CENTRED,
                  "score_offset": [round(float(v), 6) for v in self.score_offset],
                  "trained_with": self.history, "after": self.routing_summary()}
        if self.source_blocks is not None:
            record["sources"] = {"texts": list(self.idp_config.sources), **self.source_blocks}
        return record

    def save_pretrained(self, out_dir: str, **_):
        from safetensors.torch import save_file

        self._centre_curated()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"prompts": self.prompts.detach().cpu().contiguous()}, str(out / PROMPTS_FILE))
        meta = {"method": "idp", **self.idp_config.params(), "hidden_size": int(self.prompts.shape[-1]),
                "base_model": str(getattr(self.model, "name_or_path", "")),
                "score_offset": [float(v) for v in self.score_offset.detach().cpu()]}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_idp(model, adapter_dir: str | Path) -> IDPModel:
    """Put the IDP prompt pool saved in ``adapter_dir`` on ``model`` (safetensors, no pickle)."""
    from safetensors.torch import load_file

    meta = json.loads((Path(adapter_dir) / CONFIG_FILE).read_text())
    config = IDPConfig(**{f.name: meta[f.name] for f in dataclasses.fields(IDPConfig) if f.name in meta})
    prompts = load_file(str(Path(adapter_dir) / PROMPTS_FILE))["prompts"]
    if prompts.shape[-1] != model.config.hidden_size:
        raise ValueError(f"{adapter_dir}: prompts of width {prompts.shape[-1]} do not fit a model of width "
                         f"{model.config.hidden_size}")
    offset = meta.get("score_offset")  # absent in pools saved before the router was centred: not centred
    idp = IDPModel(model, prompts, config,
                   score_offset=None if offset is None else torch.tensor(offset, dtype=torch.float32)).to(model.device)
    idp.eval()
    return idp


def prepare(model, config: IDPConfig, seed: int) -> IDPModel:
    """A new pool, each prompt initialised from embeddings of random vocabulary tokens (each
    prompt its own draw), drawn from ``seed`` by the helper prompt tuning shares
    (:mod:`.soft_prompts`): a prompt-tuning prompt of the same length starts as this pool's
    first prompt."""
    from .soft_prompts import vocab_prompts

    torch.manual_seed(seed)
    prompts = vocab_prompts(model.model.embed_tokens.weight, (config.pool_size, config.num_virtual_tokens), seed)
    return IDPModel(model, prompts, config, seed=seed).to(model.device)
