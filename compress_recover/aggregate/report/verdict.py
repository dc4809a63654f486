"""The verdict's sections: per compression the damage and each remedy's evidence, the failed runs, the rule and its settings.

Each function is one section's context (:data:`..registry.SECTIONS`), reading the typed
:class:`~..stats.verdict.Verdict` records of the results; cells as text (:mod:`.cells`).
"""

from __future__ import annotations


from ...failures import FAILED_RUN_COLUMNS, shown
from ..results import MARGIN_TESTS, NONINFERIORITY, PAIRED_TESTS
from ..stats.budget import budget_steps
from ..stats.verdict import power_text
from .cells import NO_CONTROL, base_label, bracket, fmt, isnan, number, or_why, p_value, pm, table, why_undefined
from .first_screen import bases_text, verdict_class
from .inputs import ReportInputs

METHOD_HEAD = ["recovery", "side", "training seed(s)", "acc (mean ± sd)", "control gain", "decided on",
               "F (± sd over seeds)", "interval (simultaneous: Bonferroni α/m; references: marginal)",
               "its confidence", "Holm α_i", "p", "Holm p", "decision",
               "P(right choice) Δ vs compressed [95% t], sign-flip p (descriptive)",
               "McNemar p per seed (descriptive)",
               "what this design decides (simulated: a method that wins back nothing, one that wins back 0.8)"]
NONINFERIORITY_HEAD = ["input vs parameters", "fractions", "F_input − F_parameters", "lower bound",
                       "confidence (marginal)", "margin", "p", "result (descriptive)"]


M, P, N = MARGIN_TESTS.c, PAIRED_TESTS.c, NONINFERIORITY.c  # the rows the verdict carries, by column
P_RIGHT = "p_right"  # the margin test on the right choice's probability


def _margin_text(m) -> str:
    margin = next((t for t in m.margin_test or [] if t[M.metric] == P_RIGHT), None)
    if not margin:
        return "n/a (no margin test)"
    return (f"{fmt(margin[M.mean_difference], '{:+.3f}')} {bracket(margin[M.ci_low], margin[M.ci_high], '{:.3f}')}"
            f", p = {fmt(margin[M.p_value], '{:.3g}')}")


def _power_needed(m) -> str:
    """What would decide an undecided method (the simulated procedure's estimate); decided ones need nothing."""
    return power_text(m) if m.power else "not needed (decided)"


def _seeds_cell(m) -> str:
    seeds = ", ".join(str(s) for s in m.run_seeds) or "none"
    failed = ", ".join(str(s) for s in m.failed_seeds)
    return seeds + (f" (failed to train: {failed})" if failed else "") + f"; about the {m.claim}"


def _control_text(m) -> str:
    if not m.control_seeds:
        return NO_CONTROL
    return f"{fmt(m.control_gain, '{:+.3f}')} (seed {', '.join(map(str, m.control_seeds))})"


def _fractions_text(m) -> str:
    """Both fractions (± sd over seeds): control-subtracted and raw; raw alone without a control run."""
    why = why_undefined(m.base_acc, m.compressed_acc)
    raw = pm(m.recovery_fraction, m.fraction_sd, "{:.2f}", why)
    if not m.control_seeds:
        return f"raw {raw}"
    return f"controlled {pm(m.controlled_fraction, m.controlled_sd, '{:.2f}', why)}; raw {raw}"


def _bounds_text(m) -> str:
    """The decision's interval (the lower of both fractions' lower bounds, the higher of their
    upper bounds: the intersection-union tests read both), then each fraction's interval."""
    both = bracket(m.ci_low, m.ci_high)
    if not m.control_seeds:
        return both
    return f"{both} (controlled {bracket(*m.controlled_ci)}; raw {bracket(*m.raw_ci)})"


