"""The verdict's confirmatory decisions: damage per compression, each recovery against the threshold, non-inferiority.

One Holm family at ``report.alpha`` over every confirmatory hypothesis of the run
(:func:`confirmatory`, decided by :func:`.bootstrap.holm_family` on the pooled knowledge
task's test questions), m = compressions + recoveries + non-inferiority pairs:

- damage (per model, compression): H0: damage >= min_damage, one-sided upper bound;
- recovery (per model, compression, recovery): two-sided against F = min_recovery_fraction.
  "recovers" when the lower bounds of both the control-subtracted and the raw fraction are
  >= the threshold (an intersection-union test: p = max of their one-sided p-values);
  "fails" when the upper bound of the raw fraction is below it. The control gain is never
  clipped, and each claim is conservative whatever its sign. An undecided one gets a power
  estimate at the pre-specified effect (:func:`power_needed`);
- non-inferiority: every input-side recovery against every parameter-side one of the same
  compression, H0: F_I - F_P <= -noninferiority_margin.

Every bound is read at its Holm level and agrees exactly with its bootstrap p-value.
A recovery group whose every run at the final budget failed to train is not tried: it gets
a ``failed`` :class:`Decision` outside the family (:func:`with_failures`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ...failures import failure_text, seeds_text
from ...runs import BASE, FAILED, OK
from .bootstrap import (HolmTest, holm_family, lower_bound, share_at_or_above, share_at_or_below, share_below,
                        upper_bound)
from .methods import INPUT, PARAMETERS, Methods
from .settings import METHOD_SEEDS, Settings, bootstrap_size

NAN = float("nan")


def from_json_number(v):
    """A float field read back from verdict.json: null was NaN, "inf"/"-inf" an infinity."""
    if v is None:
        return NAN
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    return v


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
    family_size: int = 1

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Damage":
        """The inverse of :meth:`as_dict` (extra keys, e.g. a verdict's evidence's, ignored)."""
        return cls(**{f.name: from_json_number(d[f.name]) if f.type == "float" else d[f.name]
                      for f in fields(cls) if f.name in d})


class _Estimate:
    """One of a decision's point estimates (:func:`.fractions.pair_draws`) read as an attribute:
    ``decision.recovered_acc`` (NaN, or no seeds, for a failed group, which has none)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.estimates.get(self.name, [] if self.name.endswith("seeds") else NAN)


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
    fraction_used: str = ""  # the fraction that decided (or, undecided, which end each claim reads)
    fraction: float = NAN
    threshold: float = NAN
    test: HolmTest | None = None
    ci_low: float = NAN
    ci_high: float = NAN
    raw_ci: tuple = (NAN, NAN)
    controlled_ci: tuple = (NAN, NAN)
    family_size: int | None = None
    power: dict | None = None
    seeds: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    failed_seeds: list = field(default_factory=list)
    failure: str = ""
    note: str = ""
    margin_test: list | None = None
    mcnemar: list | None = None
    trained: bool = True  # False: a training-free method (the report's 2 x 2 view)

    n = _Estimate()  # questions
    base_acc = _Estimate()
    compressed_acc = _Estimate()
    recovered_acc = _Estimate()  # mean over seeds
    recovered_sd = _Estimate()
    recovery_fraction = _Estimate()  # raw F
    fraction_sd = _Estimate()
    control_gain = _Estimate()
    control_seeds = _Estimate()
    controlled_fraction = _Estimate()
    controlled_sd = _Estimate()

    @property
    def run_seeds(self) -> list:
        """The seeds of its runs: those the estimates rest on, or a failed group's."""
        return self.seeds if self.failed else self.estimates.get("seeds", [])

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def confidence(self) -> float:
        return self.test.confidence

    @property
    def n_seeds(self) -> int:
        """The runs the decision rests on (its seeds; 0 for a record without estimates)."""
        return len(self.estimates.get("runs") or self.seeds)

    @property
    def claim(self) -> str:
        """"method" with >= METHOD_SEEDS seeds, else "trained adapter(s)" (a training-free
        method's: "training-free run(s)"): what the decision is about."""
        if self.n_seeds >= METHOD_SEEDS:
            return "method"
        return ("trained adapter" if self.trained else "training-free run") + ("s" if self.n_seeds > 1 else "")

    def as_dict(self) -> dict:
        """The decision as verdict.json's evidence writes it (and decisions.csv flattens it)."""
        head = {"model": self.model, "compression": self.compression, "recovery": self.recovery,
                "method": self.method, "side": self.side, "trained": self.trained}
        if self.failed:
            row = {**head, "status": self.status, "seeds": self.seeds, "runs": self.runs,
                   "failed_seeds": self.failed_seeds, "failure": self.failure, "decision": self.decision,
                   "note": self.note, "family_size": self.family_size}
        else:
            t = self.test
            row = {**head, **self.estimates, "fraction_used": self.fraction_used, "fraction": self.fraction,
                   "threshold": self.threshold, "holm_level": t.level, "confidence": t.confidence,
                   "ci_low": self.ci_low, "ci_high": self.ci_high, "raw_ci_low": self.raw_ci[0],
                   "raw_ci_high": self.raw_ci[1], "controlled_ci_low": self.controlled_ci[0],
                   "controlled_ci_high": self.controlled_ci[1], "claim": self.claim, "p_value": t.p_value,
                   "p_holm": t.p_holm,
                   "decision": self.decision, "family_size": self.family_size}
            if self.power is not None:
                row["power"] = self.power
            row.update(status=self.status, failed_seeds=self.failed_seeds, failure=self.failure, note=self.note)
        if self.margin_test is not None:
            row["margin_test"] = self.margin_test
        if self.mcnemar is not None:
            row["mcnemar"] = self.mcnemar
        return row

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        """The inverse of :meth:`as_dict`, as read back from verdict.json (null: NaN)."""
        head = dict(model=d["model"], compression=d["compression"], recovery=d["recovery"], method=d["method"],
                    side=d["side"], decision=d["decision"], status=d.get("status", OK),
                    trained=d.get("trained", True), failed_seeds=list(d.get("failed_seeds") or []),
                    failure=d.get("failure", ""), note=d.get("note", ""), family_size=d.get("family_size"),
                    margin_test=d.get("margin_test"), mcnemar=d.get("mcnemar"))
        if head["status"] == FAILED:
            return cls(**head, seeds=list(d.get("seeds", [])), runs=list(d.get("runs", [])))
        f, own = from_json_number, _own_keys()
        estimates = {k: f(v) for k, v in d.items() if k not in own}
        test = HolmTest(f(d["p_value"]), f(d["p_holm"]), f(d["holm_level"]), d["decision"] in ("recovers", "fails"))
        return cls(**head, estimates=estimates, fraction_used=d["fraction_used"], fraction=f(d["fraction"]),
                   threshold=f(d["threshold"]), test=test, ci_low=f(d["ci_low"]), ci_high=f(d["ci_high"]),
                   raw_ci=(f(d["raw_ci_low"]), f(d["raw_ci_high"])),
                   controlled_ci=(f(d["controlled_ci_low"]), f(d["controlled_ci_high"])), power=d.get("power"))

    def csv_row(self) -> dict:
        """One row of decisions.csv: lists joined with '|', the power estimate as its own columns."""
        renamed = {"seeds": "seed_values", "control_seeds": "control_seed_values"}  # the seeds, not counts
        row = {renamed.get(k, k): "|".join(map(str, v)) if isinstance(v, list) else v
               for k, v in self.as_dict().items() if not isinstance(v, dict) and k not in ("margin_test", "mcnemar")}
        power = self.power or {}
        row["questions_needed"], row["seeds_needed"] = power.get("questions_needed"), power.get("seeds_needed")
        return row


