"""The verdict per compressed model, and its rule in words: pure functions over :class:`Damage` and :class:`Decision`.

The verdict names what was observed, the first that applies (:data:`VERDICTS`): no
measurable loss; recoverable from the input side (an input-side method recovers);
recoverable only with new parameters (a parameter-side method recovers and every input-side
one fails); not recovered at this budget (every method fails); inconclusive. The paper's two
conjectures (knowledge displaced or forgotten) are explanations the rule discusses, not
outcomes: the design cannot identify "forgotten". With fewer than
:data:`.settings.METHOD_SEEDS` seeds the reason says the claim is about the trained
adapter(s). The rule's full text is :func:`verdict_rule` (written into verdict.json and shown
by the report); to change the rule, change :func:`decide` and :func:`verdict_rule` here,
nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .budget import budget_steps, final_budget
from .decisions import Damage, Decision, from_json_number
from .methods import INPUT, PARAMETERS, Methods
from .questions import ALL_KNOWLEDGE
from .settings import METHOD_SEEDS, Settings

NO_LOSS = "no measurable loss"
INPUT_SIDE = "recoverable from the input side"
NEW_PARAMETERS = "recoverable only with new parameters"
PARTLY = "partly recovered at this budget"
NOT_RECOVERED = "not recovered at this budget"
INCONCLUSIVE = "inconclusive"
VERDICTS = (NO_LOSS, INPUT_SIDE, NEW_PARAMETERS, PARTLY, NOT_RECOVERED, INCONCLUSIVE)
# The label of the references (methods whose information is the uncompressed model's), beside the verdict
FROM_UNCOMPRESSED = "recoverable from the uncompressed model"


@dataclass
class Verdict:
    """The verdict on one (model, compression), with the evidence it rests on."""

    model: str
    compression: str
    verdict: str
    reason: str
    damage: Damage
    methods: list[Decision]
    noninferiority: list[dict] = field(default_factory=list)
    reference: str = ""  # the references' label and evidence in words ("" without a reference method)

    def as_dict(self) -> dict:
        return {"model": self.model, "compression": self.compression, "verdict": self.verdict, "reason": self.reason,
                "reference": self.reference, "evidence": {**self.damage.as_dict(), "methods": [m.as_dict() for m in self.methods],
                             "noninferiority": self.noninferiority}}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """The inverse of :meth:`as_dict`, as read back from verdict.json (null: NaN)."""
        e = d["evidence"]
        return cls(d["model"], d["compression"], d["verdict"], d["reason"], Damage.from_dict(e),
                   [Decision.from_dict(m) for m in e.get("methods", [])],
                   [{k: from_json_number(v) for k, v in t.items()} for t in e.get("noninferiority", [])],
                   d.get("reference", ""))


def verdict_rule(methods: Methods, settings: Settings | None = None, budget: dict | None = None) -> str:
    """The verdict's rule in words, with its thresholds and the methods of each side."""
    s = settings or Settings()
    final = final_budget(budget)
    tokens = f" ({final['steps']} steps x {final['batch_size']} x {final['seq_len']} tokens)" if final else ""
    curve = ("; the intermediate checkpoints of the budget curve (steps "
             f"{', '.join(map(str, budget_steps(budget)[:-1]))}) are described, never decided on"
             if len(budget_steps(budget)) > 1 else "")
    k = METHOD_SEEDS
    refs = [f"{group}: {where}" for group, where in sorted(methods.references.items())]
    return (
        "Per model and compression setting, on the pooled test questions of every knowledge task (held-out tasks "
        "included; the dev questions, if any, serve choices of recipe and budget and enter no decision), every "
        f"model scored on the same questions, with the runs at the final budget{tokens}{curve}. 'Base' is the "
        "uncompressed model at its stated base precision; damage = base accuracy - compressed accuracy. "
        "The compressed model is ONE draw of the compression (its calibration sample, and the machine's kernels, "
        "decide its rounding): every claim is about this compressed checkpoint, not the compression setting. "
        "Two recovery fractions per method: raw F = (recovered - compressed) / (base - compressed), recovered the "
        "mean over the method's seeds; control-subtracted F_c = (recovered - compressed - control gain) / (base - "
        "compressed), control gain = (the uncompressed model recovered by the same method, mean over its seeds) - "
        "base, as estimated, never clipped at 0; a method without that control run has the raw F only. "
        "Uncertainty: clusters of facts and right answers are resampled with replacement, one resample shared by "
        f"every model of the grid (paired). With fewer than {k} seeds nothing else enters and a decision is about "
        f"the trained adapter(s), not the method. With S >= {k} seeds the interval is a t interval: (estimate - "
        "value) / sd ~ t(nu), sd^2 = the resample's variance + s^2 / S (s the sd of the S runs' accuracies, over "
        "the damage squared for a fraction; the control's too), nu by Welch-Satterthwaite (S - 1 degrees of "
        "freedom for a seed term): the decision is about the method. "
        f"Error budget: ONE Holm family at alpha = {s.alpha} (config report.alpha) over exactly the claims the "
        "verdict's label reads, m hypotheses: each compression's no-loss test and each (model, compression, "
        "recovery method of the two sides) test against min_recovery_fraction. p-values are (k + 1) / (B + 1) "
        "for B resamples (never 0), or the t's tail. Holm decides; the interval shown with a decision is at the "
        "Bonferroni level (tails alpha / 2m), so the family's shown intervals hold together with probability >= "
        "1 - alpha (Holm may decide a claim whose simultaneous interval still touches the threshold; its "
        "adjusted p says so). Everything else (references, non-inferiority, per-task and 95% intervals, budget "
        "curve, format control, margins, McNemar tests, flips, pool ablation, collateral damage, anatomy) is "
        "descriptive. "
        "A method RECOVERS when the lower bounds at alpha_i / 2 of both F_c and the raw F are >= "
        f"min_recovery_fraction ({s.min_recovery_fraction}); it FAILS when the upper bounds at alpha_i / 2 of both "
        "are below it: intersection-union tests (p_recovers, p_fails = the larger of the two fractions' "
        "p-values), so neither claim is the easier one whatever the sign of the control gain; p = 2 x "
        "min(p_recovers, p_fails); a draw in which compression did no damage has no F and counts against both; "
        "UNDECIDED otherwise. A method that fails but whose simultaneous interval is above 0 wins back PART of "
        "the loss. Beside F, descriptive: the share of the lost questions (base right, compressed wrong) it gets "
        "right, against the share of the never-known questions (both wrong) it gets right. "
        "REFERENCES: a method whose information comes from the uncompressed model ("
        + ("; ".join(refs) if refs else "none in this run") + "; a low-rank copy of W_base - W_compressed is, at "
        "full rank, the base itself; distillation reads the uncompressed model's logits) is "
        "not a side: it is decided outside the family at the marginal level (95%) and shown beside the verdict "
        "as 'recoverable from the uncompressed model' or not; no label reads it. "
        "The verdict is the first that applies: "
        "(1) NO MEASURABLE LOSS: Holm rejects H0: damage >= min_damage "
        f"({s.min_damage} accuracy), one-sided; "
        f"(2) RECOVERABLE FROM THE INPUT SIDE: an input-side method ({methods.named(INPUT)}) recovers; "
        "(3) RECOVERABLE ONLY WITH NEW PARAMETERS, with the methods and capacities tried: a parameter-side method "
        f"({methods.named(PARAMETERS)}; references excluded) recovers and every input-side method tried fails; "
        f"(4) PARTLY RECOVERED AT THIS BUDGET{tokens}: every method fails and one wins back part of the loss; "
        f"(5) NOT RECOVERED AT THIS BUDGET{tokens}: every method fails and none is shown to win back any, which "
        "is positive evidence that none wins back min_recovery_fraction of the loss at this budget; "
        "(6) INCONCLUSIVE: anything else; for each undecided method the report gives the facts (seeds fixed, "
        "capped at the facts the tasks have) or seeds (facts fixed) with which the procedure itself, simulated, "
        f"decides with probability {s.power} at the family's smallest level, for a method that wins back nothing "
        "(F = 0) and one that wins back 0.8 of the loss. "
        "The study's two conjectures explain these outcomes but are not outcomes themselves: knowledge DISPLACED "
        "(still in the weights, reachable from the input side) predicts (2); knowledge FORGOTTEN predicts (5) at "
        "any budget. (3) does not show forgetting: its parameter-side methods learn from leak-filtered text and "
        "the compressed model only (references, whose information is the uncompressed model's, are excluded), "
        "so if they bring the facts back the knowledge was still reachable, only not through the input side at "
        "the input side's capacity (soft prompts add far fewer parameters than low-rank adapters; an adapter of "
        "matched capacity is a config entry: docs/methods.md). "
        "A run whose training diverged (a NaN or infinite loss or weight) has no adapter and no score: a method "
        "whose every run at the final budget failed is FAILED, was not tried, and stays out of the family (every "
        "method failed: inconclusive); a method with some failed seeds is decided on the others; the verdict's "
        "reason names each failure."
    )


