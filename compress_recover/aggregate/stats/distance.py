"""A distance beside the flips: how far each model moved from the base model on every question, and whether that tells the lost questions.

Right/wrong counts only the questions whose top choice changed. Practitioners also read a
distance between the base model's and the compressed model's output distributions (KL
divergence), and recent work ("Displacement is not direction", 2026, on 28- and 41-quant
cohorts) finds that it stops tracking quality near the baseline, where small losses sit.
``distance.csv`` reports both, per (model, compression, recovery, run, task) on the test
questions of the final budget's runs:

- the KL divergence KL(base || model) over the question's choices
  (:func:`.questions.with_kl_to_base`), its mean and its tail (90th and 99th percentiles);
- among the questions the base model answers right, how many this model loses, and the
  AUC of the KL for telling the lost ones from the kept ones (0.5: the distance says
  nothing about which questions were lost; 1: every lost question moved further than every
  kept one), with a 95% interval from the same cluster bootstrap as the verdict (facts and
  shared answers resampled together, :mod:`.clusters`, stratified by task; none with fewer
  than 2 lost questions, :func:`auc_interval`). Descriptive: outside the verdict's error
  budget.

A lost question's top choice changed, so it must have moved some distance; an AUC near 1 is
the expected floor for a distance that sees flips at all. What the AUC shows is how often a
kept question moved as far as a lost one (large moves that did not flip an answer).
"""

from __future__ import annotations

from ...runs import BASE
from .bootstrap import INTERVAL, cluster_weights, fact_strata, interval, stable_seed
from .grid import base_first

DISTANCE_COLUMNS = ["model", "compression", "recovery", "seed", "run", "task", "n", "kl_mean", "kl_p90", "kl_p99",
                    "at_risk", "lost", "auc_lost", "auc_low", "auc_high"]


def weighted_auc(scores, positive, weights):
    """The AUC (probability that a positive outscores a negative, ties counted half) of
    ``scores`` for ``positive`` (bool), once per row of ``weights`` ((B, n) case weights, a
    bootstrap's; (n,) for one). NaN where a row has no positive or no negative weight."""
    import numpy as np

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    values, group = np.unique(scores, return_inverse=True)
    onehot = np.zeros((len(scores), len(values)))
    onehot[np.arange(len(scores)), group] = 1.0
    pos, neg = (w * positive) @ onehot, (w * ~positive) @ onehot  # (B, groups): weight at each score
    below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = np.where(total > 0, np.clip((pos * (below + 0.5 * neg)).sum(axis=1) / total, 0.0, 1.0), np.nan)
    return auc if np.ndim(weights) > 1 else float(auc[0])


MIN_LOST = 2  # fewer lost questions: no AUC interval
MIN_DEFINED = 0.95  # the share of resamples with a lost and a kept question an interval needs


def auc_interval(draws, lost: int) -> tuple[float, float]:
    """The 95% percentile interval of the AUC's resamples, over those where it is defined (a
    lost and a kept question drawn); NaN (no interval) with fewer than :data:`MIN_LOST` lost
    questions or when under :data:`MIN_DEFINED` of the resamples define it, rather than an
    interval read off a conditional distribution or stretched to infinity."""
    import numpy as np

    defined = draws[np.isfinite(draws)]
    if lost < MIN_LOST or len(defined) < MIN_DEFINED * len(draws):
        return float("nan"), float("nan")
    return interval(defined, INTERVAL)


def _row(grid, comp: str, rec: str, i: int, weights) -> dict:
    import numpy as np

    cell = grid.get(comp, rec)
    kl = cell.kl_base[i] if cell.kl_base is not None else np.full(grid.n, np.nan)
    base_right = grid.get(BASE, BASE).correct[0] > 0.5
    lost = base_right & (cell.correct[i] < 0.5)
    row = {"model": grid.model, "compression": comp, "recovery": rec,
           "seed": "" if cell.seeds[i] is None else str(cell.seeds[i]), "run": cell.runs[i], "task": grid.task,
           "n": grid.n, "at_risk": int(base_right.sum()), "lost": int(lost.sum())}
    if np.isnan(kl).any():
        return {**row, **dict.fromkeys(["kl_mean", "kl_p90", "kl_p99", "auc_lost", "auc_low", "auc_high"],
                                       float("nan"))}
    low, high = auc_interval(weighted_auc(kl[base_right], lost[base_right], weights[:, base_right]), row["lost"])
    return {**row, "kl_mean": float(kl.mean()), "kl_p90": float(np.quantile(kl, 0.9)),
            "kl_p99": float(np.quantile(kl, 0.99)),
            "auc_lost": weighted_auc(kl[base_right], lost[base_right], np.ones(int(base_right.sum()))),
            "auc_low": low, "auc_high": high}


def distance_table(grids: dict, *, iters: int, seed: int):
    """``distance.csv`` (:mod:`.distance`) from the test questions' grids of the final
    budget: one row per run of every compressed and recovered model (and of the format
    control, recovery on the base model) of each (model, task) with a base model."""
    import numpy as np
    import pandas as pd

    rows = []
    for grid in grids.values():
        if not grid.has_base:
            continue
        fact_index, strata = fact_strata(grid.question_clusters, grid.question_tasks)
        weights = cluster_weights(fact_index, strata, iters,
                                  np.random.default_rng(stable_seed(seed, grid.model, grid.task, "distance")))
        for comp, rec in sorted(grid.cells, key=lambda k: (k[0] != BASE, k[0], k[1] != BASE, k[1])):
            if (comp, rec) == (BASE, BASE):
                continue
            rows.extend(_row(grid, comp, rec, i, weights) for i in range(len(grid.get(comp, rec).runs)))
    return base_first(pd.DataFrame(rows, columns=DISTANCE_COLUMNS))
