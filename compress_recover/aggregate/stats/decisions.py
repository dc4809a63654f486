"""The verdict's confirmatory decisions: damage per compression and each recovery against the threshold.

One Holm family at ``report.alpha`` over exactly the hypotheses the verdict's label reads
(:func:`confirmatory`, decided by :func:`.bootstrap.holm_family` on the pooled knowledge
task's test questions), m = compressions + recoveries of the two sides:

- damage (per model, compression): H0: damage >= min_damage, one-sided upper bound;
- recovery (per model, compression, recovery whose information comes from the compressed
  model and the leak-filtered text): two-sided against F = min_recovery_fraction. "recovers"
  when the lower bounds of both the control-subtracted and the raw fraction are >= the
  threshold, "fails" when the upper bounds of both are below it: intersection-union tests
  (p = the larger of the two one-sided p-values), so neither claim is the easier one for
  either sign of the control gain. An undecided one gets a power estimate from simulating
  the procedure (:func:`power_needed`).

Outside the family, descriptive (marginal 95%): a **reference** recovery, whose information
comes from the uncompressed model (a low-rank copy of the compression residual of the
uncompressed weights, a distilling objective's teacher logits; :attr:`.methods.Methods.references`): its own label, never one of
the sides; and non-inferiority of every input-side recovery against every parameter-side one.

Holm decides; the interval shown with a decision is at the Bonferroni level alpha / m (both
tails alpha / 2m), so the shown intervals of one family hold together with probability
>= 1 - alpha; Holm can decide a claim whose simultaneous interval still touches the threshold
(its p-value says so). A recovery group whose every run at the final budget failed to
train is not tried: it gets a ``failed`` :class:`Decision` outside the family
(:func:`with_failures`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ...failures import failure_text, seeds_text
from ...runs import BASE, FAILED, OK
from .bootstrap import HolmTest, holm_family, lower_bound, share_at_or_above, stable_seed, upper_bound
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
    # Where a reference method's information comes from (e.g. "the uncompressed weights"):
    # decided outside the family, never one of the sides; "" for a side's method.
    reference: str = ""
    interval_confidence: float = NAN  # of [ci_low, ci_high]: 1 - alpha / m (simultaneous), or 1 - alpha (marginal)

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
    won_back = _Estimate()  # share of the lost questions (base right, compressed wrong) it gets right
    lost_questions = _Estimate()
    never_known_right = _Estimate()  # share of the questions base and compressed both got wrong it gets right
    never_known = _Estimate()

    @property
    def partly(self) -> bool:
        """Fails, yet its simultaneous interval is above 0: it wins back some of the loss,
        less than the threshold."""
        return self.decision == "fails" and self.ci_low > 0

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
                "method": self.method, "side": self.side, "trained": self.trained, "reference": self.reference}
        if self.failed:
            row = {**head, "status": self.status, "seeds": self.seeds, "runs": self.runs,
                   "failed_seeds": self.failed_seeds, "failure": self.failure, "decision": self.decision,
                   "note": self.note, "family_size": self.family_size}
        else:
            t = self.test
            row = {**head, **self.estimates, "fraction_used": self.fraction_used, "fraction": self.fraction,
                   "threshold": self.threshold, "holm_level": t.level, "confidence": t.confidence,
                   "ci_low": self.ci_low, "ci_high": self.ci_high, "interval_confidence": self.interval_confidence,
                   "raw_ci_low": self.raw_ci[0],
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
                    trained=d.get("trained", True), reference=d.get("reference") or "",
                    failed_seeds=list(d.get("failed_seeds") or []),
                    failure=d.get("failure", ""), note=d.get("note", ""), family_size=d.get("family_size"),
                    margin_test=d.get("margin_test"), mcnemar=d.get("mcnemar"))
        if head["status"] == FAILED:
            return cls(**head, seeds=list(d.get("seeds", [])), runs=list(d.get("runs", [])))
        f, own = from_json_number, _own_keys()
        estimates = {k: f(v) for k, v in d.items() if k not in own}
        test = HolmTest(f(d["p_value"]), f(d["p_holm"]), f(d["holm_level"]), d["decision"] in ("recovers", "fails"))
        return cls(**head, estimates=estimates, fraction_used=d["fraction_used"], fraction=f(d["fraction"]),
                   threshold=f(d["threshold"]), test=test, ci_low=f(d["ci_low"]), ci_high=f(d["ci_high"]),
                   interval_confidence=f(d.get("interval_confidence")),
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
    recovery of ``family`` against every parameter-side one of the same compression
    (references on neither side)."""
    side = {key: None if methods.reference(key[2]) else methods.side(key[2]) for key in family}
    return [(m, c, i) + (p,) for (m, c, i) in family if side[(m, c, i)] == INPUT
            for (m2, c2, p) in family if (m2, c2) == (m, c) and side[(m2, c2, p)] == PARAMETERS]


