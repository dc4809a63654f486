"""The decisions the verdict rests on: damage per compression, each recovery against the threshold, non-inferiority.

Three Holm families, each decided by :func:`.bootstrap.holm_family` on the pooled
knowledge task's test questions:

- damage (:func:`damage_decisions`): per (model, compression), H0: damage >= min_damage,
  one-sided upper bound at the Holm level over the compressions;
- recovery (:func:`recovery_decisions`): per (model, compression, recovery), two-sided
  against F = min_recovery_fraction; recovers / fails / undecided, with a power estimate
  for the undecided;
- non-inferiority (:func:`noninferiority`): every input-side recovery against every
  parameter-side one of the same compression.

A recovery group whose every run at the final budget failed to train is not tried: it
gets a ``failed`` :class:`Decision` outside the family (:func:`with_failures`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..failures import failure_text, seeds_text
from ..runs import BASE, FAILED, OK
from .bootstrap import (HolmTest, finite_var, holm_family, lower_bound, share_at_or_above, share_at_or_below,
                        share_below, upper_bound)
from .methods import INPUT, PARAMETERS, Methods
from .settings import Settings, bootstrap_size

NAN = float("nan")


@dataclass(frozen=True)
class Damage:
    """What compression cost one model on the pooled test questions, and whether it matters."""

    base_acc: float
    compressed_acc: float
    damage: float
    damage_upper: float
    damage_low: float
    holm_level: float
    confidence: float
    p_value: float
    p_holm: float
    min_damage: float
    no_measurable_loss: bool
    n: int
    lost_only: int
    gained_only: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Decision:
    """One recovery group on one compressed model: ``decision`` recovers / fails / undecided
    (``status`` ok), or ``failed (<why>)`` when every run failed to train (``status``
    failed: no estimate, no test). ``estimates``: the fraction's point estimates
    (:func:`.fractions.pair_draws`); ``margin_test`` and ``mcnemar``: the paired tests the
    verdict shows beside it (set by :func:`.verdict.verdicts`)."""

    model: str
    compression: str
    recovery: str
    method: str
    side: str
    decision: str
    status: str = OK
    estimates: dict = field(default_factory=dict)
    fraction_used: str = ""
    fraction: float = NAN
    threshold: float = NAN
    test: HolmTest | None = None
    ci_low: float = NAN
    ci_high: float = NAN
    family_size: int | None = None
    power: dict | None = None
    seeds: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    failed_seeds: list = field(default_factory=list)
    failure: str = ""
    note: str = ""
    margin_test: list | None = None
    mcnemar: list | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def confidence(self) -> float:
        return self.test.confidence

    def as_dict(self) -> dict:
        """The decision as verdict.json's evidence writes it (and decisions.csv flattens it)."""
        head = {"model": self.model, "compression": self.compression, "recovery": self.recovery,
                "method": self.method, "side": self.side}
        if self.failed:
            row = {**head, "status": self.status, "seeds": self.seeds, "runs": self.runs,
                   "failed_seeds": self.failed_seeds, "failure": self.failure, "decision": self.decision,
                   "note": self.note, "family_size": self.family_size}
        else:
            t = self.test
            row = {**head, **self.estimates, "fraction_used": self.fraction_used, "fraction": self.fraction,
                   "threshold": self.threshold, "holm_level": t.level, "confidence": t.confidence,
                   "ci_low": self.ci_low, "ci_high": self.ci_high, "p_value": t.p_value, "p_holm": t.p_holm,
                   "decision": self.decision, "family_size": self.family_size}
            if self.power is not None:
                row["power"] = self.power
            row.update(status=self.status, failed_seeds=self.failed_seeds, failure=self.failure, note=self.note)
        if self.margin_test is not None:
            row["margin_test"] = self.margin_test
        if self.mcnemar is not None:
            row["mcnemar"] = self.mcnemar
        return row

    def csv_row(self) -> dict:
        """One row of decisions.csv: lists joined with '|', the power estimate as its own columns."""
        renamed = {"seeds": "seed_values", "control_seeds": "control_seed_values"}  # the seeds, not counts
        row = {renamed.get(k, k): "|".join(map(str, v)) if isinstance(v, list) else v
               for k, v in self.as_dict().items() if not isinstance(v, dict) and k not in ("margin_test", "mcnemar")}
        power = self.power or {}
        row["questions_needed"], row["seeds_needed"] = power.get("questions_needed"), power.get("seeds_needed")
        return row


# --------------------------------------------------------------------------- the family

