"""The verdict per compressed model, and its rule in words: pure functions over :class:`Damage` and :class:`Decision`.

The verdict is the first that applies: no measurable loss; displaced (an input-side method
recovers); forgotten (a parameter-side method recovers and every input-side one fails);
not recovered at this budget (every method fails); inconclusive. The rule's full text is
:func:`verdict_rule` (written into verdict.json and shown by the report); to change the
rule, change :func:`decide` and :func:`verdict_rule` here, nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .budget import budget_steps, final_budget
from .decisions import Damage, Decision
from .methods import INPUT, PARAMETERS, Methods
from .questions import ALL_KNOWLEDGE
from .settings import Settings


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


def verdict_rule(methods: Methods, settings: Settings | None = None, budget: dict | None = None) -> str:
    """The verdict's rule in words, with its thresholds and the methods of each side."""
    s = settings or Settings()
    final = final_budget(budget)
    tokens = f" ({final['steps']} steps x {final['batch_size']} x {final['seq_len']} tokens)" if final else ""
    curve = ("; the intermediate checkpoints of the budget curve (steps "
             f"{', '.join(map(str, budget_steps(budget)[:-1]))}) are described, never decided on"
             if len(budget_steps(budget)) > 1 else "")
    return (
        "Per model and compression setting, on the pooled test questions of every knowledge task (held-out tasks "
        "included; the dev questions, if any, serve choices of recipe and budget and enter no decision), every "
        f"model scored on the same questions, with the runs at the final budget{tokens}{curve}. 'Base' is the "
        "uncompressed model at its stated base precision; damage = base "
        "accuracy - compressed accuracy. A recovery method's fraction F = (recovered - compressed - control gain) / "
        "(base - compressed): recovered is the mean over the method's seeds; control gain = (the uncompressed model "
        "recovered by the same method, mean over its seeds) - base when positive, else 0 (a method is never "
        "credited for what it breaks on the uncompressed model); a method without that control run uses "
        "F = (recovered - compressed) / (base - compressed) and is flagged 'raw'. Intervals are percentile "
        "bootstraps that resample the method's seeds with replacement, then the questions with replacement (one "
        "question resample shared by every model of the grid). Error control: the family is every (model, "
        "compression, recovery method) pair, m pairs; each is tested two-sided against F = min_recovery_fraction "
        f"({s.min_recovery_fraction}) with the bootstrap p-value 2 x min(share of resamples with F < threshold, "
        "share with F >= threshold), where a resample in which compression did no damage has no F and counts "
        f"against both; Holm's procedure at alpha = {s.alpha} gives each pair its level alpha_i = alpha / "
        "(m - r + 1) for the pair of rank r by p-value while Holm rejects, and the level at which it stopped for "
        "the rest; each interval is shown at confidence 1 - alpha_i. A method RECOVERS when the "
        "lower end of that interval is >= min_recovery_fraction, FAILS when the upper end is < min_recovery_fraction, "
        "and is UNDECIDED otherwise (the same as Holm-adjusted p <= alpha). The verdict is the first that applies: "
        "(1) NO MEASURABLE LOSS: the one-sided upper bound of the damage (question bootstrap), at confidence "
        "1 - alpha_j (alpha_j its Holm level over the compressions, testing H0: damage >= min_damage), is below "
        f"min_damage ({s.min_damage} accuracy); "
        f"(2) DISPLACED: an input-side method ({methods.named(INPUT)}) recovers; "
        f"(3) FORGOTTEN: a parameter-side method ({methods.named(PARAMETERS)}) recovers and every input-side method "
        "tried fails; "
        f"(4) NOT RECOVERED AT THIS BUDGET{tokens}: every method tried fails, which is positive evidence that "
        "none wins back min_recovery_fraction of the loss at this budget, not an absence of evidence; "
        "(5) INCONCLUSIVE: anything else; for each undecided method the report estimates the questions (seeds "
        f"fixed) or seeds (questions fixed) that would decide it with probability {s.power} at the level "
        "alpha / family size. A run whose training diverged (a NaN or infinite loss or weight) has no adapter and "
        "no score: a method whose every run at the final budget failed is FAILED, was not tried, and stays out of "
        "the family (every method failed: inconclusive); a method with some failed seeds is decided on the others; "
        "the verdict's reason names each failure."
    )