def noninferiority_rule(settings: Settings) -> str:
    return (
        "Non-inferiority (descriptive, outside the verdict's family: it changes no label): per compression, "
        "every input-side method I against every parameter-side method P (references excluded), the difference "
        f"F_I - F_P on the shared question resample (each method's seed component), 'non-inferior' when its "
        f"one-sided lower bound at confidence {1 - settings.alpha:.0%} (marginal) is above -noninferiority_margin "
        f"({settings.noninferiority_margin}), else 'not shown'. Control-subtracted fractions (gain not clipped) "
        "when both methods have a control run, else raw fractions for both."
    )


def _fmt_interval(m: Decision) -> str:
    kind = "simultaneous" if m.family_size else "marginal"
    return f"[{m.ci_low:.2f}, {m.ci_high:.2f}] ({kind} {m.interval_confidence:.1%})"


def power_text(m: Decision) -> str:
    """What the design can decide, from the simulated procedure: per pre-specified truth (a
    method that wins back nothing, one that wins back 0.8), the probability with these facts
    and seeds, and the facts (or seeds) that give report.power."""
    p = m.power or {}
    parts = []
    for claim, truth in (("fails", "a method that wins back nothing"), ("recovers", "one that wins back 0.8")):
        c = p.get(claim)
        if not c:
            continue
        facts, seeds = from_json_number(c.get("facts_needed")), c.get("seeds_needed")  # as read back: "inf"
        seeds = None if seeds is None else from_json_number(seeds)
        need = "more facts than the tasks have" if facts == math.inf else f"{facts:,} facts"
        if seeds is not None:
            need += " or no number of seeds alone" if seeds == math.inf else f" or {seeds} seeds"
        parts.append(f"{truth} {claim} with probability {c['power_now']:.2f} here ({p['target']:.0%} needs {need})")
    return "; ".join(parts) or p.get("note", "no estimate")


