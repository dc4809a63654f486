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
NOT_RECOVERED = "not recovered at this budget"
INCONCLUSIVE = "inconclusive"
VERDICTS = (NO_LOSS, INPUT_SIDE, NEW_PARAMETERS, NOT_RECOVERED, INCONCLUSIVE)


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

    def as_dict(self) -> dict:
        return {"model": self.model, "compression": self.compression, "verdict": self.verdict, "reason": self.reason,
                "evidence": {**self.damage.as_dict(), "methods": [m.as_dict() for m in self.methods],
                             "noninferiority": self.noninferiority}}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """The inverse of :meth:`as_dict`, as read back from verdict.json (null: NaN)."""
        e = d["evidence"]
        return cls(d["model"], d["compression"], d["verdict"], d["reason"], Damage.from_dict(e),
                   [Decision.from_dict(m) for m in e.get("methods", [])],
                   [{k: from_json_number(v) for k, v in t.items()} for t in e.get("noninferiority", [])])


def verdict_rule(methods: Methods, settings: Settings | None = None, budget: dict | None = None) -> str:
    """The verdict's rule in words, with its thresholds and the methods of each side."""
    s = settings or Settings()
    final = final_budget(budget)
    tokens = f" ({final['steps']} steps x {final['batch_size']} x {final['seq_len']} tokens)" if final else ""
    curve = ("; the intermediate checkpoints of the budget curve (steps "
             f"{', '.join(map(str, budget_steps(budget)[:-1]))}) are described, never decided on"
             if len(budget_steps(budget)) > 1 else "")
    k = METHOD_SEEDS
    return (
        "Per model and compression setting, on the pooled test questions of every knowledge task (held-out tasks "
        "included; the dev questions, if any, serve choices of recipe and budget and enter no decision), every "
        f"model scored on the same questions, with the runs at the final budget{tokens}{curve}. 'Base' is the "
        "uncompressed model at its stated base precision; damage = base accuracy - compressed accuracy. "
        "Two recovery fractions per method: raw F = (recovered - compressed) / (base - compressed), recovered the "
        "mean over the method's seeds; control-subtracted F_c = (recovered - compressed - control gain) / (base - "
        "compressed), control gain = (the uncompressed model recovered by the same method, mean over its seeds) - "
        "base, as estimated, never clipped at 0 (clipping raises the gain where it is near 0 and biases F_c down); "
        "a method without that control run has the raw F only and is flagged 'raw'. Draws: the questions are "
        "resampled with replacement, one resample shared by every model of the grid (paired); the seed component "
        f"is t-based: with S >= {k} seeds each draw adds (s / sqrt(S)) x T, T ~ t(S - 1), s the sd of the S runs' "
        "accuracies (the recovered model's and, separately, the control's), and the decision is about the method; "
        f"with fewer than {k} seeds the component is 0 and the decision is about the trained adapter(s), not the "
        "method (the verdict's reason says so). "
        f"Error budget: ONE Holm family at alpha = {s.alpha} (config report.alpha) over every confirmatory claim of "
        "the run, m hypotheses: each compression's no-loss test, each (model, compression, recovery method) test "
        "against min_recovery_fraction and each non-inferiority comparison; Holm gives the hypothesis of rank r "
        "by p-value the level alpha_i = alpha / (m - r + 1) while it rejects, and the level at which it stopped "
        "to the rest; every bound is read at its alpha_i and agrees exactly with its bootstrap p-value. "
        "Everything else in the report (the per-task and 95% intervals, budget curve, format control, paired "
        "probability margins, McNemar tests, flips, prompt-pool ablation, collateral damage) is descriptive. "
        "A method RECOVERS when the lower bounds at alpha_i / 2 of both F_c and the raw F are >= "
        f"min_recovery_fraction ({s.min_recovery_fraction}): an intersection-union test, p_recovers = the larger "
        "of their shares of draws below the threshold; the raw bound binds only when the control lost accuracy, "
        "so a method is never credited for what it breaks on the uncompressed model. It FAILS when the upper "
        "bound at alpha_i / 2 of the raw F is < min_recovery_fraction (p_fails = the share of raw draws at or "
        "above it): raw F >= F_c whenever the control gains, so 'fails' never rests on a subtracted gain. Each "
        "claim is thus conservative whatever the sign of the control gain; p = 2 x min(p_recovers, p_fails), a "
        "draw in which compression did no damage has no F and counts against both; UNDECIDED otherwise (the same "
        "as Holm-adjusted p > alpha). The evidence shows both fractions and which one decided. "
        "The verdict is the first that applies: "
        "(1) NO MEASURABLE LOSS: the one-sided upper bound of the damage at confidence 1 - alpha_i (testing H0: "
        f"damage >= min_damage) is below min_damage ({s.min_damage} accuracy); "
        f"(2) RECOVERABLE FROM THE INPUT SIDE: an input-side method ({methods.named(INPUT)}) recovers; "
        f"(3) RECOVERABLE ONLY WITH NEW PARAMETERS: a parameter-side method ({methods.named(PARAMETERS)}) recovers "
        "and every input-side method tried fails; "
        f"(4) NOT RECOVERED AT THIS BUDGET{tokens}: every method tried fails, which is positive evidence that "
        "none wins back min_recovery_fraction of the loss at this budget, not an absence of evidence; "
        "(5) INCONCLUSIVE: anything else; for each undecided method the report gives the questions (seeds fixed) "
        f"or seeds (questions fixed) that would decide it with probability {s.power} at the level alpha / m for a "
        "pre-specified effect, not the observed one: a true fraction min_recovery_fraction away from the "
        "threshold, F = 0 (a method that wins back nothing), with the observed variances. "
        "The study's two conjectures explain these outcomes but are not outcomes themselves: knowledge DISPLACED "
        "(still in the weights, reachable from the input side) predicts (2); knowledge FORGOTTEN predicts (4) at "
        "any budget. (3) does not show forgetting: the training text is leak-filtered, so new parameters cannot "
        "learn the facts from it, and if they bring them back the knowledge was still reachable, only not "
        "through the input side. "
        "A run whose training diverged (a NaN or infinite loss or weight) has no adapter and no score: a method "
        "whose every run at the final budget failed is FAILED, was not tried, and stays out of the family (every "
        "method failed: inconclusive); a method with some failed seeds is decided on the others; the verdict's "
        "reason names each failure."
    )


