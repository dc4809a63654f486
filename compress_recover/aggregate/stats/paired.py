"""Paired per-question comparisons: McNemar's exact test, margin sign-flip tests, knowledge flips.

Every model of a grid answered the same questions, so two models are compared question by
question: on right/wrong (:func:`paired_tests`, McNemar), on the right choice's probability
among the choices (:func:`margin_tests`, a sign-flip permutation test with a t interval) and
as counts of questions kept, lost, gained and won back (:func:`flips`). All of them are
descriptive: uncorrected for their number, outside the verdict's error budget (the verdict's
claims rest on :mod:`.decisions`).
"""

from __future__ import annotations

import math

from ...runs import BASE
from .bootstrap import CHUNK, stable_seed
from .grid import Cell
from .methods import INPUT, PARAMETERS, Methods
from .status import GAINED, KEPT, LOST, majority_right, question_status

PAIRED_COLUMNS = ["model", "task", "comparison", "a", "a_seed", "b", "b_seed", "n", "a_acc", "b_acc", "a_only",
                  "b_only", "p_value"]
MARGIN_COLUMNS = ["model", "task", "compression", "recovery", "metric", "seeds", "n", "compressed_mean",
                  "recovered_mean", "mean_difference", "ci_low", "ci_high", "improved", "worsened", "p_value"]
FLIP_COLUMNS = ["model", "compression", "task", "category", "recovery", "seed", "count"]
MAJORITY = "majority"  # the seed label of a recovery's majority-of-seeds flips


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a right & b wrong,
    a wrong & b right): a binomial test of a_only out of a_only + b_only at 1/2, summed in
    exact integer arithmetic and rounded once (``scipy.stats.binomtest`` agrees to ~1e-15,
    with its own rounding; tested against it)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def sign_flip_p(differences, iters: int, seed: int) -> float:
    """Two-sided paired permutation test of mean(differences) = 0: each question's
    difference has its sign flipped at random (exchangeable under H0: the two models'
    margins have the same distribution per question); p = (1 + #|T*| >= |T|) / (1 + iters)."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    if not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        signs = rng.integers(0, 2, size=(size, len(d))) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d / len(d)) >= observed * (1 - 1e-12)))
    return (1 + hits) / (1 + iters)


def t_interval(differences, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean difference."""
    import numpy as np
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def _same_seed_runs(a: Cell, b: Cell) -> list[tuple[int, int]]:
    """Run index pairs of two cells with the same seed (else the i-th run of each)."""
    pairs = [(i, b.seeds.index(seed)) for i, seed in enumerate(a.seeds) if seed in b.seeds]
    return pairs or list(zip(range(len(a.runs)), range(len(b.runs))))


def paired_tests(grids: dict, *, methods: Methods):
    """McNemar exact tests per run: compressed vs base, each recovery vs its compressed
    model, each format control (the uncompressed model recovered) vs the base, and every
    input-side recovery (b) vs every parameter-side one (a) of the same seed."""
    import pandas as pd

    rows = []

    def test(grid, comparison, a_key, a_i, b_key, b_i):
        a_cell, b_cell = grid.get(*a_key), grid.get(*b_key)
        a, b = a_cell.correct[a_i] > 0.5, b_cell.correct[b_i] > 0.5
        a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
        rows.append({"model": grid.model, "task": grid.task, "comparison": comparison, "a": "/".join(a_key),
                     "a_seed": a_cell.seed_label(a_i), "b": "/".join(b_key), "b_seed": b_cell.seed_label(b_i),
                     "n": len(a), "a_acc": a.mean(), "b_acc": b.mean(), "a_only": a_only, "b_only": b_only,
                     "p_value": mcnemar_exact(a_only, b_only)})

    for grid in grids.values():
        if not grid.has_base:
            continue
        for rec in grid.recoveries(BASE):
            for i in range(len(grid.get(BASE, rec).runs)):
                test(grid, "control", (BASE, BASE), 0, (BASE, rec), i)
        for comp in grid.compressions():
            test(grid, "compression", (BASE, BASE), 0, (comp, BASE), 0)
            recs = grid.recoveries(comp)
            for rec in recs:
                for i in range(len(grid.get(comp, rec).runs)):
                    test(grid, "recovery", (comp, BASE), 0, (comp, rec), i)
            side = {r: methods.side(r) for r in recs}
            for p in (r for r in recs if side[r] == PARAMETERS):
                for q in (r for r in recs if side[r] == INPUT):
                    for i, j in _same_seed_runs(grid.get(comp, p), grid.get(comp, q)):
                        test(grid, "input_vs_parameters", (comp, p), i, (comp, q), j)
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


MARGIN_METRICS = ("p_right", "p_right_norm")


