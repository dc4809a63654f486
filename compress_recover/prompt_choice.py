"""The prompt-choosing contract: what a model that keeps one soft prompt of a pool per input shows the rest.

Such a model chooses its prompt from the tokens of the call that fills its KV cache (the
prefill, a question's context) and nothing after them. Evaluation therefore scores it
apart (:mod:`compress_recover.evaluate.prefix_lm`): each context alone through
``model(...)``, which makes the choice (its output's ``scores``, one per prompt of the pool)
and fills the cache, then each answer choice on a copy of that cache with ``extend``; for
the ablations it also forces every prompt of the pool in turn (``selected``).

The facts about the samples live on the method's config class
(:attr:`compress_recover.registry.MethodConfig.choice_field`: the samples field the chosen
prompt is written to; ``None`` for every method that does not choose) and the model
repeats its config class's value; :func:`forced_field` names the field beside it with the
per-prompt log-likelihoods the ablation writes. Evaluation writes both into each lm-eval
sample row (:func:`compress_recover.evaluate.evaluate.annotate_choices`); aggregation reads
them back by method (:func:`compress_recover.recover.choice_field`). Nothing else spells
those names.

Import-light (no torch at import time): the registry and the config import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    import torch


class ChoosingOutput(Protocol):
    """What a :class:`PromptChooser`'s forward pass returns (as an HF model output does)."""

    #: (B, positions, V) logits; only the last ``logits_to_keep`` positions when that is > 0
    logits: torch.Tensor
    #: (B, m) the score of each prompt of the pool; the kept prompt is the argmax (unless forced)
    scores: torch.Tensor | None


@runtime_checkable
class PromptChooser(Protocol):
    """A model that chooses, per input, one soft prompt of a pool by reading the context.

    ``isinstance(model, PromptChooser)`` checks that the members are there (not their
    types); :func:`chooses_from_context` is the test evaluation applies.
    """

    #: True: the prompt is chosen from the prefill's tokens, so a scorer must run a context
    #: alone and continue it with :meth:`extend`
    chooses_from_context: bool
    #: the samples field an evaluation records the chosen prompt in: the method config
    #: class's ``choice_field``
    choice_field: str
    #: the pool, (m prompts, n tokens, hidden size)
    prompts: torch.Tensor

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 past_key_values: Any = None, selected: torch.Tensor | None = None,
                 logits_to_keep: int = 0) -> ChoosingOutput:
        """The prefill: chooses each row's prompt (``selected`` (B,) forces it instead; (B, k)
        continues each row under each of its k prompts, B*k output rows, example-major, the
        output's ``scores`` staying (B, m)) and fills ``past_key_values`` (a transformers
        ``DynamicCache``) for :meth:`extend`."""
        ...

    def extend(self, input_ids: torch.Tensor, full_mask: torch.Tensor, cache: Any,
               logits_to_keep: int = 0) -> torch.Tensor:
        """Logits (B, T, V) of ``input_ids`` (B, T) continuing ``cache``, filled by an earlier
        call that made the choice; ``full_mask`` (B, past + T) masks every input token so far,
        the new ones included. The choice is not revisited."""
        ...


class ChoiceRecord(TypedDict):
    """What the scorer records per (context, continuation) of a :class:`PromptChooser`."""

    #: the index of the prompt chosen from the context
    prompt: int
    #: with the pool ablation, the continuation's log-likelihood under each prompt forced; else None
    loglikelihoods: list[float] | None


def chooses_from_context(model: object) -> bool:
    """Whether ``model`` chooses an input-side prompt from the tokens of its prefill.

    A model that says it does but lacks a member of :class:`PromptChooser` is refused
    (TypeError) rather than scored as an ordinary model."""
    if not getattr(model, "chooses_from_context", False):
        return False
    if not isinstance(model, PromptChooser):
        missing = [m for m in ("choice_field", "prompts", "extend") if not hasattr(model, m)]
        raise TypeError(f"{type(model).__name__} sets chooses_from_context but lacks {missing} of PromptChooser")
    return True


def choice_field_of(model: object) -> str | None:
    """The samples field ``model`` records its chosen prompt in; None for a model that does
    not choose one from the context."""
    return model.choice_field if chooses_from_context(model) else None  # type: ignore[attr-defined]


def forced_field(choice_field: str) -> str:
    """The samples field beside ``choice_field`` holding, when the pool ablation ran, the
    log-likelihood of each answer choice under each prompt of the pool forced (per prompt,
    per choice)."""
    return f"{choice_field}_loglikelihoods"


def pool_summary(record: dict | None) -> dict | None:
    """The compact view of a prompt pool's training record (an adapter manifest's ``pool``,
    written by the model's ``training_record``) that cost.json and the report show: the
    routing mode, how many training examples each prompt trained on, the inference rule's
    choices on context spans of the training text before and after training (counts as
    "a/b/...", and H / log m after), and a per-source pool's confusion table (rows:
    sources' held-out blocks, columns: chosen prompt, "a,b|c,d"). None without a pool."""
    if not record:
        return None

    def counts(values) -> str:
        return "/".join(str(int(v)) for v in values) if values else ""

    before, after = record.get("before") or {}, record.get("after") or {}
    confusion = after.get("confusion")
    return {"routing": record.get("routing"), "trained_with": counts(examples_per_prompt(record)),
            "text_before": counts(before.get("counts")), "text_after": counts(after.get("counts")),
            "text_entropy": after.get("entropy"),
            "confusion": "|".join(",".join(map(str, row)) for row in confusion) if confusion else ""}


def examples_per_prompt(record: dict) -> list[int]:
    """How many training examples each prompt of a pool trained with, over the whole training,
    from either record of it: a training record's ``trained_with`` (an adapter manifest's
    ``pool``: per step, the examples routed to each prompt), summed over steps, or the
    "a/b/..." :func:`pool_summary` makes of that (cost.json's ``pool``). [] without one."""
    trained = record.get("trained_with") or []
    if isinstance(trained, str):
        return [int(v) for v in trained.split("/")]
    return [sum(per_prompt) for per_prompt in zip(*trained)]


def normalised_entropy(counts) -> float:
    """H(p) / log m of how often each of a pool's m prompts was chosen (``counts``, any
    sequence of m numbers): 1 is an evenly used pool, 0 one prompt for everything (and a
    pool of one, or no choice at all). The one definition every table of a pool uses."""
    import math

    counts = [float(c) for c in counts]
    total = sum(counts)
    if len(counts) < 2 or total == 0:
        return 0.0
    return abs(-sum(c / total * math.log(c / total) for c in counts if c) / math.log(len(counts)))  # never -0.0


def choice_counts(prompts: list[int], pool_size: int) -> dict:
    """How often each of ``pool_size`` prompts was chosen (one entry per question) and the
    normalised entropy H / log m of those choices (:func:`normalised_entropy`)."""
    counts = [0] * pool_size
    for p in prompts:
        counts[p] += 1
    return {"counts": counts, "entropy": round(normalised_entropy(counts), 4)}