# --------------------------------------------------------------------------- the family

def _own_keys() -> set[str]:
    """The keys of :meth:`Decision.as_dict` that are not the fraction's estimates: its fields
    (a field added later is its own too) and the test's and bounds' flattened names; a
    non-failed decision's seeds and runs are its estimates'."""
    flattened = {"holm_level", "confidence", "p_value", "p_holm", "raw_ci_low", "raw_ci_high", "controlled_ci_low",
                 "controlled_ci_high"}
    return ({f.name for f in fields(Decision)} - {"estimates", "test", "raw_ci", "controlled_ci", "seeds", "runs"}
            | flattened)


def noninferiority_pairs(family: list, methods: Methods) -> list[tuple]:
    """(model, compression, input recovery, parameter recovery) for every input-side
    recovery of ``family`` against every parameter-side one of the same compression."""
    side = {key: methods.side(key[2]) for key in family}
    return [(m, c, i, p) for (m, c, i) in family if side[(m, c, i)] == INPUT
            for (m2, c2, p) in family if (m2, c2) == (m, c) and side[(m2, c2, p)] == PARAMETERS]


def family_members(pooled: dict, methods: Methods) -> list[tuple]:
    """The key of every hypothesis of the one confirmatory family, its kind first, in the
    family's order: ("damage", model, compression) per compression, ("recovery", model,
    compression, recovery) per recovered model, ("non-inferiority", model, compression, input,
    parameters) per pair (:func:`noninferiority_pairs`). ``pooled``: the pooled grids with a
    base model. The one enumeration: :func:`verdict_family` sizes the bootstrap from it and
    :func:`confirmatory` checks its members against it."""
    damage = [("damage", m, c) for (m, _), g in pooled.items() for c in g.compressions()]
    recovered = [(m, c, r) for (m, _), g in pooled.items() for c, r in g.recovered()]
    return (damage + [("recovery", *k) for k in recovered]
            + [("non-inferiority", *k) for k in noninferiority_pairs(recovered, methods)])