def verdict_family(grids: dict, settings: Settings, methods: Methods) -> tuple[dict, list, int]:
    """The pooled grids, the verdict's family of (model, compression, recovery) and the
    resamples its smallest Holm bound needs (:func:`.settings.bootstrap_size`)."""
    from .questions import ALL_KNOWLEDGE

    pooled = {k: g for k, g in grids.items() if k[1] == ALL_KNOWLEDGE and g.has_base}
    family = [(m, c, r) for (m, _), g in pooled.items() for c, r in g.recovered()]
    side = {key: methods.side(key[2]) for key in family}
    n_ni = sum(1 for a in family for b in family if a[:2] == b[:2] and (side[a], side[b]) == (INPUT, PARAMETERS))
    n_comp = sum(len(g.compressions()) for g in pooled.values()) or 1
    tail = min(settings.alpha / (2 * max(len(family), 1)), settings.alpha / n_comp, settings.alpha / max(n_ni, 1))
    return pooled, family, bootstrap_size(settings, tail)


# --------------------------------------------------------------------------- damage

def damage_decisions(grids: dict, draws: dict, settings: Settings) -> dict[tuple[str, str], Damage]:
    """Per (model, compression) on the pooled task: damage = base - compressed accuracy,
    its one-sided upper bound at the Holm level over the compressions, and whether that is
    below ``min_damage`` (no measurable loss)."""
    keys, deltas = [], []
    for (model, task), grid in grids.items():
        for comp in grid.compressions():
            keys.append((model, comp))
            d = draws[(model, task)]
            deltas.append((grid, d[(BASE, BASE)][:, 0] - d[(comp, BASE)][:, 0]))
    tests = holm_family(keys, [share_at_or_above(delta, settings.min_damage) for _, delta in deltas],
                        settings.alpha, lambda i, level: upper_bound(deltas[i][1], level) < settings.min_damage,
                        "damage bound")
    out = {}
    for key, (grid, delta), t in zip(keys, deltas, tests, strict=True):
        base, compressed = grid.get(BASE, BASE), grid.get(key[1], BASE)
        b, c = base.accuracy, compressed.accuracy
        b_right, c_right = base.correct[0] > 0.5, compressed.correct[0] > 0.5
        upper = upper_bound(delta, t.level)
        out[key] = Damage(base_acc=b, compressed_acc=c, damage=b - c, damage_upper=upper,
                          damage_low=lower_bound(delta, t.level), holm_level=t.level, confidence=t.confidence,
                          p_value=t.p_value, p_holm=t.p_holm, min_damage=settings.min_damage,
                          no_measurable_loss=bool(upper < settings.min_damage), n=grid.n,
                          lost_only=int((b_right & ~c_right).sum()), gained_only=int((~b_right & c_right).sum()))
    return out


# --------------------------------------------------------------------------- recovery

def power_needed(point: float, tau: float, v_questions: float, v_seeds: float, n: int, seeds: int,
                 level: float, power: float) -> dict:
    """Questions (seeds fixed) and seeds (questions fixed) needed to decide at ``power``.

    Normal approximation: the estimate's variance is v_q * n / n' + v_s * S / S' (v_q, v_s:
    bootstrap variances from resampling only questions, only seeds); deciding against the
    threshold two-sided at ``level`` with probability ``power`` needs
    |F - tau| >= (z(1 - level/2) + z(power)) * sd, so n' = n * v_q / (d^2 - v_s) and
    S' = S * v_s / (d^2 - v_q) with d = |F - tau| / (z(1 - level/2) + z(power)), and
    ``scale_both`` k = (v_q + v_s) / d^2: k times the questions and k times the seeds."""
    from scipy.stats import norm

    out = {"questions_needed": None, "seeds_needed": None, "scale_both": None, "level": level, "power": power}
    if not all(math.isfinite(x) for x in (point, v_questions, v_seeds)) or point == tau:
        out["note"] = "no estimate: the fraction is undefined or sits on the threshold"
        return out
    d2 = ((point - tau) / (norm.ppf(1 - level / 2) + norm.ppf(power))) ** 2
    out["questions_needed"] = math.ceil(n * v_questions / (d2 - v_seeds)) if d2 > v_seeds else math.inf
    if seeds > 1 and v_seeds > 0:
        out["seeds_needed"] = math.ceil(seeds * v_seeds / (d2 - v_questions)) if d2 > v_questions else math.inf
        out["scale_both"] = math.ceil((v_questions + v_seeds) / d2 * 10) / 10  # k x questions and k x seeds
    else:
        out["note"] = "one seed: the seed-to-seed variance is not estimated (questions_needed assumes none)"
    return out


