"""The report's first screen: the base models, the verdict in a sentence per compression, the explorer, the errors, the anatomy.

Each function is one section's context (:data:`..registry.SECTIONS`): it takes the
:class:`.inputs.ReportInputs` and returns the values its template shows, as text.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from ...runs import COMMIT_SHA
from ..results import LOSS_MODEL, TRANSITIONS
from ..stats.anatomy import CONFIDENCE, NULL_COLUMNS, POPULARITY, PRESPECIFIED, SECONDARY
from ..stats.costs import best_remedy
from ..stats.status import LOST
from .cells import base_label, fmt, isnan, p_value, table
from .inputs import ReportInputs


def figure(path: str | None, alt: str) -> dict | None:
    """An image inlined: its alt text and its bytes in base64 (None without a file)."""
    if path is None:
        return None
    return {"alt": alt, "data": base64.b64encode(Path(path).read_bytes()).decode()}


def bases_text(precisions: dict[str, str]) -> str:
    """"<model>: base (<precision>)" per model, "; "-joined (empty without precisions)."""
    return "; ".join(f"{m}: {base_label(m, precisions)}" for m in sorted(precisions))


def bases(r: ReportInputs) -> dict:
    return {"bases": bases_text(r.precisions)}


def floating_revision(r: ReportInputs) -> dict:
    """Hub models pinned to a branch or tag (``allow_floating_revision``): (model, revision) pairs in name order."""
    models = (r.config.get("models") or {}).items()
    return {"floating": sorted((name, spec.get("revision", "")) for name, spec in models
                               if spec.get("source") == "hub" and not COMMIT_SHA.fullmatch(spec.get("revision", "")))}


def verdict_class(label: str) -> str:
    """The verdict div's CSS class from its label: "recoverable from the input side" ->
    "recoverable-from-the-input-side" (style.css has one per verdict)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def glance(r: ReportInputs) -> dict:
    """Per (model, compression) the plain sentence of the first screen: what compression
    took (accuracy before and after, questions lost and gained), the remedy that won back
    the most and the verdict; each number's table named by its anchor."""
    out = []
    for v in r.results.verdicts:
        d, best = v.damage, best_remedy(v.methods)
        out.append({"kind": verdict_class(v.verdict), "model": v.model, "compression": v.compression,
                    "holds": r.holds.get((v.model, v.compression)), "verdict": v.verdict, "base": base_label(v.model, r.precisions),
                    "base_acc": fmt(d.base_acc), "compressed_acc": fmt(d.compressed_acc), "n": d.n,
                    "lost": d.lost_only, "gained": d.gained_only,
                    "best": None if best is None else {
                        "recovery": best.recovery, "acc": fmt(best.recovered_acc), "fraction": fmt(best.fraction, "{:.2f}"),
                        "which": best.fraction_used, "decision": best.decision, "claim": best.claim},
                    "tried": len(v.methods)})
    return {"glance": out, "overview": figure(r.figure("overview"),
                                              "Accuracy of the base, compressed and every remedy, with costs")}


def explorer(r: ReportInputs) -> dict:
    """The explorer's object (:func:`compress_recover.aggregate.explorer.explorer_data`); None without questions."""
    from ..explorer import explorer_data

    questions = r.results.tables.questions
    data = None if questions.empty else explorer_data(questions, r.results.final_steps)
    return {"explorer": data if data and data["views"] else None}


TOP_TRANSITIONS = 12
C = TRANSITIONS.c


def _errors(transitions) -> list[dict]:
    out = []
    for (model, comp), sub in transitions.groupby([C.model, C.compression], sort=False):
        answers = (sub.groupby([C.task, C.compressed_answer]).agg(count=(C.count, "sum"),
                                                                  replaced=(C.base_answer, lambda s: len(set(s))))
                   .reset_index().sort_values([C.count, C.task], ascending=[False, True], kind="stable")
                   .head(TOP_TRANSITIONS))
        pairs = sub.sort_values(C.count, ascending=False, kind="stable").head(TOP_TRANSITIONS)
        out.append({"model": model, "compression": comp, "lost": int(sub[C.count].sum()),
                    "answers": table(answers.rename(columns={C.compressed_answer: "compressed model's answer",
                                                             C.count: "lost questions",
                                                             "replaced": "distinct right answers it replaced"})),
                    "pairs": table(pairs[[C.task, C.base_answer, C.compressed_answer, C.count]].rename(
                        columns={C.base_answer: "base model's (right) answer",
                                 C.compressed_answer: "compressed model's answer"}))})
    return out