def noninferiority_rule(settings: Settings) -> str:
    return (
        "Non-inferiority (reported beside the verdict, not part of it): per compression, every input-side method I "
        "against every parameter-side method P, H0: F_I - F_P <= -noninferiority_margin "
        f"({settings.noninferiority_margin}), on paired bootstrap draws (same questions, each method's seeds "
        f"resampled), Holm over all such pairs at alpha = {settings.alpha}; 'non-inferior' when the lower bound at "
        "confidence 1 - alpha_i is above -noninferiority_margin, else 'not shown'. Control-subtracted fractions "
        "when both methods have a control run, else raw fractions for both."
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
    return f"{m.recovery} F = {m.fraction:.2f} {_fmt_interval(m)} >= {m.threshold}"


def _fails(m: Decision) -> str:
    return f"{m.recovery} {_fmt_interval(m)} < {m.threshold}"


def decide(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """The verdict and its reason from the damage decision and each method's decision. A
    method that failed to train (``status`` failed) was not tried: the verdict rests on the
    others, and the reason says so (as it notes seeds that failed); when every method failed,
    the verdict is inconclusive (after the no-measurable-loss test, which needs no method)."""
    tried = [m for m in methods if not m.failed]
    notes = "".join(f"; {m.note}" for m in methods if m.note)
    if methods and not tried and not damage.no_measurable_loss:
        return "inconclusive", "every recovery method failed to train, so none was tried" + notes
    verdict, reason = _decide_tried(damage, tried, budget)
    return verdict, reason + notes


def _decide_tried(damage: Damage, methods: list[Decision], budget: dict | None) -> tuple[str, str]:
    """:func:`decide` on the methods that were trained."""
    if damage.no_measurable_loss:
        return "no measurable loss", (
            f"damage {damage.damage:.3f} (base {damage.base_acc:.3f}, compressed "
            f"{damage.compressed_acc:.3f}); its upper bound {damage.damage_upper:.3f} at "
            f"{damage.confidence:.1%} is below min_damage {damage.min_damage}")
    by = {d: [m for m in methods if m.decision == d] for d in ("recovers", "fails", "undecided")}
    inputs = [m for m in methods if m.side == INPUT]
    say = "; ".join
    recovering_inputs = [m for m in by["recovers"] if m.side == INPUT]
    if recovering_inputs:
        return "displaced", "input-side recovery wins the knowledge back: " + say(map(_wins, recovering_inputs))
    recovering_params = [m for m in by["recovers"] if m.side == PARAMETERS]
    if recovering_params and inputs and all(m.decision == "fails" for m in inputs):
        return "forgotten", ("only new parameters win it back: " + say(map(_wins, recovering_params))
                             + "; every input-side method fails: " + say(map(_fails, inputs)))
    if methods and len(by["fails"]) == len(methods):
        final = final_budget(budget)
        tokens = f" ({final['steps']} steps, {final['tokens']:,} tokens)" if final else ""
        return "not recovered at this budget", (
            f"every method fails at this budget{tokens}, positive evidence that none wins back "
            f"{methods[0].threshold:.0%} of the loss: " + say(map(_fails, methods)))
    if not methods:
        return "inconclusive", "no recovery method was run on this compression"
    if not by["undecided"]:
        return "inconclusive", ("a parameter-side method recovers but no input-side method was tried, so displaced "
                                "and forgotten cannot be told apart")
    return "inconclusive", "undecided: " + say(
        f"{m.recovery} F = {m.fraction:.2f} {_fmt_interval(m)} contains {m.threshold} "
        f"(would need {_power_text(m)} to decide at power {(m.power or {}).get('power', '')})"
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