def recovery_decisions(pairs: dict, settings: Settings, methods: Methods) -> list[Decision]:
    """Holm over every (model, compression, recovery) on the pooled task: each tested
    two-sided against F = min_recovery_fraction (p = 2 min(share below, share at or above));
    its interval is shown at 1 - alpha_i, alpha_i its Holm level; it recovers when the
    interval's lower end >= the threshold, fails when its upper end < it."""
    tau = settings.min_recovery_fraction
    keys = list(pairs)

    def bounds(key, level: float) -> tuple[float, float]:
        d = pairs[key].used()[1]["two_level"]
        return lower_bound(d, level / 2), upper_bound(d, level / 2)

    def decided(low: float, high: float) -> str:
        return "recovers" if low >= tau else "fails" if high < tau else "undecided"

    p_values = []
    for key in keys:
        draws = pairs[key].used()[1]["two_level"]  # undefined resamples count against both claims
        p_values.append(min(1.0, 2 * min(share_below(draws, tau), share_at_or_above(draws, tau))))
    tests = holm_family(keys, p_values, settings.alpha,
                        lambda i, level: decided(*bounds(keys[i], level)) != "undecided", "interval decision")
    out = []
    for key, t in zip(keys, tests, strict=True):
        model, comp, rec = key
        pair = pairs[key]
        point, d = pair.used()
        low, high = bounds(key, t.level)
        decision = decided(low, high)
        e = pair.estimates
        power = None
        if decision == "undecided":
            power = power_needed(point, tau, finite_var(d["questions"]), finite_var(d["seeds"]), e["n"],
                                 len(e["runs"]), settings.alpha / len(keys), settings.power)
        out.append(Decision(model, comp, rec, methods.method(rec), methods.registered_side(rec), decision,
                            estimates=e, fraction_used="controlled" if pair.has_control else "raw (no control run)",
                            fraction=point, threshold=tau, test=t, ci_low=low, ci_high=high,
                            family_size=len(keys), power=power))
    return out


def with_failures(decisions: list[Decision], groups: dict, damage: dict, methods: Methods) -> list[Decision]:
    """``decisions`` with the runs that failed to train at the final budget (``groups``,
    :func:`compress_recover.failures.failed_groups`): a group decided on its other seeds
    notes the failed ones (and those of its control run); a group whose every run failed,
    on a compression with a verdict, gets a ``failed`` decision of its own, outside the family."""
    for d in decisions:
        runs = groups.get((d.model, d.compression, d.recovery), [])
        control = groups.get((d.model, BASE, d.recovery), [])
        notes = [f"{d.recovery}: {seeds_text(runs)} failed to train ({failure_text(runs)}); decided on the other "
                 "seed(s)"] if runs else []
        if control:
            notes.append(f"{d.recovery}: control run {seeds_text(control)} on the uncompressed model failed to train "
                         f"({failure_text(control)}); its control gain rests on the other seed(s), if any")
        d.failed_seeds = [r["seed"] for r in runs]
        d.failure = failure_text(runs) if runs else ""
        d.note = "; ".join(notes)
    decided = {(d.model, d.compression, d.recovery) for d in decisions}
    out = list(decisions)
    for (model, comp, rec), runs in groups.items():
        if comp == BASE or (model, comp, rec) in decided or (model, comp) not in damage:
            continue
        why = failure_text(runs)
        out.append(Decision(model, comp, rec, methods.method(rec), methods.side(rec) or "", f"failed ({why})",
                            status=FAILED, seeds=[r["seed"] for r in runs], runs=[r["run"] for r in runs],
                            failed_seeds=[r["seed"] for r in runs], failure=why, note=f"{rec} failed to train: {why}"))
    return out


# --------------------------------------------------------------------------- non-inferiority

def noninferiority(pairs: dict, settings: Settings, methods: Methods) -> list[dict]:
    """Per (model, compression): every input-side recovery I vs every parameter-side one P,
    one-sided test of H0: F_I - F_P <= -margin on paired bootstrap draws (same questions),
    Holm over all such pairs; non-inferior when the lower bound at the Holm level > -margin.
    Control-subtracted fractions when both have a control run, else raw for both."""
    import numpy as np

    side = {key: methods.side(key[2]) for key in pairs}
    tests = []
    for (model, comp, i_rec), i_pair in pairs.items():
        if side[(model, comp, i_rec)] != INPUT:
            continue
        for (m2, c2, p_rec), p_pair in pairs.items():
            if (m2, c2) != (model, comp) or side[(m2, c2, p_rec)] != PARAMETERS:
                continue
            controlled = i_pair.has_control and p_pair.has_control
            (fi, di), (fp, dp) = i_pair.used(controlled), p_pair.used(controlled)
            diff = di["two_level"] - dp["two_level"]
            tests.append(((model, comp, i_rec, p_rec), fi - fp, diff, controlled))
    margin = settings.noninferiority_margin
    holm_tests = holm_family([key for key, *_ in tests], [share_at_or_below(diff, -margin) for _, _, diff, _ in tests],
                             settings.alpha, lambda i, level: lower_bound(tests[i][2], level) > -margin,
                             "non-inferiority bound")
    out = []
    for (key, point, diff, controlled), t in zip(tests, holm_tests, strict=True):
        low, high = lower_bound(diff, t.level), upper_bound(diff, t.level)
        out.append({"model": key[0], "compression": key[1], "input": key[2], "parameters": key[3],
                    "fractions": "controlled" if controlled else "raw", "difference": point,
                    "lower_bound": low, "upper_bound": high, "holm_level": t.level, "confidence": t.confidence,
                    "margin": margin, "p_value": t.p_value, "p_holm": t.p_holm,
                    "result": "non-inferior" if low > -margin and not np.isnan(point) else "not shown"})
    return out