def errors(r: ReportInputs) -> dict:
    """Per (model, compression): the answers the compressed model gave most often to the
    questions it lost (summed over the base answers they replaced), and the most frequent
    (base answer -> compressed answer) pairs; each remedy's per-question change."""
    transitions = r.results.tables.transitions
    return {"errors": [] if transitions.empty else _errors(transitions),
            "deltas": figure(r.figure("remedy_deltas"), "Per-question change in the right choice's probability per remedy")}


L = LOSS_MODEL.c
ANATOMY_HEAD = {L.coef: "log-odds per unit", L.ci_low: "95% low", L.ci_high: "95% high", L.p_value: "Wald p",
                L.without_popularity: "left out (no popularity)", L.null_kl: "noise null: mean KL matched",
                L.null_draws: "null draws", L.null_events: "lost under the null (mean)",
                L.null_coef: "null log-odds (mean)", L.null_low: "null 2.5%", L.null_high: "null 97.5%"}


def _against_null(g) -> str:
    """Where the observed confidence gradient lies against its noise null's range."""
    if g.coef < g.null_low:
        return "below the null's range (loss falls with confidence more steeply than that noise makes it)"
    if g.coef > g.null_high:
        return "above the null's range (loss falls with confidence less steeply than that noise makes it)"
    return "inside the null's range (a gradient that noise of this size gives)"


def _gradient(g, direct) -> dict:
    """The secondary fit of one compression's ``lost``: its confidence row ``g`` beside the
    noise null, and its popularity row ``direct`` (the direct effect)."""
    estimated = not (isnan(g.coef) or isnan(g.null_coef))
    return {"model": g.model, "compression": g.compression, "coef": fmt(g.coef, "{:+.2f}"),
            "low": fmt(g.ci_low, "{:+.2f}"), "high": fmt(g.ci_high, "{:+.2f}"), "kl": fmt(g.null_kl, "{:.3g}"),
            "null": fmt(g.null_coef, "{:+.2f}"), "null_low": fmt(g.null_low, "{:+.2f}"),
            "null_high": fmt(g.null_high, "{:+.2f}"), "draws": fmt(g.null_draws), "events": g.events,
            "null_events": fmt(g.null_events, "{:.0f}"), "where": _against_null(g) if estimated else "",
            "direct": fmt(direct.coef, "{:+.2f}"), "direct_low": fmt(direct.ci_low, "{:+.2f}"),
            "direct_high": fmt(direct.ci_high, "{:+.2f}"), "note": "" if estimated else g.note}


def _anatomy(loss_model) -> dict:
    loss_model = loss_model.assign(note=loss_model.note.fillna(""))
    frame = loss_model.assign(order=(loss_model.status != PRESPECIFIED).astype(int)).sort_values(
        ["order", L.model, L.compression], kind="stable")
    shown = frame[[L.model, L.compression, L.outcome, L.fit, L.term, L.status, L.n, L.events, L.coef, L.ci_low,
                   L.ci_high, L.odds_ratio, L.p_value, L.without_popularity, *NULL_COLUMNS, L.note]].astype(
        {L.null_draws: float})  # a row without a null: n/a, as its other null columns
    pre = frame[frame.status == PRESPECIFIED]
    secondary = loss_model[(loss_model.outcome == LOST) & (loss_model.fit == SECONDARY)].set_index(
        [L.model, L.compression, L.term])
    return {"table": table(shown.rename(columns=ANATOMY_HEAD), "{:.3g}"), "prespecified": [
        {"model": p.model, "compression": p.compression, "coef": fmt(p.coef, "{:+.2f}"),
         "low": fmt(p.ci_low, "{:+.2f}"), "high": fmt(p.ci_high, "{:+.2f}"), "p": p_value(p.p_value), "n": p.n,
         "events": p.events, "note": p.note} for p in pre.itertuples()],
        "gradients": [_gradient(g, secondary.loc[(g.model, g.compression, POPULARITY)])
                      for g in secondary.xs(CONFIDENCE, level=L.term, drop_level=False).reset_index().itertuples()]}


def anatomy(r: ReportInputs) -> dict:
    """The logistic regressions of the loss (the pre-specified row per compression first) and its figure."""
    loss_model = r.results.tables.loss_model
    return {"anatomy": None if loss_model.empty else _anatomy(loss_model),
            "anatomy_figure": figure(r.figure("loss_anatomy"), "Loss rate against popularity and base confidence")}
