"""The question table as aligned arrays: per (model, task) a grid of cells, one per (compression, recovery).

A :class:`Cell` holds one row per run (seed) and one column per question, in the grid's
question order (the base model's questions); every cell of a grid was scored on the same
questions, so every comparison between cells is paired. The grid carries each question's
fact and right answer (their connected components are the bootstrap's resampling unit,
:mod:`.clusters`) and the task it comes from (its stratum; the pooled task's questions come
from several).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ...data.facts import own_fact
from ...runs import BASE
from .clusters import answer_keys, question_clusters
from .questions import source_task


@dataclass(frozen=True)
class Cell:
    """One (compression, recovery) of a (model, task) grid: one row per run (seed), one
    column per question, in the grid's question order: ``correct`` and the right choice's
    probability among the choices, ``p_right`` and ``p_right_norm``
    (:func:`.questions.choice_probability`), and ``kl_base``, the KL divergence from the base
    model's distribution over the choices (:func:`.questions.with_kl_to_base`; NaN where unknown)."""

    runs: tuple
    seeds: tuple
    correct: "numpy.ndarray"  # noqa: F821
    p_right: "numpy.ndarray"  # noqa: F821
    p_right_norm: "numpy.ndarray"  # noqa: F821
    kl_base: "numpy.ndarray | None" = None  # noqa: F821

    @property
    def run_accuracies(self):
        return self.correct.mean(axis=1)

    @property
    def accuracy(self) -> float:
        """Mean over runs of each run's accuracy."""
        return float(self.correct.mean())

    def seed_label(self, i: int) -> str:
        """The seed of run ``i`` as a table shows it ("" for an untrained model)."""
        return "" if self.seeds[i] is None else str(self.seeds[i])


@dataclass(frozen=True)
class Grid:
    """``facts``, ``tasks`` and ``answers``: per question (in ``doc_ids``' order) its fact id,
    the task it comes from and its right answer's key (:func:`.clusters.answer_key`, None
    where the choices have no texts); empty: every question its own fact, all from ``task``,
    no answer shared."""

    model: str
    task: str
    doc_ids: tuple
    cells: dict  # (compression, recovery) -> Cell
    facts: tuple = ()
    tasks: tuple = ()
    answers: tuple = ()

    def get(self, compression: str, recovery: str) -> Cell | None:
        return self.cells.get((compression, recovery))

    @property
    def n(self) -> int:
        return len(self.doc_ids)

    @property
    def question_facts(self) -> tuple:
        """Each question's fact id (its own when the grid was built without facts)."""
        return self.facts or tuple(own_fact(self.task, d) for d in self.doc_ids)

    @cached_property
    def question_clusters(self) -> tuple:
        """Each question's resampling unit: the component of its fact and its right answer
        (:func:`.clusters.question_clusters`), so questions that share a fact or an answer
        are drawn together."""
        return question_clusters(self.question_facts, self.answers or None)

    @property
    def question_tasks(self) -> tuple:
        """The task each question comes from (the stratum of the fact bootstrap)."""
        return self.tasks or (self.task,) * self.n

    @property
    def has_base(self) -> bool:
        return self.get(BASE, BASE) is not None

    def compressions(self) -> list[str]:
        return sorted({c for c, r in self.cells if c != BASE and r == BASE})

    def recoveries(self, compression: str) -> list[str]:
        return sorted(r for c, r in self.cells if c == compression and r != BASE)

    def recovered(self) -> list[tuple[str, str]]:
        """Every (compression, recovery) of a compressed model, in order."""
        return [(c, r) for c in self.compressions() for r in self.recoveries(c)]


def _seed_order(seed) -> tuple:
    return (seed is not None, -1 if seed is None else seed)


def _cell(frame, doc_ids) -> Cell:
    import numpy as np
    import pandas as pd

    seeds = {r.run: (None if pd.isna(r.seed) else int(r.seed))
             for r in frame[["run", "seed"]].drop_duplicates().itertuples(index=False)}
    runs = sorted(seeds, key=lambda run: (_seed_order(seeds[run]), run))
    arrays = {}
    for column in ("correct", "p_right", "p_right_norm", "kl_base"):
        if column not in frame:
            continue
        wide = frame.pivot(index="doc_id", columns="run", values=column)
        arrays[column] = np.asarray(wide.loc[list(doc_ids), runs].to_numpy(dtype=float).T)
    return Cell(runs=tuple(runs), seeds=tuple(seeds[r] for r in runs), **arrays)


def _facts(reference, doc_ids, task: str) -> tuple:
    """Each question's fact from the table's ``fact`` column (a missing or empty one: the
    question is its own fact)."""
    import pandas as pd

    if "fact" not in reference:
        return tuple(own_fact(task, d) for d in doc_ids)
    named = {d: f for d, f in zip(reference.doc_id, reference.fact, strict=True) if not pd.isna(f) and str(f)}
    return tuple(str(named[d]) if d in named else own_fact(task, d) for d in doc_ids)


def _answers(reference, doc_ids) -> tuple:
    """Each question's right-answer key from the table's ``answer`` and ``choices`` columns
    (:func:`.clusters.answer_keys`); () without them."""
    rows = reference.drop_duplicates("doc_id")
    keys = answer_keys(rows)
    if keys is None:
        return ()
    by_doc = dict(zip(rows.doc_id, keys, strict=True))
    return tuple(by_doc[d] for d in doc_ids)


def build_grids(table) -> dict[tuple[str, str], Grid]:
    """(model, task) -> its grid of cells aligned on the base model's questions, with each
    question's fact, right answer and source task."""
    grids = {}
    for (model, task), sub in table.groupby(["model", "task"], sort=True):
        frames = dict(iter(sub.groupby(["compression", "recovery"], sort=True)))
        reference = frames.get((BASE, BASE), next(iter(frames.values())))
        doc_ids = tuple(sorted(set(reference.doc_id)))
        for key, frame in frames.items():
            for run, ids in frame.groupby("run").doc_id:
                if set(ids) != set(doc_ids) or ids.duplicated().any():
                    raise ValueError(f"{model}/{task}: {'/'.join(key)} ({run}) was scored on other questions "
                                     "than the base model")
        if "fact" in sub and (sub[["doc_id", "fact"]].drop_duplicates().doc_id.duplicated().any()):
            raise ValueError(f"{model}/{task}: a question is given different facts by different runs")
        grids[(model, task)] = Grid(model, task, doc_ids, {k: _cell(f, doc_ids) for k, f in frames.items()},
                                    facts=_facts(reference, doc_ids, task), answers=_answers(reference, doc_ids),
                                    tasks=tuple(source_task(task, d) for d in doc_ids))
    return grids


def base_first(frame):
    """Rows ordered model, then the base model (compression and recovery none) first."""
    if frame.empty or "compression" not in frame:
        return frame
    keys = {"_c": frame.compression != BASE}
    if "recovery" in frame:
        keys["_r"] = frame.recovery != BASE
    order = frame.assign(**keys).sort_values(
        [c for c in ("model", "_c", "compression", "_r", "recovery", "seed", "task") if c in frame or c in keys],
        kind="stable")
    return order.drop(columns=list(keys)).reset_index(drop=True)
