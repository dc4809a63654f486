"""Resampling and error control: paired bootstrap draws, bounds that agree with their p-values, and Holm.

- draws (:func:`accuracy_draws`): **clusters of facts and answers** are
  resampled with replacement (a cluster bootstrap: a drawn cluster brings every question
  that asks one of its facts or has one of its right answers, so a relation and its inverse
  move together, and so do the questions a shared answer's prior decides,
  :mod:`.clusters`), stratified by task, the same draw for every model of a (model, task)
  grid (paired); a recovery's seeds enter as a t component (:mod:`.spread`), never by
  resampling a few runs with replacement.
  Within a stratum of m clusters, m - 1 are drawn and each counts m / (m - 1) (Rao and
  Wu's rescaling, :func:`cluster_weights`); where every question is its own fact and
  answer this is the rescaled question bootstrap, draw for draw;
- bootstrap p-values (the ``share_*`` functions, (k + 1) / (B + 1), never 0) and bounds
  (:func:`lower_bound`, :func:`upper_bound`) agree exactly: an interval at level a
  excludes a threshold when the p-value against it is <= a;
- Holm's step-down procedure (:func:`holm`) with the level each hypothesis was decided at,
  and :func:`holm_family`, the one way every family of the verdict is decided: p-values ->
  Holm -> each member's bound at its level, checked to agree with Holm's decision.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from .grid import Grid

CHUNK = 256  # bootstrap resamples drawn at a time (bounds memory on large task suites)
INTERVAL = 0.95  # the level of the descriptive intervals (tables); decisions use Holm levels


def stable_seed(*parts) -> int:
    """A seed from ``parts`` that does not depend on Python's hash salt or on call order."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def fact_strata(facts, tasks) -> tuple:
    """The cluster structure of a grid's questions: (fact index of each question, the facts
    of each stratum). Facts are numbered in order of first appearance; a fact's stratum is
    the set of tasks that ask it. In one task's grid that is one stratum; in the pooled task
    a fact asked by one task is in that task's stratum, and a fact that tasks share (a
    relation and its inverse, a capital asked again as a city) is in the stratum of that
    set of tasks (``element_name`` + ``element_symbol``, ``capitals`` + ``city_country``),
    so every draw keeps each task's number of facts and questions."""
    import numpy as np

    index: dict = {}
    fact_index = np.array([index.setdefault(f, len(index)) for f in facts], dtype=np.int64)
    asked: list[set] = [set() for _ in index]
    for i, task in zip(fact_index, tasks, strict=True):
        asked[i].add(task)
    strata: dict = {}
    for i, found in enumerate(asked):
        strata.setdefault(tuple(sorted(found)), []).append(i)
    return fact_index, tuple(np.array(strata[k], dtype=np.int64) for k in sorted(strata))


def cluster_weights(fact_index, strata, size: int, rng):
    """(size, questions) weights of ``size`` stratified cluster resamples, rescaled as Rao and
    Wu's bootstrap for stratified samples (JASA 1988, https://doi.org/10.1080/01621459.1988.10478591):
    in a stratum of m clusters, m - 1 are drawn with replacement and each draw counts
    m / (m - 1), so a stratum keeps its expected weight and a mean's bootstrap variance is
    its unbiased between-cluster variance estimate (drawing m underestimates it by (m - 1) /
    m, which with a few large clusters of a shared answer costs coverage: the simulation in
    tests/test_aggregate_bootstrap.py). A question counts as often as its cluster was drawn;
    a stratum of one cluster is fixed."""
    import numpy as np

    counts = np.zeros((size, sum(len(s) for s in strata)), dtype=float)
    for members in strata:
        m = len(members)
        k = max(m - 1, 1)
        idx = rng.integers(0, m, size=(size, k)) + m * np.arange(size)[:, None]
        counts[:, members] = np.bincount(idx.ravel(), minlength=size * m).reshape(size, m) * (m / k)
    return counts[:, fact_index]


def accuracy_draws(grid: Grid, iters: int, seed: int) -> dict:
    """(compression, recovery) -> (iters, runs) array: each run's accuracy on resampled
    clusters (every question of a drawn fact-and-answer cluster, :attr:`.grid.Grid.question_clusters`,
    counted as often as the cluster was drawn; stratified by task, :func:`fact_strata`), the
    same resample for every cell of the grid (paired)."""
    import numpy as np

    keys = list(grid.cells)
    stacked = np.concatenate([grid.cells[k].correct for k in keys])
    fact_index, strata = fact_strata(grid.question_clusters, grid.question_tasks)
    out = np.empty((iters, stacked.shape[0]))
    rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, "questions"))
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        weights = cluster_weights(fact_index, strata, size, rng)
        out[start:start + size] = weights @ stacked.T / weights.sum(axis=1, keepdims=True)
    sizes = np.cumsum([0] + [len(grid.cells[k].runs) for k in keys])
    return {k: out[:, sizes[i]:sizes[i + 1]] for i, k in enumerate(keys)}