def family_members(pooled: dict, methods: Methods) -> list[tuple]:
    """The key of every hypothesis of the one confirmatory family, its kind first, in the
    family's order: ("damage", model, compression) per compression and ("recovery", model,
    compression, recovery) per recovered model whose recovery is on a side (not a
    reference): exactly the claims the verdict's label reads. ``pooled``: the pooled grids
    with a base model. The one enumeration: :func:`verdict_family` sizes the bootstrap from
    it and :func:`confirmatory` checks its members against it."""
    damage = [("damage", m, c) for (m, _), g in pooled.items() for c in g.compressions()]
    return damage + [("recovery", *k) for k in recovered_keys(pooled) if not methods.reference(k[2])]


def recovered_keys(pooled: dict) -> list[tuple]:
    """(model, compression, recovery) of every recovered model of ``pooled``."""
    return [(m, c, r) for (m, _), g in pooled.items() for c, r in g.recovered()]


def verdict_family(grids: dict, settings: Settings, methods: Methods) -> tuple[dict, list, int]:
    """The pooled grids, every (model, compression, recovery) the verdict decides (the
    family's recoveries and the references) and the resamples its smallest Holm bound needs
    (:func:`.settings.bootstrap_size`): the family has m = len(:func:`family_members`)
    members, its smallest level is alpha / m, and a recovery's two-sided bound sits at half
    its level."""
    from .questions import ALL_KNOWLEDGE

    pooled = {k: g for k, g in grids.items() if k[1] == ALL_KNOWLEDGE and g.has_base}
    members = family_members(pooled, methods)
    recovered = recovered_keys(pooled)
    tail = settings.alpha / max(len(members), 1) / (2 if len(members) > len(pooled) else 1)
    return pooled, recovered, bootstrap_size(settings, tail)


@dataclass(frozen=True)
class Member:
    """One hypothesis of the confirmatory family: its key (its kind first), bootstrap p-value,
    and whether its bound at a given Holm level decides it."""

    key: tuple
    p_value: float
    decides: object  # level -> bool


def confirmatory(pooled: dict, draws: dict, pairs: dict, settings: Settings,
                 methods: Methods, facts_available: dict | None = None) -> tuple[dict, list, list]:
    """The damage and recovery decisions of ``pairs`` ((model, compression, recovery) ->
    :class:`.fractions.PairDraws` of the pooled task) in one Holm family at
    ``settings.alpha``, the references' decisions (marginal, outside it) and the descriptive
    non-inferiority rows: (damage per (model, compression), recovery :class:`Decision` s,
    non-inferiority rows). ``facts_available``: model -> the facts its tasks could ask (caps
    the power estimate's facts)."""
    damage = _damage_members(pooled, draws, settings)
    inside = {k: p for k, p in pairs.items() if not methods.reference(k[2])}
    recovery = _recovery_members(inside, settings, methods, facts_available or {})
    members = [m for group in (damage, recovery) for m, _ in group]
    if [m.key for m in members] != family_members(pooled, methods):
        raise AssertionError("the confirmatory family's members differ from family_members(), which sized its "
                             "bootstrap")
    tests = holm_family([m.key for m in members], [m.p_value for m in members], settings.alpha,
                        lambda i, level: members[i].decides(level), "confirmatory bound")
    size = len(members)
    i = len(damage)
    references = [finish(_marginal(member.p_value, settings.alpha), None) for member, finish in
                  _recovery_members({k: p for k, p in pairs.items() if k not in inside}, settings, methods, {})]
    decided = [finish(t, size) for (_, finish), t in zip(recovery, tests[i:], strict=True)]
    order = {k: n for n, k in enumerate(pairs)}
    return ({m.key[1:]: finish(t, size) for (m, finish), t in zip(damage, tests[:i], strict=True)},
            sorted(decided + references, key=lambda d: order[(d.model, d.compression, d.recovery)]),
            noninferiority(pairs, settings, methods))


def _marginal(p: float, alpha: float) -> HolmTest:
    """A descriptive test at the marginal level alpha (outside the family)."""
    return HolmTest(p, p, alpha, p <= alpha)