def _p(m: Decision) -> str:
    return f"Holm-adjusted p = {m.test.p_holm:.2g}" if m.family_size else f"p = {m.test.p_value:.2g} (marginal)"


def _wins(m: Decision) -> str:
    return f"{m.recovery} F = {m.fraction:.2f} ({m.fraction_used}), {_p(m)}, {_fmt_interval(m)} vs {m.threshold}"


def _fails(m: Decision) -> str:
    part = "; above 0, so part of the loss is won back" if m.partly else ""
    return (f"{m.recovery} F = {m.fraction:.2f} ({m.fraction_used}), {_p(m)}, {_fmt_interval(m)} below "
            f"{m.threshold}{part}; won back {_share(m.won_back)} of the {m.lost_questions} lost questions against "
            f"{_share(m.never_known_right)} of the {m.never_known} never known")


def _share(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def _seeds_of(m: Decision) -> str:
    seeds = m.estimates.get("seeds") or m.seeds
    return f"{m.recovery} ({'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))})" if seeds \
        else m.recovery


CHECKPOINT = ("the compressed model is one draw of the compression (its calibration sample and the machine's "
              "kernels decide its rounding; another draw can move every row), so every claim is about this "
              "compressed checkpoint, not the compression setting")


def scope(methods: list[Decision]) -> str:
    """What the decisions are about: this compressed checkpoint (one compression draw),
    and the trained adapter(s) of a method with fewer than METHOD_SEEDS seeds, the method
    itself from METHOD_SEEDS on."""
    few = [m for m in methods if m.n_seeds < METHOD_SEEDS]
    many = [m for m in methods if m.n_seeds >= METHOD_SEEDS]
    parts = [CHECKPOINT]
    if few:
        parts.append(f"about the trained adapter(s), not the method (fewer than {METHOD_SEEDS} seeds): "
                     + ", ".join(map(_seeds_of, few)))
    if many:
        parts.append(f"about the method ({METHOD_SEEDS} or more seeds, the seed variance in the interval with "
                     "Welch-Satterthwaite degrees of freedom): " + ", ".join(m.recovery for m in many))
    return "; claims " + "; ".join(parts)


def decide(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """The verdict and its reason from the damage decision and each method's decision. A
    method that failed to train (``status`` failed) was not tried: the verdict rests on the
    others, and the reason says so (as it notes seeds that failed); when every method failed,
    the verdict is inconclusive (after the no-measurable-loss test, which needs no method).
    References (``reference`` set) never enter the label: :func:`reference_label`."""
    tried = [m for m in methods if not m.failed and not m.reference]
    notes = "".join(f"; {m.note}" for m in methods if m.note)
    sides = [m for m in methods if not m.reference]
    if sides and not tried and not damage.no_measurable_loss:
        return INCONCLUSIVE, "every recovery method of the two sides failed to train, so none was tried" + notes
    verdict, reason = _decide_tried(damage, tried, budget)
    return verdict, reason + ("" if verdict == NO_LOSS else scope(tried)) + notes


def reference_label(methods: list[Decision]) -> str:
    """The references' own label, beside the verdict and outside its family (marginal
    intervals): "recoverable from the uncompressed model" when one recovers, else what was
    observed; "" without a reference."""
    refs = [m for m in methods if m.reference and not m.failed]
    if not refs:
        return ""
    wins = [m for m in refs if m.decision == "recovers"]
    fails = all(m.decision == "fails" for m in refs)
    label = (FROM_UNCOMPRESSED if wins else "partly recovered from the uncompressed model at this rank"
             if fails and any(m.partly for m in refs) else "not recovered from the uncompressed model at this rank"
             if fails else "undecided from the uncompressed model")
    where = ", ".join(sorted({m.reference for m in refs}))
    each = (_wins(m) if m in wins else _fails(m) if m.decision == "fails"
            else f"{m.recovery} undecided {_fmt_interval(m)}" for m in refs)
    return (f"{label} (reference, outside the verdict's family: its information is {where}, not the compressed "
            "model's): " + "; ".join(each))


def _decide_tried(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """:func:`decide` on the methods of the two sides that were trained."""
    if damage.no_measurable_loss:
        return NO_LOSS, (
            f"damage {damage.damage:.3f} (base {damage.base_acc:.3f}, compressed "
            f"{damage.compressed_acc:.3f}) is below min_damage {damage.min_damage}: Holm-adjusted p = "
            f"{damage.p_holm:.2g}; simultaneous upper bound {damage.damage_upper:.3f} at {damage.confidence:.1%}")
    by = {d: [m for m in methods if m.decision == d] for d in ("recovers", "fails", "undecided")}
    inputs = [m for m in methods if m.side == INPUT]
    say = "; ".join
    recovering_inputs = [m for m in by["recovers"] if m.side == INPUT]
    if recovering_inputs:
        return INPUT_SIDE, "an input-side method wins the knowledge back: " + say(map(_wins, recovering_inputs))
    recovering_params = [m for m in by["recovers"] if m.side == PARAMETERS]
    if recovering_params and inputs and all(m.decision == "fails" for m in inputs):
        return NEW_PARAMETERS, ("with the methods and capacities tried, only new parameters win it back: "
                                + say(map(_wins, recovering_params)) + "; every input-side method fails: "
                                + say(map(_fails, inputs)))
    if methods and len(by["fails"]) == len(methods):
        final = final_budget(budget)
        tokens = f" ({final['steps']} steps, {final['tokens']:,} tokens)" if final else ""
        partly = [m for m in methods if m.partly]
        if partly:
            return PARTLY, (f"every method fails to win back {methods[0].threshold:.0%} of the loss at this "
                            f"budget{tokens}, and {', '.join(m.recovery for m in partly)} wins back more than none: "
                            + say(map(_fails, methods)))
        return NOT_RECOVERED, (
            f"every method fails at this budget{tokens}, positive evidence that none wins back "
            f"{methods[0].threshold:.0%} of the loss, and none is shown to win back any: " + say(map(_fails, methods)))
    if not methods:
        return INCONCLUSIVE, "no recovery method of the two sides was run on this compression"
    if not by["undecided"]:
        return INCONCLUSIVE, ("a parameter-side method recovers but no input-side method was tried, so "
                              "'recoverable from the input side' and 'only with new parameters' cannot be told apart")
    return INCONCLUSIVE, "undecided: " + say(
        f"{m.recovery} F = {m.fraction:.2f} {_fmt_interval(m)} contains {m.threshold} "
        f"({m.estimates.get('n', '?')} questions of {m.estimates.get('facts', '?')} facts; at this design "
        f"{power_text(m)})" for m in by["undecided"])


def _records(frame, **match) -> list[dict]:
    if frame is None or frame.empty:
        return []
    mask = True
    for k, v in match.items():
        mask = mask & (frame[k] == v)
    return frame[mask].to_dict("records")


def verdicts(damage: dict, decisions: list[Decision], tests: list[dict], margins, mcnemar,
             budget: dict | None) -> list[Verdict]:
    """The verdict per (model, compression), with the evidence it rests on (each method's
    pooled margin test and McNemar tests attached to its decision)."""
    out = []
    for (model, comp), dmg in damage.items():
        methods = [m for m in decisions if (m.model, m.compression) == (model, comp)]
        for m in methods:
            m.margin_test = _records(margins, model=model, compression=comp, recovery=m.recovery, task=ALL_KNOWLEDGE)
            m.mcnemar = _records(mcnemar, model=model, task=ALL_KNOWLEDGE, comparison="recovery",
                                 b=f"{comp}/{m.recovery}")
        verdict, reason = decide(dmg, methods, budget)
        ni = [t for t in tests if (t["model"], t["compression"]) == (model, comp)]
        out.append(Verdict(model, comp, verdict, reason, dmg, methods, ni, reference_label(methods)))
    return out