def _won_back_text(m) -> str:
    """Beside F: the lost questions it wins back against the never-known ones it gets right."""
    if isnan(number(m.won_back)):
        return ""
    return (f"; won back {fmt(m.won_back, '{:.0%}')} of {m.lost_questions} lost questions vs "
            f"{fmt(m.never_known_right, '{:.0%}')} of {m.never_known} never known")


def _decision_text(m) -> str:
    """The decision, a reference's as its own label, a partial win said as one."""
    if m.reference:
        return f"{m.decision} (reference: information from {m.reference})"
    return f"{m.decision} (partly: above 0)" if m.partly else m.decision


def _method_row(m) -> dict:
    """One method's evidence: the cells before the decision, the decision, the cells after;
    for a method whose every run failed to train, its first three cells and why."""
    first = [m.recovery, m.side]
    if m.failed:
        return {"cells": [*first, ", ".join(map(str, m.seeds))], "failed": shown(m.failure),
                "colspan": len(METHOD_HEAD) - 3}
    mcnemar = ", ".join(f"{t[P.b_seed] or 'no seed'}: {fmt(t[P.p_value], '{:.3g}')}" for t in m.mcnemar or [])
    t = m.test
    return {"cells": [*first, _seeds_cell(m), pm(m.recovered_acc, m.recovered_sd), _control_text(m),
                      m.fraction_used, _fractions_text(m) + _won_back_text(m), _bounds_text(m),
                      fmt(m.interval_confidence, "{:.2%}") + ("" if m.family_size else " (marginal)"),
                      fmt(t.level, "{:.4f}") if m.family_size else "outside the family", p_value(t.p_value),
                      p_value(t.p_holm) if m.family_size else "—"],
            "decision": _decision_text(m),
            "after": [_margin_text(m), mcnemar or "n/a (no McNemar test)", _power_needed(m)]}


def _noninferiority_row(t: dict, why: str) -> dict:
    """One non-inferiority test; ``why``: why a difference of fractions is NaN (no damage)."""
    return {"cells": [f"{t[N.input]} vs {t[N.parameters]}", t[N.fractions], or_why(t[N.difference], why, "{:+.2f}"),
                      fmt(t[N.lower_bound], "{:+.2f}"), fmt(t[N.confidence], "{:.2%}"), f"−{t[N.margin]}",
                      p_value(t[N.p_value])],
            "result": t[N.result]}


def verdict_block(v, precisions: dict[str, str]) -> dict:
    """One (model, compression)'s verdict, its damage and each method's evidence."""
    d = v.damage
    base = base_label(v.model, precisions)
    why = why_undefined(d.base_acc, d.compressed_acc)
    return {"kind": verdict_class(v.verdict), "model": v.model, "compression": v.compression,
            "verdict": v.verdict, "reason": v.reason, "base": base, "Base": base[:1].upper() + base[1:],
            "base_acc": fmt(d.base_acc), "compressed_acc": fmt(d.compressed_acc), "n": d.n,
            "lost_only": d.lost_only, "gained_only": d.gained_only, "damage": fmt(d.damage),
            "damage_upper": fmt(d.damage_upper), "confidence": fmt(d.confidence, "{:.2%}"), "reference": v.reference,
            "min_damage": d.min_damage, "p_holm": p_value(d.p_holm), "family_size": d.family_size,
            "method_head": METHOD_HEAD, "methods": [_method_row(m) for m in v.methods],
            "noninferiority_head": NONINFERIORITY_HEAD,
            "noninferiority": [_noninferiority_row(t, why) for t in v.noninferiority]}