def sd(values) -> float:
    """Sample standard deviation (NaN for fewer than two values: one seed)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def finite_var(draws) -> float:
    """Variance of the finite draws (NaN for fewer than two)."""
    import numpy as np

    finite = draws[np.isfinite(draws)]
    return float(finite.var(ddof=1)) if len(finite) > 1 else float("nan")


# --------------------------------------------------------------------------- bounds and p-values

def tail_count(a: float, iters: int) -> int:
    """How many of ``iters`` ordered resamples may lie beyond a bound of tail probability
    ``a``: the largest k with (k + 1) / (iters + 1) <= a (the p-value convention below;
    -1: no bound exists at this tail with this many resamples)."""
    return int(math.floor(a * (iters + 1) * (1 + 1e-9))) - 1


def lower_bound(draws, a: float) -> float:
    """Lower bootstrap bound with tail ``a``: undefined resamples (NaN) count as -inf, so
    ``lower_bound(d, a) >= t`` exactly when ``share_below(d, t) <= a`` (-inf when ``a`` is
    below the smallest p-value the resamples can give, 1 / (iters + 1))."""
    import numpy as np

    ordered = np.sort(np.where(np.isnan(draws), -np.inf, draws))
    k = tail_count(a, len(ordered))
    return float(ordered[min(k, len(ordered) - 1)]) if k >= 0 else -math.inf


def upper_bound(draws, a: float) -> float:
    """Upper bootstrap bound with tail ``a`` (NaN counts as +inf): ``upper_bound(d, a) < t``
    exactly when ``share_at_or_above(d, t) <= a``."""
    import numpy as np

    ordered = np.sort(np.where(np.isnan(draws), np.inf, draws))
    k = tail_count(a, len(ordered))
    return float(ordered[max(len(ordered) - 1 - k, 0)]) if k >= 0 else math.inf


def interval(draws, level: float = INTERVAL) -> tuple[float, float]:
    """The two-sided percentile interval at ``level`` (descriptive: 95% by default)."""
    tail = (1 - level) / 2
    return lower_bound(draws, tail), upper_bound(draws, tail)


def p_value(beyond: int, iters: int) -> float:
    """(k + 1) / (B + 1): a bootstrap p-value is never 0 (Davison and Hinkley 1997, eq. 4.11;
    k of B resamples on the claim's wrong side)."""
    return (beyond + 1) / (iters + 1)


def share_below(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is at least ``threshold``": (k + 1) / (B + 1), k
    the resamples below it (undefined resamples count against the claim)."""
    import numpy as np

    return p_value(int(np.sum(np.isnan(draws) | (draws < threshold))), len(draws))


def share_at_or_above(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is below ``threshold``"."""
    import numpy as np

    return p_value(int(np.sum(np.isnan(draws) | (draws >= threshold))), len(draws))


def share_at_or_below(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is above ``threshold``": ``lower_bound(d, a) >
    t`` exactly when this is <= a."""
    import numpy as np

    return p_value(int(np.sum(np.isnan(draws) | (draws <= threshold))), len(draws))


# --------------------------------------------------------------------------- Holm

def holm(p_values: list[float], alpha: float) -> tuple[list[float], list[float], list[bool]]:
    """Holm's step-down procedure: adjusted p-values, the level each hypothesis was decided
    at, and whether it is rejected.

    Sorted p(1) <= ... <= p(m): H(r) is rejected while p(j) <= alpha / (m - j + 1) for every
    j <= r. A rejected H(r) was decided at alpha / (m - r + 1); every other hypothesis at the
    level where the procedure stopped, alpha / (m - s + 1) (s the first rank not rejected),
    which its p-value exceeds. So an interval at that level excludes the hypothesis exactly
    when Holm rejects it. (The adjusted p-values equal statsmodels'
    ``multipletests(method="holm")``, which gives no levels: tested against it.)"""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, levels, rejected = [1.0] * m, [alpha] * m, [False] * m
    running, stopped = 0.0, None
    for rank, i in enumerate(order, start=1):
        level = alpha / (m - rank + 1)
        running = max(running, min(1.0, (m - rank + 1) * p_values[i]))
        adjusted[i] = running
        if stopped is None and p_values[i] > level * (1 + 1e-9):
            stopped = level
        rejected[i] = stopped is None
        levels[i] = level if stopped is None else stopped
    return adjusted, levels, rejected


@dataclass(frozen=True)
class HolmTest:
    """One member of a Holm family: its p-value, Holm-adjusted p-value, the level it was
    decided at (confidence 1 - level) and whether Holm rejected its null hypothesis."""

    p_value: float
    p_holm: float
    level: float
    rejected: bool

    @property
    def confidence(self) -> float:
        return 1 - self.level


def holm_family(keys: list, p_values: list[float], alpha: float, bound_decides, what: str) -> list[HolmTest]:
    """Holm over a family: one :class:`HolmTest` per key. ``bound_decides(i, level)``
    decides member ``i`` from its bootstrap bound at its Holm level; it must agree with
    Holm's rejection (the bounds and p-values are exact duals), else AssertionError naming
    ``what`` and the key."""
    adjusted, levels, rejected = holm(p_values, alpha)
    out = []
    for i, (key, p, p_holm, level, reject) in enumerate(zip(keys, p_values, adjusted, levels, rejected,
                                                            strict=True)):
        if bool(bound_decides(i, level)) != reject:
            raise AssertionError(f"{key}: {what} disagrees with Holm ({p_holm})")
        out.append(HolmTest(p, p_holm, level, reject))
    return out
