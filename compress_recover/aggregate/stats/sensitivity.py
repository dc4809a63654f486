"""The verdict again on the one-to-one relations alone: a sensitivity row beside the verdict.

A relation where several questions share a right answer (city -> country, country ->
currency) lets a model's prior for that answer decide questions without reading the
subject, and lets one shift of that prior move many questions together. The confirmatory
verdict resamples clusters of shared answers (:mod:`.clusters`) and the built tasks balance
their distractors, but the cleanest check is to decide again on the relations where every
question has its own right answer (capitals, element_symbol, element_name in the built
suite; found from the questions, so a user's task qualifies the same way): the same rule,
the same thresholds, the same kind of Holm family (its own, over the same hypotheses), on
the pooled test questions of those relations only. It is reported, never used to decide:
where it differs from the verdict, the verdict rests partly on shared-answer questions.
"""

from __future__ import annotations

from .clusters import answer_key
from .questions import ALL_KNOWLEDGE, source_task


def one_to_one_tasks(table) -> list[str]:
    """The knowledge tasks of a question table (not the pooled one) in which every question
    has a right answer with a text (:func:`.clusters.answer_key`) and no two questions share
    it; sorted."""
    out = []
    described = table[table.task != ALL_KNOWLEDGE].drop_duplicates(["task", "doc_id"])
    for task, rows in described.groupby("task", sort=True):
        keys = [answer_key(a, c) for a, c in zip(rows.answer, rows.choices, strict=True)] \
            if {"answer", "choices"} <= set(rows) else [None]
        if keys and None not in keys and len(set(keys)) == len(keys):
            out.append(str(task))
    return out


def one_to_one_verdicts(headline, *, tasks: list[str], methods, settings, seed: int, budget: dict | None,
                        failed_groups: dict) -> dict:
    """``{"tasks", "questions", "verdicts"}``: :func:`.verdict.verdicts` decided afresh on the
    pooled task restricted to ``tasks`` (the test questions of the final budget's runs in
    ``headline``); ``verdicts`` empty when no task is one-to-one or none of them has a base
    model. ``failed_groups``: :func:`compress_recover.failures.failed_groups` of the failed runs."""
    from .bootstrap import accuracy_draws
    from .decisions import confirmatory, verdict_family, with_failures
    from .fractions import grid_pairs
    from .grid import build_grids
    from .verdict import verdicts

    pooled_rows = headline[headline.task == ALL_KNOWLEDGE]
    keep = pooled_rows.doc_id.map(lambda d: source_task(ALL_KNOWLEDGE, d) in set(tasks))
    sub = pooled_rows[keep]
    questions = int(sub.drop_duplicates("doc_id").shape[0])
    if sub.empty:
        return {"tasks": list(tasks), "questions": questions, "verdicts": []}
    grids = build_grids(sub)
    pooled, family, iters = verdict_family(grids, settings, methods)
    draws, pairs = {}, {}
    for key, grid in pooled.items():
        draws[key] = accuracy_draws(grid, iters, seed)
        pairs.update({(grid.model, c, r): p for (c, r), p in grid_pairs(grid, draws[key], seed).items()})
    damage, decisions, ni = confirmatory(pooled, draws, {k: pairs[k] for k in family}, settings, methods)
    decisions = with_failures(decisions, failed_groups, damage, methods)
    return {"tasks": list(tasks), "questions": questions,
            "verdicts": verdicts(damage, decisions, ni, None, None, budget)}
