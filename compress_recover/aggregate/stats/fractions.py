"""Recovery fractions: how much of the compression's damage a recovery wins back, with paired bootstrap draws.

F = (recovered - compressed - control gain) / (base - compressed), NaN (not infinite) where
compression did no damage (:func:`fraction`). Recovered is the mean over the recovery's
seeds. Two fractions per recovery (:func:`pair_draws`): the raw one (no control gain) and,
where the uncompressed model was recovered by the same recovery, the control-subtracted one
with the control gain (that run minus the base model) subtracted as estimated, never
clipped at 0 (clipping raises the gain where it is near 0 and biases F down). The verdict
decides "recovers" and "fails" on both (:mod:`.decisions`, intersection-union tests), so
neither claim leans on the control's sign.

Each estimate comes with its :class:`.spread.Spread`: the question draws, paired with the
base and compressed models through the shared question resample (the recovery's runs
fixed), and, with S >= :data:`.settings.METHOD_SEEDS` runs, the seed component s^2 / S
over the damage squared with S - 1 degrees of freedom (Welch-Satterthwaite across the
components); with fewer runs there is none and every interval is about the trained
adapter(s), not the method (``estimates["claim"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...runs import BASE
from .bootstrap import sd
from .methods import Methods
from .settings import METHOD_SEEDS
from .spread import Spread


def fraction(base, compressed, recovered, gain=0.0):
    """(recovered - compressed - gain) / (base - compressed); NaN where base - compressed <= 0."""
    import numpy as np

    base, compressed, recovered, gain = (np.asarray(x, dtype=float) for x in (base, compressed, recovered, gain))
    damage = base - compressed
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(damage > 0, (recovered - compressed - gain) / np.where(damage > 0, damage, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def seed_part(values, scale: float = 1.0) -> tuple:
    """The seed component of a mean over runs, ((s^2 / S x scale, S - 1),) with s the sample
    sd of the S per-run ``values``, when S >= :data:`.settings.METHOD_SEEDS`; () otherwise (a
    claim about the trained adapters, whose seed-to-seed spread is not estimated). ``scale``:
    1 / damage^2 for a fraction."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if len(values) < METHOD_SEEDS:
        return ()
    return (float(values.var(ddof=1)) / len(values) * scale, len(values) - 1),


def claim_scope(seeds: int) -> str:
    """What a decision on ``seeds`` runs is about: the method, or the trained adapter(s)."""
    return "method" if seeds >= METHOD_SEEDS else "trained adapter" + ("s" if seeds > 1 else "")


@dataclass
class PairDraws:
    """Point estimates and distributions (:class:`.spread.Spread`) of one recovery's fraction
    on one task: ``raw`` and ``controlled`` (None without a control run); ``accuracy`` the
    recovered model's accuracy (mean over its runs)."""

    estimates: dict
    raw: Spread
    controlled: Spread | None
    accuracy: Spread | None = None

    @property
    def has_control(self) -> bool:
        return self.controlled is not None

    @property
    def fractions(self) -> list[Spread]:
        """The fractions a claim reads (intersection-union): controlled and raw, or raw alone."""
        return [self.controlled, self.raw] if self.has_control else [self.raw]

    def used(self, controlled: bool | None = None) -> tuple[float, Spread]:
        """(point, spread) of one fraction: control-subtracted when it can (or as asked), else raw."""
        use = self.has_control if controlled is None else controlled
        spread = self.controlled if use else self.raw
        return spread.point, spread