def noninferiority_rule(settings: Settings) -> str:
    return (
        "Non-inferiority (in the verdict's one Holm family; shown beside the verdict, it does not change its "
        "label): per compression, every input-side method I against every parameter-side method P, H0: F_I - F_P "
        f"<= -noninferiority_margin ({settings.noninferiority_margin}), on paired bootstrap draws (same questions, "
        f"each method's t-based seed component), at alpha = {settings.alpha}; 'non-inferior' when the lower bound "
        "at confidence 1 - alpha_i is above -noninferiority_margin, else 'not shown'. Control-subtracted fractions "
        "(gain not clipped) when both methods have a control run, else raw fractions for both."
    )


def _fmt_interval(m: Decision) -> str:
    return f"[{m.ci_low:.2f}, {m.ci_high:.2f}] at {m.confidence:.1%}"


def _power_text(m: Decision) -> str:
    p = m.power or {}
    q, s = p.get("questions_needed"), p.get("seeds_needed")
    parts = []
    if q is not None:
        parts.append("no number of questions alone" if q == math.inf else f"about {q:,} questions")
    if s is not None:
        parts.append("no number of seeds alone" if s == math.inf else f"about {s} seeds")
    if q == math.inf and s == math.inf and p.get("scale_both"):
        parts.append(f"{p['scale_both']}x the questions and {p['scale_both']}x the seeds together")
    return " or ".join(parts) or p.get("note", "no estimate")


def _wins(m: Decision) -> str:
    return (f"{m.recovery} F = {m.fraction:.2f} ({m.fraction_used}), lower bound {m.ci_low:.2f} at "
            f"{m.confidence:.1%} >= {m.threshold}")


def _fails(m: Decision) -> str:
    return f"{m.recovery} raw F = {m.fraction:.2f}, upper bound {m.ci_high:.2f} at {m.confidence:.1%} < {m.threshold}"


