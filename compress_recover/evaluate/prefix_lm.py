"""Shared-prefix scoring: lm-eval's ``HFLM`` with every context run once for all its continuations.

lm-eval scores a multiple-choice question by running ``context + choice`` through the model
once per choice and reading the choice's log-likelihood off the logits. Here a batch of
questions runs the tokens their contexts share (the task's question template) once, the
rest of each context once (left-padded, the padding masked, positions as in the unpadded
sequence), and only the choices' tokens on copies of that KV cache; logits over the
vocabulary are computed only where a token is scored. The log-likelihoods are those of
``HFLM`` (equal within float tolerance, tested): it is still lm-eval doing the evaluation,
registered as the lm-eval model ``hf-prefix``.

A PEFT model with a soft prompt runs its virtual tokens once, through its base model, and
every context continues that cache. Requests longer than the model's window are scored by
``HFLM``'s own loop.

A model that chooses its prompt from its context (a
:class:`compress_recover.prompt_choice.PromptChooser`) runs each context alone, which
fills its cache and makes the choice, and each choice on a copy of that cache
(``extend``): the choice never sees a choice's tokens, is the same for
every choice of a question, and is the one generation makes from the same context. For
the ablations it can also score every question under every prompt of its pool (the
choice is still made, and recorded, from the context): :attr:`PrefixScoringLM.choices`
maps each (context, continuation) to the chosen prompt and the log-likelihood under each
prompt, and the evaluate job writes them into lm-eval's samples.
"""

from __future__ import annotations

from collections import defaultdict
from copy import deepcopy
from itertools import groupby

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ..prompt_choice import ChoiceRecord, PromptChooser, chooses_from_context

Request = tuple[tuple[str, str], list[int], list[int]]


