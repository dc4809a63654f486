"""The dev/test split of the knowledge questions (config.yaml ``data.split``).

Anything chosen by looking at results (a recipe, an objective, a budget, a learning rate)
is chosen on the dev questions; the verdict and every headline table use the test
questions only. Per task (stratified), the question ids are ranked by the sha256 of
``"<seed>:<task>:<doc_id>"`` and the ``round(dev_fraction * n)`` lowest go to dev, the rest
to test. So the split is deterministic, the same for a task whatever other tasks exist
(adding a task moves no question of another), and changes with the seed. Every question
of a task in ``held_out_tasks`` is test: those relations are never used for any choice,
so what recovery does to them is collateral damage measured on untouched ground.

Pure Python: imported by the analysis, cheap enough for anything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

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


def _rank_key(seed: int, task: str, doc_id: str) -> str:
    return hashlib.sha256(f"{seed}:{task}:{doc_id}".encode()).hexdigest()


def task_split(task: str, doc_ids: Iterable[str], *, dev_fraction: float, seed: int) -> dict[str, str]:
    """doc_id -> "dev" or "test" for the questions of one task."""
    ids = sorted(set(map(str, doc_ids)), key=lambda d: (_rank_key(seed, task, d), d))
    n_dev = round(dev_fraction * len(ids))
    return {d: DEV if i < n_dev else TEST for i, d in enumerate(ids)}


def question_splits(questions: Mapping[str, Iterable[str]], *, dev_fraction: float = 0.25, seed: int = 0,
                    held_out_tasks: Iterable[str] = ()) -> dict[tuple[str, str], str]:
    """(task, doc_id) -> "dev" or "test" for ``questions`` (task -> its question ids).

    Raises ``ValueError`` for a ``dev_fraction`` outside [0, 1) or a held-out task that is
    not one of ``questions``' tasks (a typo would otherwise hold out nothing)."""
    if not 0 <= dev_fraction < 1:
        raise ValueError(f"data.split.dev_fraction must be in [0, 1), got {dev_fraction}")
    held_out = list(held_out_tasks)
    missing = [t for t in held_out if t not in questions]
    if missing:
        raise ValueError(f"data.split.held_out_tasks: {missing} are not knowledge tasks of this run "
                         f"(tasks: {sorted(questions)})")
    out = {}
    for task, doc_ids in questions.items():
        fraction = 0.0 if task in held_out else dev_fraction
        out.update({(task, d): s for d, s in task_split(task, doc_ids, dev_fraction=fraction, seed=seed).items()})
    return out


def split_counts(splits: Mapping[tuple[str, str], str]) -> dict[str, dict[str, int]]:
    """task -> {"dev": questions, "test": questions}."""
    counts: dict[str, dict[str, int]] = {}
    for (task, _), split in splits.items():
        counts.setdefault(task, {DEV: 0, TEST: 0})[split] += 1
    return counts