def _seeds_of(m: Decision) -> str:
    seeds = m.estimates.get("seeds") or m.seeds
    return f"{m.recovery} ({'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))})" if seeds \
        else m.recovery


def scope(methods: list[Decision]) -> str:
    """What the decisions are about: the trained adapter(s) of a method with fewer than
    METHOD_SEEDS seeds, the method itself from METHOD_SEEDS on ("" without methods)."""
    few = [m for m in methods if m.n_seeds < METHOD_SEEDS]
    many = [m for m in methods if m.n_seeds >= METHOD_SEEDS]
    parts = []
    if few:
        parts.append(f"about the trained adapter(s), not the method (fewer than {METHOD_SEEDS} seeds): "
                     + ", ".join(map(_seeds_of, few)))
    if many:
        parts.append(f"about the method ({METHOD_SEEDS} or more seeds, t-based seed variance): "
                     + ", ".join(m.recovery for m in many))
    return "; claims " + "; ".join(parts) if parts else ""


def decide(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """The verdict and its reason from the damage decision and each method's decision. A
    method that failed to train (``status`` failed) was not tried: the verdict rests on the
    others, and the reason says so (as it notes seeds that failed); when every method failed,
    the verdict is inconclusive (after the no-measurable-loss test, which needs no method)."""
    tried = [m for m in methods if not m.failed]
    notes = "".join(f"; {m.note}" for m in methods if m.note)
    if methods and not tried and not damage.no_measurable_loss:
        return INCONCLUSIVE, "every recovery method failed to train, so none was tried" + notes
    verdict, reason = _decide_tried(damage, tried, budget)
    return verdict, reason + ("" if verdict == NO_LOSS else scope(tried)) + notes


def _decide_tried(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """:func:`decide` on the methods that were trained."""
    if damage.no_measurable_loss:
        return NO_LOSS, (
            f"damage {damage.damage:.3f} (base {damage.base_acc:.3f}, compressed "
            f"{damage.compressed_acc:.3f}); its upper bound {damage.damage_upper:.3f} at "
            f"{damage.confidence:.1%} is below min_damage {damage.min_damage}")
    by = {d: [m for m in methods if m.decision == d] for d in ("recovers", "fails", "undecided")}
    inputs = [m for m in methods if m.side == INPUT]
    say = "; ".join
    recovering_inputs = [m for m in by["recovers"] if m.side == INPUT]
    if recovering_inputs:
        return INPUT_SIDE, "an input-side method wins the knowledge back: " + say(map(_wins, recovering_inputs))
    recovering_params = [m for m in by["recovers"] if m.side == PARAMETERS]
    if recovering_params and inputs and all(m.decision == "fails" for m in inputs):
        return NEW_PARAMETERS, ("only new parameters win it back: " + say(map(_wins, recovering_params))
                             + "; every input-side method fails: " + say(map(_fails, inputs)))
    if methods and len(by["fails"]) == len(methods):
        final = final_budget(budget)
        tokens = f" ({final['steps']} steps, {final['tokens']:,} tokens)" if final else ""
        return NOT_RECOVERED, (
            f"every method fails at this budget{tokens}, positive evidence that none wins back "
            f"{methods[0].threshold:.0%} of the loss: " + say(map(_fails, methods)))
    if not methods:
        return INCONCLUSIVE, "no recovery method was run on this compression"
    if not by["undecided"]:
        return INCONCLUSIVE, ("a parameter-side method recovers but no input-side method was tried, so "
                              "'recoverable from the input side' and 'only with new parameters' cannot be told apart")
    return INCONCLUSIVE, "undecided: " + say(
        f"{m.recovery} F = {m.fraction:.2f} ({m.fraction_used}) {_fmt_interval(m)} contains {m.threshold} "
        f"(power {(m.power or {}).get('power', '')} at the pre-specified effect, a method that wins back nothing, "
        f"needs {_power_text(m)}; {m.estimates.get('n', '?')} used)"
        for m in by["undecided"])


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
        out.append(Verdict(model, comp, verdict, reason, dmg, methods, ni))
    return out