def pair_draws(grid, draws: dict, comp: str, rec: str) -> PairDraws:
    """Recovery fraction of ``rec`` on ``comp``: point estimates (means over seeds; raw, and
    control-subtracted when the uncompressed model was recovered too, the gain not clipped)
    and their spreads: the shared question resample (the runs' mean per draw) and, with
    >= METHOD_SEEDS runs, the seed components (:func:`seed_part`; the control's too). Nothing is
    drawn here: the one random draw is the shared question resample."""
    base, compressed, recovered = grid.get(BASE, BASE), grid.get(comp, BASE), grid.get(comp, rec)
    control = grid.get(BASE, rec)
    b, c = draws[(BASE, BASE)][:, 0], draws[(comp, BASE)][:, 0]
    b0, c0, runs = base.accuracy, compressed.accuracy, recovered.run_accuracies
    inv_damage2 = 1 / (b0 - c0) ** 2 if b0 > c0 else float("nan")
    rq = draws[(comp, rec)].mean(axis=1)
    e = {"n": grid.n, "seeds": [s for s in recovered.seeds], "runs": list(recovered.runs),
         "claim": claim_scope(len(runs)), "base_acc": b0, "compressed_acc": c0, "recovered_acc": float(runs.mean()),
         "recovered_sd": sd(runs), "recovery_fraction": fraction(b0, c0, runs.mean()),
         "fraction_sd": sd(fraction(b0, c0, runs)), "control_acc": float("nan"), "control_sd": float("nan"),
         "control_gain": float("nan"), "control_seeds": [], "control_claim": "",
         "controlled_fraction": float("nan"), "controlled_sd": float("nan"),
         "facts": len(set(grid.question_facts)), **won_back(base, compressed, recovered)}
    own = seed_part(runs, inv_damage2)
    raw = Spread(e["recovery_fraction"], fraction(b, c, rq), own)
    accuracy = Spread(e["recovered_acc"], rq, seed_part(runs))
    if control is None:
        return PairDraws(e, raw, None, accuracy)
    ctrl = control.run_accuracies
    gain = float(ctrl.mean() - b0)
    # The gain as estimated, negative or positive: both claims read both fractions
    # (intersection-union tests), so neither leans on the control's sign.
    kq = draws[(BASE, rec)].mean(axis=1)
    e.update(control_acc=float(ctrl.mean()), control_sd=sd(ctrl), control_gain=gain,
             control_seeds=list(control.seeds), control_claim=claim_scope(len(ctrl)),
             controlled_fraction=fraction(b0, c0, runs.mean(), gain),
             controlled_sd=sd(fraction(b0, c0, runs, gain)))
    controlled = Spread(e["controlled_fraction"], fraction(b, c, rq, kq - b), own + seed_part(ctrl, inv_damage2))
    return PairDraws(e, raw, controlled, accuracy)


def won_back(base, compressed, recovered) -> dict:
    """What F does not show (descriptive): of the questions compression lost (base right,
    compressed wrong), the share the recovered model gets right (``won_back``, mean over its
    runs), beside the share it gets right of the questions neither the base nor the
    compressed model knew (``never_known_right``): what guessing, the answer prior and the
    method's own format give without knowledge, the rate a won-back share should be read
    against. F counts both kinds of gain."""
    b, c = base.correct[0] > 0.5, compressed.correct[0] > 0.5
    right = recovered.correct.mean(axis=0)
    lost, never = b & ~c, ~b & ~c
    share = (lambda mask: float(right[mask].mean()) if mask.any() else float("nan"))
    return {"won_back": share(lost), "lost_questions": int(lost.sum()), "never_known_right": share(never),
            "never_known": int(never.sum())}


def grid_pairs(grid, draws: dict) -> dict:
    """(compression, recovery) -> :class:`PairDraws` of every recovery of a compressed model."""
    return {(c, r): pair_draws(grid, draws, c, r) for c, r in grid.recovered()}


def fraction_rows(grid, pairs: dict, methods: Methods) -> list[dict]:
    """Rows of ``recovery_fraction.csv`` for one grid (95% intervals, no multiplicity)."""
    rows = []
    for (comp, rec), pair in pairs.items():
        e = pair.estimates
        method = methods.method(rec)
        low, high = pair.raw.interval()
        row = {"model": grid.model, "compression": comp, "recovery": rec, "method": method,
               "side": methods.sides.get(method, ""), "task": grid.task, "n": e["n"], "seeds": len(e["runs"]),
               **{k: e[k] for k in ("base_acc", "compressed_acc", "recovered_acc", "recovered_sd", "control_gain",
                                    "recovery_fraction", "fraction_sd")},
               "ci_low": low, "ci_high": high, "controlled_fraction": e["controlled_fraction"],
               "controlled_sd": e["controlled_sd"], "controlled_ci_low": float("nan"),
               "controlled_ci_high": float("nan")}
        if pair.has_control:
            row["controlled_ci_low"], row["controlled_ci_high"] = pair.controlled.interval()
        rows.append(row)
    return rows
