"""Whether a prompt pool's test answers came from trained prompts, and how many of its extra parameters answered.

A prompt of a pool (a method that keeps one prompt of a pool per input) learns only from the training examples routed to it (the adapter
manifest's ``pool.trained_with``: per step, how many examples trained with each prompt,
the pool model's training record). A prompt that answers test
questions after a handful of examples is still close to its random initialisation, so
those answers measure a random prefix, not a trained prompt: :func:`undertrained_runs`
says, per run, how many test questions such a prompt answered. And a pool of ``m``
prompts that answers every question with one prompt uses one prompt's parameters:
:func:`pool_parameters` gives the parameters allocated and those that answered.

Pure functions over the question table (``questions.csv``: per question the prompt it was
answered with, ``pool_choice``, :func:`.questions.pool_record`) and the pools' training
counts (:func:`compress_recover.prompt_choice.examples_per_prompt`); numbers, never text.
A run is (model, compression, run name), e.g. ("smollm2-135m", "<compression>", "<group>.seed0").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...data.split import TEST
from .questions import ALL_KNOWLEDGE, split_mask

# report.pool_min_examples's default (the schema's): fewer training examples than this and
# a prompt's answers are not a trained prompt's
MIN_EXAMPLES = 16


def chosen_on_test(questions) -> dict[tuple[str, str, str], list[int]]:
    """(model, compression, run) -> the prompt each of the run's test questions was answered
    with, for every run of a method that keeps one prompt of a pool per question; each
    question once (the pooled task's copies, :data:`.questions.ALL_KNOWLEDGE`, left out)."""
    table = questions[questions.pool_choice.notna() & (questions.task != ALL_KNOWLEDGE)]
    table = table[split_mask(table, TEST)]
    return {key: frame.pool_choice.astype(int).tolist()
            for key, frame in table.groupby(["model", "compression", "run"], sort=True)}


@dataclass(frozen=True)
class PromptTraining:
    """One run's test questions against the training of the prompts that answered them:
    ``questions`` answered, ``undertrained`` of them by a prompt trained with fewer than
    ``min_examples`` examples, ``fewest_examples`` the fewest any prompt that answered one
    trained with, ``prompts_used`` those prompts."""

    model: str
    compression: str
    run: str
    questions: int
    undertrained: int
    fewest_examples: int
    min_examples: int
    prompts_used: tuple[int, ...]

    @property
    def flagged(self) -> bool:
        """Some test question was answered by a prompt trained with fewer than ``min_examples``."""
        return self.undertrained > 0


def undertrained_runs(choices: dict[tuple[str, str, str], list[int]], examples: dict[tuple[str, str, str], list[int]],
                      min_examples: int = MIN_EXAMPLES) -> dict[tuple[str, str, str], PromptTraining]:
    """Per run of ``choices`` ((model, compression, run) -> the prompt each test question was
    answered with, :func:`chosen_on_test`), whether a prompt trained with fewer than
    ``min_examples`` examples (config.yaml ``report.pool_min_examples``) answered any of
    them, with the counts. ``examples``: (model, compression, run) -> the training examples
    of each prompt of the run's pool (:func:`compress_recover.prompt_choice.examples_per_prompt`
    of its adapter manifest's or cost.json's ``pool``); a run without them, or whose
    questions name a prompt its pool does not have, is refused (ValueError).

    What "trained with" counts is the routing's choice per example, the prompt kept after the
    selection layers: in ``hard``, ``shard`` and ``curated`` training the only prompt the
    language-model loss reaches. ``soft`` and ``gumbel`` training pass every example's loss
    to every prompt too (through the input's attention to the whole pool in the selection
    layers, and ``soft`` through its mixture), so there the count is a lower bound."""
    out = {}
    for key, chosen in sorted(choices.items()):
        counts = examples.get(key)
        if counts is None:
            raise ValueError(f"{'/'.join(key)}: its test questions were answered by prompts of a pool, but no "
                             "training count of that pool was given (the adapter manifest's pool.trained_with)")
        if max(chosen) >= len(counts):
            raise ValueError(f"{'/'.join(key)}: a test question was answered by prompt {max(chosen)}, but the "
                             f"pool's training counts {counts} name {len(counts)} prompts")
        used = tuple(sorted(set(chosen)))
        out[key] = PromptTraining(*key, questions=len(chosen),
                                  undertrained=sum(counts[c] < min_examples for c in chosen),
                                  fewest_examples=min(counts[c] for c in used),
                                  min_examples=min_examples, prompts_used=used)
    return out


@dataclass(frozen=True)
class PoolParameters:
    """A pool's extra parameters: ``allocated`` (every prompt) and ``used`` (the prompts that
    answered at least one test question)."""

    allocated: int
    used: int


def pool_parameters(pool_size: int, prompt_params: int, chosen: Iterable[int]) -> PoolParameters:
    """The extra parameters of a pool of ``pool_size`` prompts of ``prompt_params`` values each
    (num_virtual_tokens x hidden size): allocated, pool_size x prompt_params; used, the
    distinct prompts of ``chosen`` (the prompt each test question was answered with,
    :func:`chosen_on_test`) x prompt_params. The pool's router has no weights of its own (its
    scores are the frozen selection layers' attention, less ``pool_size`` centring offsets kept
    in the adapter's config, counted by neither number nor by cost.json's ``extra_params``)."""
    return PoolParameters(allocated=pool_size * prompt_params, used=len(set(chosen)) * prompt_params)