# --------------------------------------------------------------------------- damage

def _damage_members(grids: dict, draws: dict, settings: Settings) -> list[tuple[Member, object]]:
    """Per (model, compression) on the pooled task: damage = base - compressed accuracy,
    H0: damage >= min_damage; decided (no measurable loss) when Holm rejects it (its one-sided
    upper bound at its Holm level is below ``min_damage``)."""
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
    shown = settings.alpha / size  # the shown bounds: Bonferroni, simultaneous with the family's other intervals
    return Damage(base_acc=b, compressed_acc=c, damage=b - c, damage_upper=upper_bound(delta, shown),
                  damage_low=lower_bound(delta, shown), holm_level=t.level, confidence=1 - shown,
                  p_value=t.p_value, p_holm=t.p_holm, min_damage=settings.min_damage,
                  no_measurable_loss=t.rejected, n=grid.n,
                  lost_only=int((b_right & ~c_right).sum()), gained_only=int((~b_right & c_right).sum()),
                  family_size=size)


# --------------------------------------------------------------------------- recovery

def power_needed(spread, *, tau: float, facts: int, facts_available: int | None, runs: int, level: float,
                 power: float, seed: int = 0, reps: int = 4000) -> dict:
    """Facts (seeds fixed) and seeds (facts fixed) with which the procedure decides, with
    probability ``power``, a method whose true fraction is 0 (it "fails") and one whose true
    fraction is 0.8 (it "recovers"), at the two-sided Holm ``level`` (the family's smallest,
    alpha / m: what the member needs at worst), from simulating the procedure itself
    (:func:`simulated_power`): the fraction's question variance scales as facts / facts',
    the seed component (estimated with >= METHOD_SEEDS runs: s^2 per run over the damage
    squared) enters with its Welch-Satterthwaite t, and s itself is drawn (chi-square with
    S' - 1 df). Facts are capped at ``facts_available`` (the facts the tasks could ask; None:
    no cap): a design needing more says so (inf). With fewer than METHOD_SEEDS runs the seed
    variance is unknown: the facts needed are for these trained adapters, and no seed count
    is given."""
    import numpy as np

    out = {"alternatives": {"fails": 0.0, "recovers": 0.8}, "level": level, "target": power, "facts": facts,
           "facts_available": facts_available, "runs": runs, "questions_needed": None, "seeds_needed": None}
    v_q = spread.question_var
    if not math.isfinite(v_q) or math.isnan(spread.point) or facts < 1:
        out["note"] = "no estimate: the fraction is undefined"
        return out
    per_run = spread.seed_var * runs if spread.seeded else 0.0
    rng = np.random.default_rng(stable_seed(seed, "power"))
    cap = facts_available or 10 ** 7

    def chance(f_true: float, n_facts: int, seeds: int) -> float:
        return simulated_power(f_true, tau, v_q * facts / n_facts, per_run, seeds, level, rng, reps)

    for name, f_true in out["alternatives"].items():
        now = chance(f_true, facts, runs)
        need_facts = _smallest(lambda n: chance(f_true, n, runs) >= power, 1, cap)
        need_seeds = (_smallest(lambda s: chance(f_true, facts, s) >= power, max(runs, METHOD_SEEDS), 500)
                      if spread.seeded else None)
        out[name] = {"power_now": now, "facts_needed": need_facts, "seeds_needed": need_seeds}
    out["power"] = out["fails"]["power_now"]  # the headline: a method that wins back nothing, at this design
    out["questions_needed"] = out["fails"]["facts_needed"]  # the report's headline: a method that wins back nothing
    out["seeds_needed"] = out["fails"]["seeds_needed"]
    if not spread.seeded:
        out["note"] = (f"fewer than {METHOD_SEEDS} seeds: the seed-to-seed variance is not estimated (the facts "
                       "needed are for these trained adapters; a claim about the method needs "
                       f"{METHOD_SEEDS} or more seeds)")
    return out


