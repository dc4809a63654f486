"""Recovery fractions: how much of the compression's damage a recovery wins back, with paired bootstrap draws.

F = (recovered - compressed - control gain) / (base - compressed), NaN (not infinite) where
compression did no damage (:func:`fraction`). Recovered is the mean over the recovery's
seeds. Two fractions per recovery (:func:`pair_draws`): the raw one (no control gain) and,
where the uncompressed model was recovered by the same recovery, the control-subtracted one
with the control gain (that run minus the base model) subtracted as estimated, never
clipped at 0 (clipping raises the gain where it is near 0 and biases F down). The verdict
decides "recovers" on both and "fails" on the raw one (:mod:`.decisions`), so neither claim
leans on the control's sign.

Each estimate comes with its draws, paired with the base and compressed models through the
shared question resample: "questions" (the recovery's runs fixed), "seeds" (questions
fixed) and "two_level" (both). The seed component is t-based, not a resample of a few
values: with S >= :data:`.settings.METHOD_SEEDS` runs, each draw adds (s / sqrt(S)) T,
T ~ t(S - 1), s the sd of the runs' accuracies; with fewer runs it is 0 and every interval
is about the trained adapter(s), not the method (``estimates["claim"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...runs import BASE
from .bootstrap import finite_var, interval, sd, stable_seed
from .methods import Methods
from .settings import METHOD_SEEDS


def fraction(base, compressed, recovered, gain=0.0):
    """(recovered - compressed - gain) / (base - compressed); NaN where base - compressed <= 0."""
    import numpy as np

    base, compressed, recovered, gain = (np.asarray(x, dtype=float) for x in (base, compressed, recovered, gain))
    damage = base - compressed
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(damage > 0, (recovered - compressed - gain) / np.where(damage > 0, damage, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def seed_component(values, iters: int, rng) -> tuple["numpy.ndarray", float]:  # noqa: F821
    """The seed component of a mean over runs: ``iters`` draws of (s / sqrt(S)) T with T ~
    t(S - 1) (s: sample sd of the S per-run ``values``) and its variance s^2 / S, when
    S >= :data:`.settings.METHOD_SEEDS`; zeros and 0 otherwise (a claim about the trained
    adapters, whose seed-to-seed spread is not estimated)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if len(values) < METHOD_SEEDS:
        return np.zeros(iters), 0.0
    s = float(values.std(ddof=1))
    return s / np.sqrt(len(values)) * rng.standard_t(len(values) - 1, size=iters), s * s / len(values)


def claim_scope(seeds: int) -> str:
    """What a decision on ``seeds`` runs is about: the method, or the trained adapter(s)."""
    return "method" if seeds >= METHOD_SEEDS else "trained adapter" + ("s" if seeds > 1 else "")


@dataclass
class PairDraws:
    """Point estimates and bootstrap draws of one recovery's fraction on one task: ``raw`` and
    ``controlled`` (None without a control run) map "two_level" / "questions" / "seeds" to
    draws; ``seed_var`` ("raw", "controlled") the seed component's variance of each fraction
    (0 with fewer than METHOD_SEEDS runs)."""

    estimates: dict
    raw: dict
    controlled: dict | None
    accuracy: "numpy.ndarray | None" = None  # noqa: F821  two-level draws of the recovered accuracy
    seed_var: dict | None = None

    @property
    def has_control(self) -> bool:
        return self.controlled is not None

    def used(self, controlled: bool | None = None) -> tuple[float, dict]:
        """(point, draws) of one fraction: control-subtracted when it can (or as asked), else raw."""
        use = self.has_control if controlled is None else controlled
        e = self.estimates
        return (e["controlled_fraction"], self.controlled) if use else (e["recovery_fraction"], self.raw)

    def variances(self, controlled: bool = False) -> tuple[float, float]:
        """(questions, seeds) variance of a fraction: the question draws' variance (runs fixed)
        and the seed component's s^2 / S over the damage squared (0 below METHOD_SEEDS runs)."""
        name = "controlled" if controlled else "raw"
        draws = self.controlled if controlled else self.raw
        return finite_var(draws["questions"]), (self.seed_var or {}).get(name, float("nan"))


def pair_draws(grid, draws: dict, comp: str, rec: str, seed: int) -> PairDraws:
    """Recovery fraction of ``rec`` on ``comp``: point estimates (means over seeds; raw, and
    control-subtracted when the uncompressed model was recovered too, the gain not clipped)
    and draws: "questions" (runs fixed, the shared question resample), "seeds" (questions
    fixed, the t-based seed component) and "two_level" (their sum on the accuracy scale)."""
    import numpy as np

    rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, comp, rec, "seeds"))
    base, compressed, recovered = grid.get(BASE, BASE), grid.get(comp, BASE), grid.get(comp, rec)
    control = grid.get(BASE, rec)
    b, c = draws[(BASE, BASE)][:, 0], draws[(comp, BASE)][:, 0]
    b0, c0, runs = base.accuracy, compressed.accuracy, recovered.run_accuracies
    iters = len(b)
    damage2 = (b0 - c0) ** 2 if b0 > c0 else float("nan")
    rq = draws[(comp, rec)].mean(axis=1)
    er, vr = seed_component(runs, iters, rng)
    r = {"two_level": rq + er, "questions": rq, "seeds": runs.mean() + er}
    e = {"n": grid.n, "seeds": [s for s in recovered.seeds], "runs": list(recovered.runs),
         "claim": claim_scope(len(runs)), "base_acc": b0, "compressed_acc": c0, "recovered_acc": float(runs.mean()),
         "recovered_sd": sd(runs), "recovery_fraction": fraction(b0, c0, runs.mean()),
         "fraction_sd": sd(fraction(b0, c0, runs)), "control_acc": float("nan"), "control_sd": float("nan"),
         "control_gain": float("nan"), "control_seeds": [], "control_claim": "",
         "controlled_fraction": float("nan"), "controlled_sd": float("nan")}
    raw = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), v) for k, v in r.items()}
    seed_var = {"raw": vr / damage2, "controlled": float("nan")}
    if control is None:
        return PairDraws(e, raw, None, r["two_level"], seed_var)
    ctrl = control.run_accuracies
    gain = float(ctrl.mean() - b0)
    # The gain as estimated, negative or positive: "recovers" needs the raw fraction too (no
    # credit for what a method breaks on the uncompressed model), "fails" is decided on the raw one.
    kq = draws[(BASE, rec)].mean(axis=1)
    ek, vk = seed_component(ctrl, iters, rng)
    g = {"two_level": kq + ek - b, "questions": kq - b, "seeds": ctrl.mean() + ek - b0}
    e.update(control_acc=float(ctrl.mean()), control_sd=sd(ctrl), control_gain=gain,
             control_seeds=list(control.seeds), control_claim=claim_scope(len(ctrl)),
             controlled_fraction=fraction(b0, c0, runs.mean(), gain),
             controlled_sd=sd(fraction(b0, c0, runs, gain)))
    seed_var["controlled"] = (vr + vk) / damage2
    controlled = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), r[k], g[k]) for k in r}
    return PairDraws(e, raw, controlled, r["two_level"], seed_var)


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