def sensitivity_text(v, sensitivity: dict) -> str | None:
    """The one-to-one sensitivity row of verdict ``v`` in words (stats/sensitivity.py), or
    None without one (no one-to-one relation, or this compression not among its verdicts)."""
    row = (sensitivity or {}).get("one_to_one") or {}
    found = [s for s in row.get("verdicts", []) if (s.model, s.compression) == (v.model, v.compression)]
    if not found:
        return None
    s = found[0]
    decisions = "; ".join(f"{m.recovery} {m.decision}" + ("" if m.failed else f" (F = {fmt(m.fraction, '{:.2f}')})")
                          for m in s.methods) or "no remedy"
    same = ("the same verdict" if s.verdict == v.verdict
            else "a different verdict: the verdict above rests partly on questions that share their right answer")
    return (f"On the one-to-one relations alone ({', '.join(row['tasks'])}: {row['questions']} test questions, "
            f"none sharing its right answer), the same rule decides: {s.verdict} (damage {fmt(s.damage.damage)}; "
            f"{decisions}): {same}. A sensitivity check, not part of the verdict.")


def verdicts(r: ReportInputs) -> dict:
    return {"verdicts": [{**verdict_block(v, r.precisions),
                          "sensitivity": sensitivity_text(v, r.results.sensitivity)} for v in r.results.verdicts]}


FAMILY_HEAD = ["hypothesis", "model / compression", "what", "p", "Holm p", "Holm α_i", "result",
               "can change the verdict"]


def family(r: ReportInputs) -> dict | None:
    """Every member of the one confirmatory Holm family, grouped by compression: its no-loss
    test and each remedy's test against the threshold (references and non-inferiority are
    descriptive, outside it): exactly the claims the verdict's rule reads. None without a
    verdict."""
    rows = []
    for v in r.results.verdicts:
        d, where = v.damage, f"{v.model} / {v.compression}"
        rows.append(["no measurable loss", where, f"damage < {d.min_damage}", p_value(d.p_value),
                     p_value(d.p_holm), fmt(d.holm_level, "{:.4f}"),
                     "no measurable loss" if d.no_measurable_loss else "loss not ruled out", "yes"])
        rows += [["recovery", where, f"{m.recovery}: F vs {m.threshold}", p_value(m.test.p_value),
                  p_value(m.test.p_holm), fmt(m.test.level, "{:.4f}"), m.decision, "yes"]
                 for m in v.methods if not m.failed and m.family_size]
    if not rows:
        return None
    size = r.results.verdicts[0].damage.family_size
    used = sum(row[-1] == "yes" for row in rows)
    return {"family": {"size": size, "used": used, "head": FAMILY_HEAD, "rows": rows}}


def failed_runs(r: ReportInputs) -> dict | None:
    """The runs whose recovery training failed; None (the section left out) when none did."""
    failed = r.results.failed_runs
    return {"failed_runs": {"table": table(failed_runs_table(failed))}} if failed else None


def rule(r: ReportInputs) -> dict:
    """The verdict's rule, the non-inferiority rule and the settings they ran with."""
    res = r.results
    steps = budget_steps(res.budget)
    return {"rule": {"rule": res.rule, "noninferiority_rule": res.noninferiority_rule,
                     "thresholds": res.settings, "resamples_pooled": res.bootstrap_iters.get("pooled", "?"),
                     "resamples_per_task": res.bootstrap_iters.get("per_task", "?"),
                     "seeds": ", ".join(map(str, res.seeds)) or "none", "final_steps": steps[-1],
                     "curve_steps": ", ".join(map(str, steps[:-1])), "batch_size": res.budget["batch_size"],
                     "seq_len": res.budget["seq_len"], "bases": bases_text(r.precisions),
                     "units": "; ".join(f"{model}: {u['questions']} questions in {u['clusters']} clusters of facts and "
                                        f"right answers, the largest {u['largest']}, size-weighted mean "
                                        f"{fmt(u['weighted_mean_size'], '{:.1f}')}"
                                        for model, u in res.resampling_units.items())}}


def failed_runs_table(failed: list[dict]):
    """Every run (and checkpoint) whose recovery training failed, with why (analysis/failed_runs.csv's columns)."""
    import pandas as pd

    return pd.DataFrame([{k: "" if r[k] is None else r[k] for k in FAILED_RUN_COLUMNS} for r in failed],
                        dtype=object)