def _smallest(ok, low: int, cap: int) -> float:
    """The smallest n in [low, cap] with ok(n) (ok monotone in n), by bisection to within 1%;
    inf when even ``cap`` is not enough."""
    if not ok(cap):
        return math.inf
    high = cap
    while high - low > max(1, low // 100):
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high if not ok(low) else low


def simulated_power(f_true: float, tau: float, v_q: float, per_run: float, seeds: int, level: float, rng,
                    reps: int) -> float:
    """The share of ``reps`` simulated studies whose decision at two-sided ``level`` is the
    right one for a true fraction ``f_true`` ("fails" below ``tau``, "recovers" at or above):
    F-hat = f_true + N(0, v_q) + N(0, per_run / seeds); with >= METHOD_SEEDS seeds and a seed
    variance, s^2 ~ per_run chi2(S - 1) / (S - 1) and the bound is F-hat -/+ t(nu, 1 - level
    / 2) sqrt(v_q + s^2 / S), nu Welch-Satterthwaite as :func:`.spread.satterthwaite`; otherwise the normal
    bound on v_q alone (a claim about the trained runs: their seed draw is part of the truth)."""
    import numpy as np
    from scipy.stats import norm, t

    from .spread import satterthwaite

    estimate = f_true + rng.normal(0, math.sqrt(v_q), reps)
    if seeds >= METHOD_SEEDS and per_run > 0:
        estimate += rng.normal(0, math.sqrt(per_run / seeds), reps)
        s2 = per_run * rng.chisquare(seeds - 1, reps) / (seeds - 1)
        var = v_q + s2 / seeds
        q = t.isf(level / 2, satterthwaite(v_q, ((s2 / seeds, seeds - 1),)))
    else:
        var = np.full(reps, v_q)
        q = norm.isf(level / 2)
    half = q * np.sqrt(var)
    right = (estimate - half >= tau) if f_true >= tau else (estimate + half < tau)
    return float(right.mean())


def _recovery_members(pairs: dict, settings: Settings, methods: Methods,
                      facts_available: dict) -> list[tuple[Member, object]]:
    """Per (model, compression, recovery): intersection-union tests on both fractions (the
    raw one alone without a control run): p_recovers = the larger of their p-values against
    "at least the threshold", p_fails = the larger against "below it", p = 2 min(p_recovers,
    p_fails); at Holm level a, recovers when both lower bounds at a/2 are >= the threshold,
    fails when both upper bounds at a/2 are below it (exact duals)."""
    tau = settings.min_recovery_fraction
    out = []
    for key, pair in pairs.items():
        both = pair.fractions
        p_recovers = max(d.share_below(tau) for d in both)  # undefined draws count against both claims
        p_fails = max(d.share_at_or_above(tau) for d in both)
        p = min(1.0, 2 * min(p_recovers, p_fails))
        member = Member(("recovery", *key), p,
                        lambda level, both=both: _decided(both, level / 2, tau) != "undecided")
        out.append((member, lambda t, size, key=key, pair=pair: _recovery(key, pair, t, size, settings, methods,
                                                                           facts_available.get(key[0]))))
    return out


def _decided(fractions: list, tail: float, tau: float) -> str:
    """The intersection-union decision on ``fractions`` (:attr:`.fractions.PairDraws.fractions`)
    with one-sided tail ``tail``: recovers when every lower bound is >= ``tau``, fails when
    every upper bound is below it."""
    if min(d.lower(tail) for d in fractions) >= tau:
        return "recovers"
    return "fails" if max(d.upper(tail) for d in fractions) < tau else "undecided"


def _recovery(key: tuple, pair, t: HolmTest, size: int | None, settings: Settings, methods: Methods,
              facts_available: int | None) -> Decision:
    """The decision of one recovery from its test ``t``: a family member's (``size`` m; its
    interval at the Bonferroni level alpha / m) or a reference's (``size`` None; marginal)."""
    model, comp, rec = key
    tau = settings.min_recovery_fraction
    at = t.level / 2  # the decision's tail
    shown = (settings.alpha / size if size else settings.alpha) / 2  # the interval's tail
    e = pair.estimates
    both = pair.fractions
    decision = _decided(both, at, tau)
    raw_ci = (pair.raw.lower(shown), pair.raw.upper(shown))
    controlled_ci = (pair.controlled.lower(shown), pair.controlled.upper(shown)) if pair.has_control else (NAN, NAN)
    low = min(raw_ci[0], controlled_ci[0]) if pair.has_control else raw_ci[0]
    high = max(raw_ci[1], controlled_ci[1]) if pair.has_control else raw_ci[1]
    if not pair.has_control:
        used, point = "raw (no control run)", e["recovery_fraction"]
    elif decision == "undecided":
        used, point = "both (the lower bound binds 'recovers', the upper 'fails')", e["controlled_fraction"]
    else:
        # the binding fraction: the lower lower bound for "recovers", the higher upper bound for "fails"
        used_raw = (pair.raw.lower(at) < pair.controlled.lower(at) if decision == "recovers"
                    else pair.raw.upper(at) > pair.controlled.upper(at))
        used, point = ((f"raw ({'lower' if decision == 'recovers' else 'higher'} than controlled)",
                        e["recovery_fraction"]) if used_raw else ("controlled", e["controlled_fraction"]))
    power = None
    if decision == "undecided" and size:
        binding = max(both, key=lambda d: d.point if not math.isnan(d.point) else -math.inf)
        power = power_needed(binding, tau=tau, facts=e.get("facts", e["n"]), facts_available=facts_available,
                             runs=len(e["runs"]), level=settings.alpha / size, power=settings.power)
    return Decision(model, comp, rec, methods.method(rec), methods.registered_side(rec), decision,
                    trained=methods.is_trained(rec), estimates=e,
                    fraction_used=used, fraction=point,
                    threshold=tau, test=t, ci_low=low, ci_high=high, raw_ci=raw_ci, controlled_ci=controlled_ci,
                    family_size=size, power=power, reference=methods.reference(rec),
                    interval_confidence=1 - 2 * shown)


# --------------------------------------------------------------------------- non-inferiority

def noninferiority(pairs: dict, settings: Settings, methods: Methods) -> list[dict]:
    """Descriptive (marginal, outside the family: it changes no label): every input-side
    recovery I against every parameter-side one P of a compression, the difference F_I - F_P
    on the shared question draws (each method's seed component), its one-sided lower bound
    at confidence 1 - alpha; "non-inferior" when above -margin. Control-subtracted fractions
    when both have a control run, else raw for both."""
    margin, alpha = settings.noninferiority_margin, settings.alpha
    rows = []
    for model, comp, i_rec, p_rec in noninferiority_pairs(list(pairs), methods):
        i_pair, p_pair = pairs[(model, comp, i_rec)], pairs[(model, comp, p_rec)]
        controlled = i_pair.has_control and p_pair.has_control
        diff = i_pair.used(controlled)[1].minus(p_pair.used(controlled)[1])
        low, high = diff.lower(alpha), diff.upper(alpha)
        rows.append({"model": model, "compression": comp, "input": i_rec, "parameters": p_rec,
                     "fractions": "controlled" if controlled else "raw", "difference": diff.point,
                     "lower_bound": low, "upper_bound": high, "holm_level": NAN, "confidence": 1 - alpha,
                     "margin": margin, "p_value": diff.share_at_or_below(-margin), "p_holm": NAN,
                     "family_size": NAN,
                     "result": "non-inferior" if low > -margin and not math.isnan(diff.point) else "not shown"})
    return rows


def with_failures(decisions: list[Decision], groups: dict, damage: dict, methods: Methods) -> list[Decision]:
    """``decisions`` with the runs that failed to train at the final budget (``groups``,
    :func:`compress_recover.failures.failed_groups`): a group decided on its other seeds
    notes the failed ones (and those of its control run); a group whose every run failed,
    on a compression with a verdict, gets a ``failed`` decision of its own, outside the family."""
    for d in decisions:
        runs = groups.get((d.model, d.compression, d.recovery), [])
        control = groups.get((d.model, BASE, d.recovery), [])
        notes = [f"{d.recovery}: {seeds_text(runs)} {_what(runs)} ({failure_text(runs)}); decided on the other "
                 "seed(s)"] if runs else []
        if control:
            notes.append(f"{d.recovery}: control run {seeds_text(control)} on the uncompressed model {_what(control)} "
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
        verb = "excluded" if _what(runs) == EXCLUDED else "failed"
        out.append(Decision(model, comp, rec, methods.method(rec), methods.side(rec) or "", f"{verb} ({why})",
                            trained=methods.is_trained(rec),
                            status=FAILED, seeds=[r["seed"] for r in runs], runs=[r["run"] for r in runs],
                            failed_seeds=[r["seed"] for r in runs], failure=why, note=f"{rec} {_what(runs)}: {why}",
                            reference=methods.reference(rec)))
    return out


EXCLUDED = "was excluded from the decisions"


def _what(runs: list[dict]) -> str:
    """What happened to ``runs``: they failed to train, or (every one ``excluded``: an
    undertrained prompt pool's, :func:`compress_recover.aggregate.analysis.undertrained`) they
    trained and are shown but were excluded from the decisions."""
    return EXCLUDED if runs and all(r.get("excluded") for r in runs) else "failed to train"