def verdict_family(grids: dict, settings: Settings, methods: Methods) -> tuple[dict, list, int]:
    """The pooled grids, the verdict's family of (model, compression, recovery) and the
    resamples its smallest Holm bound needs (:func:`.settings.bootstrap_size`): the family
    has m = len(:func:`family_members`) members, its smallest level is alpha / m, and a
    recovery's two-sided bound sits at half its level."""
    from .questions import ALL_KNOWLEDGE

    pooled = {k: g for k, g in grids.items() if k[1] == ALL_KNOWLEDGE and g.has_base}
    members = family_members(pooled, methods)
    family = [key[1:] for key in members if key[0] == "recovery"]
    tail = settings.alpha / max(len(members), 1) / (2 if family else 1)
    return pooled, family, bootstrap_size(settings, tail)


@dataclass(frozen=True)
class Member:
    """One hypothesis of the confirmatory family: its key (its kind first), bootstrap p-value,
    and whether its bound at a given Holm level decides it."""

    key: tuple
    p_value: float
    decides: object  # level -> bool


def confirmatory(pooled: dict, draws: dict, pairs: dict, settings: Settings,
                 methods: Methods) -> tuple[dict, list, list]:
    """The damage, recovery and non-inferiority decisions of ``pairs`` ((model, compression,
    recovery) -> :class:`.fractions.PairDraws` of the pooled task) in one Holm family at
    ``settings.alpha``: (damage per (model, compression), recovery :class:`Decision` s,
    non-inferiority rows)."""
    damage = _damage_members(pooled, draws, settings)
    recovery = _recovery_members(pairs, settings, methods)
    ni = _noninferiority_members(pairs, settings, methods)
    members = [m for group in (damage, recovery, ni) for m, _ in group]
    if [m.key for m in members] != family_members(pooled, methods):
        raise AssertionError("the confirmatory family's members differ from family_members(), which sized its "
                             "bootstrap")
    tests = holm_family([m.key for m in members], [m.p_value for m in members], settings.alpha,
                        lambda i, level: members[i].decides(level), "confirmatory bound")
    size = len(members)
    i, j = len(damage), len(damage) + len(recovery)
    return ({m.key[1:]: finish(t, size) for (m, finish), t in zip(damage, tests[:i], strict=True)},
            [finish(t, size) for (_, finish), t in zip(recovery, tests[i:j], strict=True)],
            [finish(t, size) for (_, finish), t in zip(ni, tests[j:], strict=True)])


# --------------------------------------------------------------------------- damage

def _damage_members(grids: dict, draws: dict, settings: Settings) -> list[tuple[Member, object]]:
    """Per (model, compression) on the pooled task: damage = base - compressed accuracy,
    H0: damage >= min_damage; decided (no measurable loss) when its one-sided upper bound at
    its Holm level is below ``min_damage``."""
    out = []
    for (model, task), grid in grids.items():
        for comp in grid.compressions():
            d = draws[(model, task)]
            delta = d[(BASE, BASE)][:, 0] - d[(comp, BASE)][:, 0]
            member = Member(("damage", model, comp), share_at_or_above(delta, settings.min_damage),
                            lambda level, delta=delta: upper_bound(delta, level) < settings.min_damage)
            out.append((member, lambda t, size, grid=grid, comp=comp, delta=delta:
                        _damage(grid, comp, delta, t, size, settings)))
    return out


