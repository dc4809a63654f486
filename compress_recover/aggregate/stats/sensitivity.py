"""The verdict again on the one-to-one relations alone: a sensitivity row beside the verdict.

A relation where several questions share a right answer (city -> country, country ->
currency) lets a model's prior for that answer decide questions without reading the
subject, and lets one shift of that prior move many questions together. The confirmatory
verdict resamples clusters of shared answers (:mod:`.clusters`) and the built tasks balance
their distractors, but the cleanest check is to decide again on the relations where (almost) every
question has its own right answer (capitals, element_symbol, element_name in the built
suite; found from the questions, :func:`one_to_one_questions`, so a user's task qualifies
the same way), keeping only their questions whose right answer is their own: the same
rule, the same thresholds, the same kind of Holm family (its own, over the same
hypotheses), on those pooled test questions only. It is reported, never used to decide:
where it differs from the verdict, the verdict rests partly on shared-answer questions.
"""

from __future__ import annotations

from .clusters import answer_keys
from .questions import ALL_KNOWLEDGE, source_task


MAX_SHARED = 0.05  # a relation is one-to-one when at most this share of its questions share a right answer


def one_to_one_questions(table) -> tuple[list[str], set]:
    """(the one-to-one knowledge tasks, the pooled task's ids of their questions kept).

    A task (not the pooled one) is one-to-one when every question has a right answer with a
    text (:func:`.clusters.answer_key`) and at most :data:`MAX_SHARED` of its questions share
    it with another question of the task (the built ``capitals`` has four capitals of two
    countries each: Jerusalem, Belgrade, ...); of such a task only the questions whose right
    answer is their own are kept, so no kept question shares its answer. Sorted tasks; ids
    as the pooled task writes them (``<task>:<doc_id>``)."""
    from collections import Counter

    tasks, kept = [], set()
    described = table[table.task != ALL_KNOWLEDGE].drop_duplicates(["task", "doc_id"])
    if answer_keys(described) is None:
        return [], set()
    for task, rows in described.groupby("task", sort=True):
        keys = answer_keys(rows)
        if not keys or None in keys:
            continue
        counts = Counter(keys)
        shared = sum(counts[k] > 1 for k in keys)
        if shared <= MAX_SHARED * len(keys):
            tasks.append(str(task))
            kept.update(f"{task}:{d}" for d, k in zip(rows.doc_id, keys, strict=True) if counts[k] == 1)
    return tasks, kept


def one_to_one_tasks(table) -> list[str]:
    """The one-to-one knowledge tasks of a question table (:func:`one_to_one_questions`)."""
    return one_to_one_questions(table)[0]


def one_to_one_verdicts(headline, table, *, methods, settings, seed: int, budget: dict | None,
                        failed_groups: dict) -> dict:
    """``{"tasks", "questions", "verdicts"}``: :func:`.verdict.verdicts` decided afresh on the
    pooled task restricted to the one-to-one questions of ``table``
    (:func:`one_to_one_questions`; the test questions of the final budget's runs in
    ``headline``); ``verdicts`` empty when no task is one-to-one or none of them has a base
    model. ``failed_groups``: :func:`compress_recover.failures.failed_groups` of the failed runs."""
    from .bootstrap import accuracy_draws
    from .decisions import confirmatory, verdict_family, with_failures
    from .fractions import grid_pairs
    from .grid import build_grids
    from .verdict import verdicts

    tasks, kept = one_to_one_questions(table)
    pooled_rows = headline[headline.task == ALL_KNOWLEDGE]
    sub = pooled_rows[pooled_rows.doc_id.astype(str).isin(kept)]
    questions = int(sub.doc_id.nunique())
    if sub.empty:
        return {"tasks": tasks, "questions": questions, "verdicts": []}
    grids = build_grids(sub)
    pooled, family, iters = verdict_family(grids, settings, methods)
    draws, pairs = {}, {}
    for key, grid in pooled.items():
        draws[key] = accuracy_draws(grid, iters, seed)
        pairs.update({(grid.model, c, r): p for (c, r), p in grid_pairs(grid, draws[key]).items()})
    damage, decisions, ni = confirmatory(pooled, draws, {k: pairs[k] for k in family}, settings, methods)
    decisions = with_failures(decisions, failed_groups, damage, methods)
    return {"tasks": tasks, "questions": questions, "verdicts": verdicts(damage, decisions, ni, None, None, budget)}