def fact_sums(differences, facts) -> "numpy.ndarray":  # noqa: F821
    """Per-question ``differences`` summed per fact and scaled by facts / questions, so their
    mean is the per-question mean difference while the t interval and the sign-flip test
    treat each fact (every question restating it) as one independent unit. One question a
    fact: ``differences`` unchanged."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    _, which = np.unique(np.asarray(facts, dtype=object).astype(str), return_inverse=True)
    sums = np.bincount(which, weights=d)
    return sums * len(sums) / len(d) if len(sums) != len(d) else d


def margin_tests(grids: dict, *, iters: int, seed: int, level: float = 0.95):
    """Each recovery vs its compressed model on the per-question probability of the right
    choice among the choices (:func:`.questions.choice_probability`; the recovery's averaged
    over its seeds first): mean difference, t interval, sign-flip p-value; once on ``p_right``
    (softmax over the log-likelihoods, as acc) and once on ``p_right_norm`` (over the
    per-character log-likelihoods, as acc_norm). A probability in [0, 1], on the scale of
    accuracy: sharpening the output distribution alone (log-likelihoods times a factor > 1)
    pushes each question's value towards 1 where it is answered right and towards 0 where
    not, so the mean tends to the accuracy, where a difference in nats grows with the factor
    without bound (tested). The cluster of facts and answers is the unit (:func:`fact_sums`,
    :mod:`.clusters`): questions that restate one fact, or share a right answer, are not
    independent, so the t interval and the sign flips run over clusters.
    Descriptive: uncorrected, outside the verdict's error budget."""
    import numpy as np
    import pandas as pd

    rows = []
    for grid in grids.values():
        for comp in grid.compressions():
            compressed = grid.get(comp, BASE)
            for rec in grid.recoveries(comp):
                cell = grid.get(comp, rec)
                for metric in MARGIN_METRICS:
                    d = getattr(cell, metric).mean(axis=0) - getattr(compressed, metric)[0]
                    if np.isnan(d).any():
                        continue
                    clustered = fact_sums(d, grid.question_clusters)
                    low, high = t_interval(clustered, level)
                    p = sign_flip_p(clustered, iters, stable_seed(seed, grid.model, grid.task, comp, rec, metric))
                    rows.append({"model": grid.model, "task": grid.task, "compression": comp, "recovery": rec,
                                 "metric": metric, "seeds": len(cell.runs), "n": grid.n,
                                 "compressed_mean": float(np.mean(getattr(compressed, metric)[0])),
                                 "recovered_mean": float(np.mean(getattr(cell, metric))),
                                 "mean_difference": float(d.mean()), "ci_low": low, "ci_high": high,
                                 "improved": int((d > 0).sum()), "worsened": int((d < 0).sum()), "p_value": p})
    return pd.DataFrame(rows, columns=MARGIN_COLUMNS)


def flips(grids: dict):
    """Question counts per (model, compression, task, category, recovery, seed), counted from
    :func:`compress_recover.aggregate.stats.status.question_status`.

    Categories: ``kept`` (right before and after compression), ``lost`` (right before,
    wrong after), ``gained`` (wrong before, right after), per recovery run ``recovered``
    (lost, then right after this recovery) and ``broken`` (right after compression, wrong
    after this recovery), for a recovery with two or more seeds the same two with seed
    ``majority`` (right after it in a majority of its seeds: what the report's explorer
    shows), and ``recovered_by_several`` (lost, won back by two or more recovery methods,
    each counted when a majority of its seeds won it back)."""
    import pandas as pd

    rows = []
    for grid in grids.values():
        if not grid.has_base:
            continue
        b = grid.get(BASE, BASE).correct[0] > 0.5
        for comp in grid.compressions():
            c = grid.get(comp, BASE).correct[0] > 0.5

            def add(category, count, recovery="", seed=""):
                rows.append({"model": grid.model, "compression": comp, "task": grid.task, "category": category,
                             "recovery": recovery, "seed": seed, "count": int(count)})

            cells = {rec: grid.get(comp, rec) for rec in grid.recoveries(comp)}
            majority = question_status(b, c, {rec: majority_right(cell.correct) for rec, cell in cells.items()})
            for category in (KEPT, LOST, GAINED):
                add(category, majority.count(category))
            for rec, cell in cells.items():
                per_seed = question_status(b, c, {i: cell.correct[i] > 0.5 for i in range(len(cell.runs))})
                for i in range(len(cell.runs)):
                    add("recovered", per_seed.won_back[i].sum(), rec, cell.seed_label(i))
                    add("broken", per_seed.broken[i].sum(), rec, cell.seed_label(i))
                if len(cell.runs) > 1:
                    add("recovered", majority.won_back[rec].sum(), rec, MAJORITY)
                    add("broken", majority.broken[rec].sum(), rec, MAJORITY)
            if cells:
                add("recovered_by_several", majority.several.sum())
    return pd.DataFrame(rows, columns=FLIP_COLUMNS)