def _damage(grid, comp: str, delta, t: HolmTest, size: int, settings: Settings) -> Damage:
    base, compressed = grid.get(BASE, BASE), grid.get(comp, BASE)
    b, c = base.accuracy, compressed.accuracy
    b_right, c_right = base.correct[0] > 0.5, compressed.correct[0] > 0.5
    upper = upper_bound(delta, t.level)
    return Damage(base_acc=b, compressed_acc=c, damage=b - c, damage_upper=upper,
                  damage_low=lower_bound(delta, t.level), holm_level=t.level, confidence=t.confidence,
                  p_value=t.p_value, p_holm=t.p_holm, min_damage=settings.min_damage,
                  no_measurable_loss=bool(upper < settings.min_damage), n=grid.n,
                  lost_only=int((b_right & ~c_right).sum()), gained_only=int((~b_right & c_right).sum()),
                  family_size=size)


# --------------------------------------------------------------------------- recovery

def power_needed(effect: float, v_questions: float, v_seeds: float, n: int, seeds: int,
                 level: float, power: float) -> dict:
    """Questions (seeds fixed) and seeds (questions fixed) needed to decide, with probability
    ``power``, a fraction at distance ``effect`` from the threshold (pre-specified, not the
    observed effect: the verdict passes effect = min_recovery_fraction, a method that wins
    back nothing, F = 0, against the threshold).

    Normal approximation: the estimate's variance is v_q n / n' + v_s S / S' (v_q: from the
    question resample, runs fixed; v_s = s^2 / S: the t-based seed component, estimated only
    with >= METHOD_SEEDS seeds); deciding two-sided at ``level`` with probability ``power``
    needs effect >= (z(1 - level/2) + z(power)) sd, so with d = effect / (z(1 - level/2) +
    z(power)): n' = n v_q / (d^2 - v_s), S' = S v_s / (d^2 - v_q), and ``scale_both``
    k = (v_q + v_s) / d^2 (k times the questions and k times the seeds)."""
    from scipy.stats import norm

    out = {"effect": effect, "alternative": "F = 0 (a method that wins back nothing)", "questions_needed": None,
           "seeds_needed": None, "scale_both": None, "level": level, "power": power}
    seeds_known = seeds >= METHOD_SEEDS and math.isfinite(v_seeds)
    v_s = v_seeds if seeds_known else 0.0
    if not math.isfinite(v_questions) or effect <= 0:
        out["note"] = "no estimate: the fraction is undefined"
        return out
    d2 = (effect / (norm.ppf(1 - level / 2) + norm.ppf(power))) ** 2
    out["questions_needed"] = math.ceil(n * v_questions / (d2 - v_s)) if d2 > v_s else math.inf
    if seeds_known and v_s > 0:
        out["seeds_needed"] = math.ceil(seeds * v_s / (d2 - v_questions)) if d2 > v_questions else math.inf
        out["scale_both"] = math.ceil((v_questions + v_s) / d2 * 10) / 10  # k x questions and k x seeds
    else:
        out["note"] = (f"fewer than {METHOD_SEEDS} seeds: the seed-to-seed variance is not estimated "
                       "(questions_needed is for these trained adapters)")
    return out


def _recovery_members(pairs: dict, settings: Settings, methods: Methods) -> list[tuple[Member, object]]:
    """Per (model, compression, recovery): p = 2 min(p_recovers, p_fails), p_recovers = max
    over the controlled and raw fraction of the share of draws below the threshold, p_fails =
    the share of raw draws at or above it; at Holm level a, recovers when min(lower bounds at
    a/2) >= threshold, fails when the raw upper bound at a/2 < threshold (exact duals)."""
    tau = settings.min_recovery_fraction
    out = []
    for key, pair in pairs.items():
        raw = pair.raw["two_level"]
        both = [pair.controlled["two_level"], raw] if pair.has_control else [raw]
        p_recovers = max(share_below(d, tau) for d in both)  # undefined draws count against both claims
        p = min(1.0, 2 * min(p_recovers, share_at_or_above(raw, tau)))
        member = Member(("recovery", *key), p, lambda level, both=both, raw=raw: _decided(
            min(lower_bound(d, level / 2) for d in both), upper_bound(raw, level / 2), tau) != "undecided")
        out.append((member, lambda t, size, key=key, pair=pair: _recovery(key, pair, t, size, settings, methods)))
    return out


