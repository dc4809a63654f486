"""The distribution an estimate's bounds and p-values are read from: the question resample, and the seeds' t.

An estimate that averages recovery runs (a recovery fraction, a recovered accuracy, a
control gain) has two sources of error: which questions were asked (the cluster bootstrap's
draws, the runs fixed) and which seeds were trained (the runs' spread). A :class:`Spread`
holds the point estimate, the question draws and the seed components (variance, degrees of
freedom) and answers every bound and p-value from one distribution:

- no seed component (fewer than :data:`.settings.METHOD_SEEDS` runs, or a model that is not
  trained): the percentile bootstrap of the question draws (:mod:`.bootstrap`): the claim is
  about the trained adapter(s);
- with seed components: a Welch-Satterthwaite t interval, (estimate - value) / sd ~
  t(nu), sd^2 = var(question draws) + sum of the seed variances (s^2 / S of each averaged
  group, over the damage squared for a fraction), nu = sd^4 / sum(v_i^2 / df_i) with the
  question variance's df infinite (thousands of draws of hundreds of clusters) and each seed
  variance read at its 75% upper confidence bound for nu only (:func:`satterthwaite`). The
  seed term's df is S - 1 for S runs. The earlier construction (each draw + (s / sqrt(S)) T,
  T ~ t(S - 1)) convolved a t with the question draws: at Holm's small tails its quantile
  is the t's (21.9 at t(2), tail 0.05 / 48 / 2) whatever the seed variance's share, which
  made a claim with three seeds undecidable even when the seeds barely vary; Satterthwaite
  weighs the t by the seed variance's share of the total. The simulation in
  tests/test_seed_procedure.py checks the coverage of the whole procedure at S = 3, 5, 8.

Draws where the estimate is undefined (a fraction whose resample had no damage) count
against every claim, as in :mod:`.bootstrap`: their share ``u`` is added to both tails, so a
bound at tail a reads the t at a - u (no bound when a <= u). Bounds and p-values are exact
duals: ``lower(a) >= t`` exactly when ``share_below(t) <= a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from .bootstrap import INTERVAL, lower_bound, share_at_or_above, share_at_or_below, share_below, upper_bound


@dataclass(frozen=True)
class Spread:
    """Point estimate, question draws (runs fixed; NaN where undefined) and seed components
    ((variance, degrees of freedom), ... ; empty: claims about the trained runs). Its
    variances, degrees of freedom and t are computed once (Holm reads the bounds at several
    levels)."""

    point: float
    draws: object  # numpy array (iters,)
    seed_parts: tuple = ()

    @property
    def seeded(self) -> bool:
        """Whether a seed component enters (>= METHOD_SEEDS runs of some averaged group)."""
        return bool(self.seed_parts)

    @cached_property
    def question_var(self) -> float:
        from .bootstrap import finite_var

        return finite_var(self.draws)

    @property
    def seed_var(self) -> float:
        return float(sum(v for v, _ in self.seed_parts))

    @cached_property
    def sd(self) -> float:
        """The t interval's standard error: the question draws' variance plus the seed components'."""
        return math.sqrt(self.question_var + self.seed_var)

    @cached_property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom (inf without a seed component)."""
        return satterthwaite(self.question_var, self.seed_parts)

    @cached_property
    def undefined(self) -> float:
        """The share of draws where the estimate is undefined (they count against every claim)."""
        import numpy as np

        return float(np.mean(np.isnan(self.draws))) if len(self.draws) else 0.0

    @cached_property
    def _t(self):
        from scipy.stats import t

        return t(self.df)  # df inf: the normal

    def _beyond(self, value: float, above: bool) -> float:
        """The t's share above ``value`` (``above``) or below it, plus the undefined share."""
        if math.isnan(self.point):
            return 1.0
        if self.sd > 0:
            z = (value - self.point) / self.sd
        else:  # no spread at all: the point itself
            z = 0.0 if value == self.point else math.copysign(math.inf, value - self.point)
        return min(1.0, self.undefined + float(self._t.sf(z) if above else self._t.cdf(z)))

    def _bound(self, a: float, sign: int) -> float:
        """The t bound with tail ``a`` below (``sign`` -1) or above (+1) the point; none (-/+inf)
        when the undefined draws already take the whole tail."""
        left = a - self.undefined
        if math.isnan(self.point) or left <= 0:
            return sign * math.inf
        return self.point + sign * float(self._t.isf(left)) * self.sd

    # p-values against a threshold (the share of the distribution on the claim's wrong side)
    def share_below(self, value: float) -> float:
        return self._beyond(value, above=False) if self.seeded else share_below(self.draws, value)

    def share_at_or_above(self, value: float) -> float:
        return self._beyond(value, above=True) if self.seeded else share_at_or_above(self.draws, value)

    def share_at_or_below(self, value: float) -> float:
        # continuous: at or below is below
        return self._beyond(value, above=False) if self.seeded else share_at_or_below(self.draws, value)

    # bounds with tail a (one-sided)
    def lower(self, a: float) -> float:
        return self._bound(a, -1) if self.seeded else lower_bound(self.draws, a)

    def upper(self, a: float) -> float:
        return self._bound(a, +1) if self.seeded else upper_bound(self.draws, a)

    def interval(self, level: float = INTERVAL) -> tuple[float, float]:
        """The two-sided interval at ``level`` (95% by default: descriptive)."""
        tail = (1 - level) / 2
        return self.lower(tail), self.upper(tail)

    def minus(self, other: "Spread") -> "Spread":
        """The paired difference (same question draws; independent seeds)."""
        return Spread(self.point - other.point, self.draws - other.draws, self.seed_parts + other.seed_parts)


DF_UPPER = 0.75  # the seed variance's upper confidence level at which the degrees of freedom are read


def satterthwaite(question_var: float, seed_parts) -> float:
    """nu = (v_q + sum u_i)^2 / sum(u_i^2 / df_i), the question variance's df infinite, with
    each seed variance v_i taken at its :data:`DF_UPPER` upper confidence bound u_i = v_i df_i
    / chi2(1 - DF_UPPER, df_i); inf without a seed component (or with all seed variances 0).

    Why the upper bound: with plug-in variances the Welch-Satterthwaite interval is liberal
    when few seeds carry most of the variance (an s that came out small both narrows the
    interval and raises nu; 95% intervals covered 0.92 at S = 3 with the seeds at ten times
    the question variance, in simulation), and the upper bound lowers nu exactly then (0.95
    in the same simulation; tests/test_aggregate_decisions.py checks the whole procedure). The
    standard error itself uses the estimate, not the bound. The variances may be numpy arrays
    (one nu per element: the power simulation's studies)."""
    import numpy as np
    from scipy.stats import chi2

    parts = [(np.asarray(v, dtype=float) * df / chi2.ppf(1 - DF_UPPER, df), df) for v, df in seed_parts]
    if not parts:
        return math.inf
    total = question_var + sum(u for u, _ in parts)
    denominator = sum(u * u / df for u, df in parts)  # 0 only when every seed variance is 0
    with np.errstate(divide="ignore"):
        nu = np.where(denominator > 0, total * total / np.where(denominator > 0, denominator, 1.0), np.inf)
    return float(nu) if nu.ndim == 0 else nu