def _runner_and_prompt(model):
    """(the causal LM that runs tokens on a cache, soft-prompt embeddings (1, V, hidden) or None).

    A PEFT model with a soft prompt puts its virtual tokens before every input; here they run
    once, through its base model, and stay in the cache every context continues."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return model, None
    if str(getattr(config, "peft_type", "")).upper().endswith(("PREFIX_TUNING", "CARTRIDGE")):
        raise TypeError(f"shared-prefix scoring does not support PEFT {config.peft_type} (past key values, not "
                        "input embeddings)")
    return model.get_base_model(), model.get_prompt(batch_size=1)


def common_prefix_length(contexts: list[tuple[int, ...]]) -> int:
    """Leading tokens all ``contexts`` share, leaving each at least its last token."""
    shortest = min(map(len, contexts))
    n = 0
    while n < shortest - 1 and all(c[n] == contexts[0][n] for c in contexts):
        n += 1
    return n


# A forward pass costs about as much as this many tokens on top of its tokens (the weights
# are read once per pass): the batching below trades shared tokens against passes with it.
PASS_TOKENS = 32


def _cost(batch: list[tuple[int, ...]]) -> int:
    shared = common_prefix_length(batch)
    return PASS_TOKENS + shared + len(batch) * (max(map(len, batch)) - shared)


# Levels of the prefix trie the batching looks into (a bound on its recursion).
MAX_DEPTH = 64


def _pieces(ordered: list[tuple[int, ...]], size: int, depth: int = 0) -> list[list[tuple[int, ...]]]:
    """Sorted contexts in batches of at most ``size``, the cheapest of: cut where they part
    (a prefix trie, each part planned alike) or, sorted by length, in consecutive chunks
    (which pads least). Run on a task's questions, the trie finds its template and the
    chunks keep the padding of the subjects small."""
    by_length = sorted(ordered, key=lambda c: (len(c), c))
    options = [[by_length[i:i + size] for i in range(0, len(by_length), size)]]
    at = common_prefix_length(ordered)
    parts = [list(p) for _, p in groupby(ordered, key=lambda c: c[at])]
    if len(parts) > 1 and depth < MAX_DEPTH:
        options.append([batch for part in parts for batch in _pieces(part, size, depth + 1)])
    return min(options, key=lambda batches: sum(map(_cost, batches)))


def context_batches(contexts: dict[tuple[int, ...], list[int]], size: int) -> list[list[tuple[int, ...]]]:
    """Contexts (context -> request indices) in batches of at most ``size``: contexts that share
    a prefix (a task's template) stand together, and neighbouring pieces merge while that
    is cheaper than running them apart."""
    batches: list[list[tuple[int, ...]]] = []
    for piece in _pieces(sorted(contexts), size):
        if batches and len(batches[-1]) + len(piece) <= size and \
                _cost(batches[-1] + piece) <= _cost(batches[-1]) + _cost(piece):
            batches[-1] = batches[-1] + piece
        else:
            batches.append(piece)
    return batches


def _contiguous(module, args):
    return (args[0].contiguous(), *args[1:])


def contiguous_head_input(model) -> None:
    """Make the output layer's input contiguous (once per model). ``logits_to_keep=1`` hands it
    the last position, a strided view ``(batch, 1, width)``; torch's matmul folds such an input
    into one matrix product only when a weight requires grad, and a PEFT-wrapped model's frozen
    weights do not, so it ran a batched product that copied the whole output matrix once per
    context instead: in bfloat16 that copy was 1.9 of 2.8 s (49152 x 576 x 30 values per batch;
    an adapter model scored 38 requests/s in bfloat16 against 103 in float32; issue 37). The
    product itself is the same; the contiguous input makes it the single matrix product the
    model without an adapter always ran."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, torch.nn.Module) and not getattr(head, "_contiguous_input", False):
        head.register_forward_pre_hook(_contiguous)
        head._contiguous_input = True


@register_model("hf-prefix")
class PrefixScoringLM(HFLM):
    """``HFLM`` whose log-likelihood requests share each context's forward pass.

    ``batch_size`` is the number of contexts (questions) scored together.
    """

    #: score every prompt of a context-choosing model's pool too (the ablations)
    pool_ablation: bool = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: (context, continuation) -> {"prompt": chosen, "loglikelihoods": [one per prompt] or None},
        #: filled while a context-choosing model is scored
        self.choices: dict[tuple[str, str], ChoiceRecord] = {}
        contiguous_head_input(self.model)

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if self.backend != "causal":
            if chooses_from_context(self.model):
                raise TypeError(f"{type(self.model).__name__} chooses its prompt from the context: only a causal "
                                "backend can score it")
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        size = override_bs or (self.batch_size if self.batch_size != "auto" else 32)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        requests = [self._fit(i, r) for i, r in enumerate(requests)] if chooses_from_context(self.model) else requests
        too_long = [i for i, (_, ctx, cont) in enumerate(requests) if len(ctx) + len(cont) > self.max_length + 1]
        if too_long:
            scored = super()._loglikelihood_tokens([requests[i] for i in too_long], disable_tqdm, override_bs)
            for i, answer in zip(too_long, scored, strict=True):
                results[i] = answer
        contexts: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (_, ctx, cont) in enumerate(requests):
            if results[i] is None:
                if not ctx or not cont:
                    raise ValueError(f"request {i}: empty context or continuation")
                contexts[tuple(ctx)].append(i)
        for batch in context_batches(contexts, int(size)):
            groups = [contexts[ctx] for ctx in batch]
            continuations = [[requests[i][2] for i in group] for group in groups]
            if chooses_from_context(self.model):
                answers, records = self._score_choosing(batch, continuations)
            else:
                answers, records = self._score(batch, continuations), None
            for g, (group, group_answers) in enumerate(zip(groups, answers, strict=True)):
                for k, (i, answer) in enumerate(zip(group, group_answers, strict=True)):
                    results[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
                        if records is not None:
                            self.choices[tuple(requests[i][0])] = records[g][k]
        return results

    def _fit(self, index: int, request: Request) -> Request:
        """A request cut to the model's window as HFLM cuts it (the context's oldest tokens
        go), so a context-choosing model still sees the context alone first."""
        key, ctx, cont = request
        room = self.max_length + 1 - len(cont)
        if room < 1:
            raise ValueError(f"request {index}: a continuation of {len(cont)} tokens does not fit the model's "
                             f"window of {self.max_length}")
        return (key, ctx[-room:], cont) if len(ctx) > room else request

    def _continuations(self, first: torch.Tensor, continuations: list[list[list[int]]], run):
        """(log-likelihood, is greedy) of every continuation of every context row.

        ``first`` (rows, V): log-probabilities of each row's next token (a choice's first);
        ``run(owners, ids)``: logits (R, T, V) of ``ids`` (R, T) continuing the cache of the
        rows ``owners``. A choice's tokens after its first run on its row's cache, choices of
        equal length together, so nothing is padded."""
        device = first.device
        rows = [(g, cont) for g, conts in enumerate(continuations) for cont in conts]
        by_length: dict[int, list[int]] = defaultdict(list)
        for r, (_, cont) in enumerate(rows):
            if len(cont) > 1:
                by_length[len(cont)].append(r)
        later: dict[int, torch.Tensor] = {}  # row -> log-probabilities of its tokens after the first
        for length, members in sorted(by_length.items()):
            owners = torch.tensor([rows[r][0] for r in members], device=device)
            ids = torch.tensor([rows[r][1][:-1] for r in members], dtype=torch.long, device=device)
            logp = F.log_softmax(run(owners, ids), dim=-1, dtype=self.softmax_dtype)
            later.update(zip(members, logp, strict=True))
        answers: list[list[tuple[float, bool]]] = [[] for _ in continuations]
        for r, (g, cont) in enumerate(rows):
            logp = first[g, cont[0]]
            greedy = bool(first[g].argmax() == cont[0])
            if len(cont) > 1:
                targets = torch.tensor(cont[1:], device=device)
                logp = logp + later[r].gather(-1, targets[:, None]).sum()
                greedy = greedy and bool((later[r].argmax(-1) == targets).all())
            answers[g].append((float(logp), greedy))
        return answers

    @torch.no_grad()
    def _score(self, contexts: list[tuple[int, ...]], continuations: list[list[list[int]]]):
        """(log-likelihood, is greedy) of every continuation of every context.

        The tokens all contexts of the batch share (a task's question template; a soft
        prompt's virtual tokens) run once. The rest of each context runs on copies of that
        cache, left-padded, with the padding masked and every token at the position it has
        in its own unpadded sequence. Each choice's tokens after its first run on a copy
        of its context's cache (:meth:`_continuations`).
        """
        model, prompt = _runner_and_prompt(self.model)
        device = self.device
        cache, offset = None, 0
        if prompt is not None:
            cache = model(inputs_embeds=prompt.to(self.model.dtype), use_cache=True).past_key_values
            offset = prompt.shape[1]
        shared = common_prefix_length(contexts)
        if shared:
            ids = torch.tensor([contexts[0][:shared]], dtype=torch.long, device=device)
            positions = torch.arange(offset, offset + shared, device=device)[None]
            cache = model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True).past_key_values
            offset += shared
        count = len(contexts)
        if cache is not None:
            cache.batch_repeat_interleave(count)
        ids, real = _left_padded([c[shared:] for c in contexts], device)
        mask = torch.cat([real.new_ones(count, offset), real], dim=1)  # (G, past + rest): padding masked
        positions = offset + (real.cumsum(1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        first = F.log_softmax(out.logits[:, -1], dim=-1, dtype=self.softmax_dtype)  # predicts each choice's 1st token
        cache = out.past_key_values
        ends = offset + real.sum(1)  # position of each context's next token

        def run(owners, tokens):
            copy = deepcopy(cache)
            copy.batch_select_indices(owners)
            length = tokens.shape[1]
            return model(input_ids=tokens, attention_mask=torch.cat([mask[owners], mask.new_ones(len(owners), length)],
                                                                    dim=1),
                         position_ids=ends[owners, None] + torch.arange(length, device=device),
                         past_key_values=copy, use_cache=False).logits

        return self._continuations(first, continuations, run)

    @torch.no_grad()
    def _score_choosing(self, contexts: list[tuple[int, ...]], continuations: list[list[list[int]]]):
        """As :meth:`_score`, for a model that chooses its prompt from a pool by reading the context.

        Each context runs alone (left-padded; nothing shared, since the choice reads every
        context token), which chooses the prompt and fills the cache; each choice continues
        a copy of that cache. With ``pool_ablation`` every context also runs under every
        prompt of the pool, forced, beside its choice (the selection layers, which every
        prompt shares, once per context). Returns the answers under the chosen
        prompt and, per continuation, ``{"prompt": chosen, "loglikelihoods": per prompt}``.
        """
        from transformers import DynamicCache

        model: PromptChooser = self.model
        device = self.device
        pool = int(model.prompts.shape[0])
        copies = pool if self.pool_ablation and pool > 1 else 1
        ids, real = _left_padded(contexts, device)
        # every prompt of the pool after one run of the selection layers per context
        forced = torch.arange(pool, device=device).expand(len(contexts), pool) if copies > 1 else None
        cache = DynamicCache()
        out = model(ids, attention_mask=real, past_key_values=cache, selected=forced, logits_to_keep=1)
        chosen = out.scores.argmax(dim=-1).tolist()  # the choice, whatever was forced
        real = real.repeat_interleave(copies, 0)
        first = F.log_softmax(out.logits[:, -1], dim=-1, dtype=self.softmax_dtype)

        def run(owners, tokens):
            copy = deepcopy(cache)
            copy.batch_select_indices(owners)
            full = torch.cat([real[owners], real.new_ones(len(owners), tokens.shape[1])], dim=1)
            return model.extend(tokens, full, copy)

        rows = self._continuations(first, [conts for conts in continuations for _ in range(copies)], run)
        answers, records = [], []
        for g, choice in enumerate(chosen):
            answers.append(rows[g * copies + (choice if copies > 1 else 0)])
            per_prompt = [rows[g * copies + p] for p in range(copies)] if copies > 1 else None
            records.append([ChoiceRecord(prompt=int(choice),
                                         loglikelihoods=None if per_prompt is None else
                                         [a[k][0] for a in per_prompt])
                            for k in range(len(continuations[g]))])
        return answers, records


def _left_padded(seqs: list[tuple[int, ...]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (G, W) left-padded with 0 and the mask of the real tokens."""
    width = max(map(len, seqs))
    ids = torch.tensor([[0] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long, device=device)
    real = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long, device=device)
    return ids, real