def _decided(low: float, high: float, tau: float) -> str:
    return "recovers" if low >= tau else "fails" if high < tau else "undecided"


def _recovery(key: tuple, pair, t: HolmTest, size: int, settings: Settings, methods: Methods) -> Decision:
    model, comp, rec = key
    tau, a = settings.min_recovery_fraction, t.level / 2
    e = pair.estimates
    raw = pair.raw["two_level"]
    raw_ci = (lower_bound(raw, a), upper_bound(raw, a))
    controlled_ci = ((lower_bound(pair.controlled["two_level"], a), upper_bound(pair.controlled["two_level"], a))
                     if pair.has_control else (NAN, NAN))
    low, high = (min(raw_ci[0], controlled_ci[0]) if pair.has_control else raw_ci[0]), raw_ci[1]
    decision = _decided(low, high, tau)
    if not pair.has_control:
        used, point = "raw (no control run)", e["recovery_fraction"]
    elif decision == "fails":
        used, point = "raw", e["recovery_fraction"]
    elif decision == "recovers" and raw_ci[0] < controlled_ci[0]:
        used, point = "raw (lower than controlled)", e["recovery_fraction"]
    elif decision == "recovers":
        used, point = "controlled", e["controlled_fraction"]
    else:
        used, point = "controlled (recovers) / raw (fails)", e["controlled_fraction"]
    power = None
    if decision == "undecided":
        v_questions, v_seeds = pair.variances(controlled=False)  # "fails", the side F = 0 tests, reads raw
        if math.isnan(e["recovery_fraction"]):
            v_questions = NAN  # no damage, no fraction: nothing to size
        power = power_needed(tau, v_questions, v_seeds, e["n"], len(e["runs"]), settings.alpha / size,
                             settings.power)
    return Decision(model, comp, rec, methods.method(rec), methods.registered_side(rec), decision,
                    trained=methods.is_trained(rec), estimates=e,
                    fraction_used=used, fraction=point,
                    threshold=tau, test=t, ci_low=low, ci_high=high, raw_ci=raw_ci, controlled_ci=controlled_ci,
                    family_size=size, power=power)


# --------------------------------------------------------------------------- non-inferiority

def _noninferiority_members(pairs: dict, settings: Settings, methods: Methods) -> list[tuple[Member, object]]:
    """Every input-side recovery I vs every parameter-side one P of a compression: H0:
    F_I - F_P <= -margin on paired draws (same questions); non-inferior when the lower bound
    at the Holm level > -margin. Control-subtracted fractions when both have a control run,
    else raw for both."""
    import numpy as np

    margin = settings.noninferiority_margin
    out = []
    for model, comp, i_rec, p_rec in noninferiority_pairs(list(pairs), methods):
        i_pair, p_pair = pairs[(model, comp, i_rec)], pairs[(model, comp, p_rec)]
        controlled = i_pair.has_control and p_pair.has_control
        (fi, di), (fp, dp) = i_pair.used(controlled), p_pair.used(controlled)
        diff = di["two_level"] - dp["two_level"]
        key = (model, comp, i_rec, p_rec)
        member = Member(("non-inferiority", *key), share_at_or_below(diff, -margin),
                        lambda level, diff=diff: lower_bound(diff, level) > -margin)

        def finish(t, size, key=key, point=fi - fp, diff=diff, controlled=controlled):
            low, high = lower_bound(diff, t.level), upper_bound(diff, t.level)
            return {"model": key[0], "compression": key[1], "input": key[2], "parameters": key[3],
                    "fractions": "controlled" if controlled else "raw", "difference": point,
                    "lower_bound": low, "upper_bound": high, "holm_level": t.level, "confidence": t.confidence,
                    "margin": margin, "p_value": t.p_value, "p_holm": t.p_holm, "family_size": size,
                    "result": "non-inferior" if low > -margin and not np.isnan(point) else "not shown"}
        out.append((member, finish))
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
                            trained=methods.is_trained(rec),
                            status=FAILED, seeds=[r["seed"] for r in runs], runs=[r["run"] for r in runs],
                            failed_seeds=[r["seed"] for r in runs], failure=why, note=f"{rec} failed to train: {why}"))
    return out
