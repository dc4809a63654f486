"""Recovery fractions: how much of the compression's damage a recovery wins back, with paired bootstrap draws.

F = (recovered - compressed - control gain) / (base - compressed), NaN (not infinite) where
compression did no damage (:func:`fraction`). Recovered is the mean over the recovery's
seeds; the control gain is the uncompressed model recovered by the same recovery minus the
base model, subtracted only when positive (:func:`pair_draws`). Each estimate comes with
its bootstrap draws: two-level (seeds, then questions), questions only and seeds only (the
last two feed the power estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runs import BASE
from .bootstrap import interval, sd, seed_means, seed_resample, stable_seed
from .methods import Methods


def fraction(base, compressed, recovered, gain=0.0):
    """(recovered - compressed - gain) / (base - compressed); NaN where base - compressed <= 0."""
    import numpy as np

    base, compressed, recovered, gain = (np.asarray(x, dtype=float) for x in (base, compressed, recovered, gain))
    damage = base - compressed
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(damage > 0, (recovered - compressed - gain) / np.where(damage > 0, damage, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


@dataclass
class PairDraws:
    """Point estimates and bootstrap draws of one recovery's fraction on one task."""

    estimates: dict
    raw: dict  # "two_level" / "questions" / "seeds" -> draws
    controlled: dict | None
    accuracy: "numpy.ndarray | None" = None  # noqa: F821  two-level draws of the recovered accuracy

    @property
    def has_control(self) -> bool:
        return self.controlled is not None

    def used(self, controlled: bool | None = None) -> tuple[float, dict]:
        """(point, draws) of the fraction the verdict uses: control-subtracted when it can."""
        use = self.has_control if controlled is None else controlled
        e = self.estimates
        return (e["controlled_fraction"], self.controlled) if use else (e["recovery_fraction"], self.raw)


def pair_draws(grid, draws: dict, comp: str, rec: str, seed: int) -> PairDraws:
    """Recovery fraction of ``rec`` on ``comp``: point estimates (means over seeds, control
    gain subtracted when the uncompressed model was recovered too) and bootstrap draws:
    two-level (seeds, then questions), questions only (seeds fixed) and seeds only
    (questions fixed), the last two for the power estimate."""
    import numpy as np

    rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, comp, rec, "seeds"))
    base, compressed, recovered = grid.get(BASE, BASE), grid.get(comp, BASE), grid.get(comp, rec)
    control = grid.get(BASE, rec)
    b, c = draws[(BASE, BASE)][:, 0], draws[(comp, BASE)][:, 0]
    b0, c0, runs = base.accuracy, compressed.accuracy, recovered.run_accuracies
    iters = len(b)
    r = {"two_level": seed_means(draws[(comp, rec)], rng), "questions": draws[(comp, rec)].mean(axis=1),
         "seeds": seed_resample(runs, iters, rng)}
    e = {"n": grid.n, "seeds": [s for s in recovered.seeds], "runs": list(recovered.runs), "base_acc": b0,
         "compressed_acc": c0, "recovered_acc": float(runs.mean()), "recovered_sd": sd(runs),
         "recovery_fraction": fraction(b0, c0, runs.mean()), "fraction_sd": sd(fraction(b0, c0, runs)),
         "control_acc": float("nan"), "control_sd": float("nan"), "control_gain": float("nan"),
         "control_seeds": [], "controlled_fraction": float("nan"), "controlled_sd": float("nan")}
    raw = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), v) for k, v in r.items()}
    if control is None:
        return PairDraws(e, raw, None, r["two_level"])
    ctrl = control.run_accuracies
    gain = float(ctrl.mean() - b0)
    # Only a gain is subtracted (clipped at 0, draw by draw): a method is never credited on the
    # compressed model for what it breaks on the uncompressed one.
    g = {"two_level": seed_means(draws[(BASE, rec)], rng) - b, "questions": draws[(BASE, rec)].mean(axis=1) - b,
         "seeds": seed_resample(ctrl, iters, rng) - b0}
    g = {k: np.maximum(v, 0.0) for k, v in g.items()}
    e.update(control_acc=float(ctrl.mean()), control_sd=sd(ctrl), control_gain=gain,
             control_seeds=list(control.seeds), controlled_fraction=fraction(b0, c0, runs.mean(), max(gain, 0.0)),
             controlled_sd=sd(fraction(b0, c0, runs, max(gain, 0.0))))
    controlled = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), r[k], g[k]) for k in r}
    return PairDraws(e, raw, controlled, r["two_level"])


def grid_pairs(grid, draws: dict, seed: int) -> dict:
    """(compression, recovery) -> :class:`PairDraws` of every recovery of a compressed model."""
    return {(c, r): pair_draws(grid, draws, c, r, seed) for c, r in grid.recovered()}


def fraction_rows(grid, pairs: dict, methods: Methods) -> list[dict]:
    """Rows of ``recovery_fraction.csv`` for one grid (95% intervals, no multiplicity)."""
    rows = []
    for (comp, rec), pair in pairs.items():
        e = pair.estimates
        method = methods.method(rec)
        low, high = interval(pair.raw["two_level"])
        row = {"model": grid.model, "compression": comp, "recovery": rec, "method": method,
               "side": methods.sides.get(method, ""), "task": grid.task, "n": e["n"], "seeds": len(e["runs"]),
               **{k: e[k] for k in ("base_acc", "compressed_acc", "recovered_acc", "recovered_sd", "control_gain",
                                    "recovery_fraction", "fraction_sd")},
               "ci_low": low, "ci_high": high, "controlled_fraction": e["controlled_fraction"],
               "controlled_sd": e["controlled_sd"], "controlled_ci_low": float("nan"),
               "controlled_ci_high": float("nan")}
        if pair.has_control:
            row["controlled_ci_low"], row["controlled_ci_high"] = interval(pair.controlled["two_level"])
        rows.append(row)
    return rows
