"""The dev/test split of the knowledge questions (config.yaml ``data.split``).

Anything chosen by looking at results (a recipe, an objective, a budget, a learning rate)
is chosen on the dev questions; the verdict and every headline table use the test
questions only. The split assigns whole **facts** (:func:`compress_recover.data.facts.question_fact`:
``element_symbol``'s Iron -> Fe and ``element_name``'s Fe -> Iron are one fact), so no
fact is asked in dev and in test. Per task (stratified), the task's facts are ranked by the
sha256 of ``"<seed>:<fact>"`` and the ``round(dev_fraction * facts)`` lowest are that
task's dev candidates. A fact is dev when every task that asks it makes it a candidate
(a fact shared by two tasks lands in one split, and test wins a disagreement); the rest is
test. Every fact of a task in ``held_out_tasks`` is test, in every task that asks it: a
held-out relation's inverse questions are held out too (``held_out_tasks:
[element_name]`` makes all of ``element_symbol`` test), so those facts are never used for
any choice and what recovery does to them is collateral damage on untouched ground.

The trade-off: a task that shares no fact gets exactly ``round(dev_fraction * facts)``
dev facts and keeps its split whatever other tasks exist; a task that shares facts can
get a few fewer (the shared facts ranked between the two tasks' cutoffs go to test), and
adding a task can move only the facts it shares, and only from dev to test. A question
that is its own fact (the default for a task whose docs name none) is ranked by
``"<seed>:<task>:<doc_id>"``, as before facts existed. The fraction counts facts, so a
custom task that asks some facts several times gets about, not exactly, that share of
its questions in dev. The split is deterministic and changes with the seed.

Pure Python: imported by the analysis, cheap enough for anything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from .facts import own_fact

DEV, TEST = "dev", "test"
DEFAULTS = {"dev_fraction": 0.25, "seed": 0, "held_out_tasks": []}


def split_settings(split: Mapping | None) -> dict:
    """``data.split`` with its defaults; ``None`` means no dev set (every question test)."""
    if split is None:
        return {**DEFAULTS, "dev_fraction": 0.0}
    unknown = set(split) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"data.split: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **split}
    out["held_out_tasks"] = list(out["held_out_tasks"])
    return out


def _rank_key(seed: int, fact: str) -> str:
    return hashlib.sha256(f"{seed}:{fact}".encode()).hexdigest()


def dev_candidates(facts: Iterable[str], *, dev_fraction: float, seed: int) -> set[str]:
    """The ``round(dev_fraction * n)`` of one task's ``n`` distinct facts that rank lowest
    by the sha256 of ``"<seed>:<fact>"``."""
    ranked = sorted(set(facts), key=lambda f: (_rank_key(seed, f), f))
    return set(ranked[:round(dev_fraction * len(ranked))])


def question_splits(questions: Mapping[str, Iterable[str]], *, dev_fraction: float = 0.25, seed: int = 0,
                    held_out_tasks: Iterable[str] = (),
                    facts: Mapping[tuple[str, str], str] | None = None) -> dict[tuple[str, str], str]:
    """(task, doc_id) -> "dev" or "test" for ``questions`` (task -> its question ids), whole
    facts at a time (``facts``: (task, doc_id) -> fact id; a question missing there is its
    own fact, :func:`compress_recover.data.facts.own_fact`).

    Raises ``ValueError`` for a ``dev_fraction`` outside [0, 1) or a held-out task that is
    not one of ``questions``' tasks (a typo would otherwise hold out nothing)."""
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"data.split.dev_fraction must be in [0, 1), got {dev_fraction}")
    held_out = list(held_out_tasks)
    missing = [t for t in held_out if t not in questions]
    if missing:
        raise ValueError(f"data.split.held_out_tasks: {missing} are not knowledge tasks of this run "
                         f"(tasks: {sorted(questions)})")
    facts = facts or {}
    fact_of = {(task, d): facts.get((task, d)) or own_fact(task, d)
               for task, doc_ids in questions.items() for d in map(str, doc_ids)}
    tasks_of: dict[str, set[str]] = {}
    facts_in: dict[str, set[str]] = {task: set() for task in questions}
    for (task, _), fact in fact_of.items():
        tasks_of.setdefault(fact, set()).add(task)
        facts_in[task].add(fact)
    candidates = {task: dev_candidates(found, dev_fraction=0.0 if task in held_out else dev_fraction, seed=seed)
                  for task, found in facts_in.items()}
    dev = {f for f, tasks in tasks_of.items() if all(f in candidates[t] for t in tasks)}
    return {key: DEV if fact in dev else TEST for key, fact in fact_of.items()}


def split_counts(splits: Mapping[tuple[str, str], str]) -> dict[str, dict[str, int]]:
    """task -> {"dev": questions, "test": questions}."""
    counts: dict[str, dict[str, int]] = {}
    for (task, _), split in splits.items():
        counts.setdefault(task, {DEV: 0, TEST: 0})[split] += 1
    return counts
