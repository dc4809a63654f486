"""The results tables of README.md and docs/results.md, rendered from the snapshot (:mod:`.snapshot`).

:func:`render_results_readme` and :func:`render_results_doc` read the snapshot's JSON only,
so a page shows no number the snapshot lacks (``tests/test_docs.py`` checks it);
``python -m compress_recover.docs`` writes them between the pages' generated markers.
"""

from __future__ import annotations

from ..runs import BASE
from .snapshot_records import CONFIDENCE, POPULARITY, Anatomy, ModelResults, Snapshot


# ---------------------------------------------------------------- the results tables

def _fmt(value, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}".replace("-", "−")


def _interval(value, bounds, digits: int = 2) -> str:
    if value is None:
        return "—"
    low, high = bounds
    return f"{_fmt(value, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _flow(values: list) -> str:
    """A list of seeds as YAML's flow style writes it (config.yaml's ``recovery.seeds``)."""
    return "[" + ", ".join(map(str, values)) + "]"


def _caption(snap: Snapshot, name: str, model: ModelResults) -> list[str]:
    seeds, q, budget = snap.seeds, snap.questions, snap.budget
    many = len(seeds.recovery_seeds)
    per_method = "one seed per trained method, so each trained row is one trained adapter, not the method" \
        if many == 1 else f"{many} seeds per trained method" + (
            ", so each trained row is about the adapters trained, not the method" if many < 3 else "")
    return [f"Model `{name}`; base = {model.base_precision} (every compression compresses that model "
            f"further). Commit {snap.commit}; seeds: `seed` {seeds.seed}, `data.split.seed` "
            f"{seeds.split_seed}, `recovery.seeds` {_flow(seeds.recovery_seeds)}: "
            f"{per_method}. Pooled test questions: {q.test} (dev: {q.dev}). Training budget "
            f"{budget['steps']} steps × {budget['batch_size']} × {budget['seq_len']} tokens. Holm family: "
            f"{model.family_size()} claims at α = {snap.settings.alpha}."]


def _verdicts(model: ModelResults) -> str:
    return "; ".join(f"`{c}`: **{v}**" for c, v in model.verdicts.items())


def render_results_readme(snap: dict) -> str:
    """One table: every remedy's pooled test accuracy and raw recovery fraction per compression
    (``snap``: the snapshot's JSON)."""
    snap = Snapshot.from_dict(snap)
    lines = []
    for name, model in snap.models.items():
        comps = model.compressions()
        head = ["remedy (side)"]
        for c in comps:
            head += [f"`{c}` accuracy", f"`{c}` raw F [Holm interval], decision"]
        head.append("on the base (format control)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for remedy in model.remedy_names():
            label = "none: the model as compressed (last column: the uncompressed base)" if remedy == BASE else \
                f"`{remedy}` ({model.side(remedy)})"
            cells = [label]
            for c in comps:
                r = model.remedies.get(c, {}).get(remedy)
                cells.append(_fmt(model.accuracy[c].get(remedy), 3))
                cells.append("" if r is None else f"{_interval(r.raw_f, r.raw_f_holm)} {r.decision}")
            cells.append(_fmt(model.accuracy[BASE].get(remedy), 3))
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *_caption(snap, name, model), "",
                  "F = (remedy − compressed) / (base − compressed), on the same questions; a remedy *fails* when the "
                  f"upper end of its raw F's Holm interval is below {snap.settings.min_recovery_fraction}. "
                  f"Verdicts: {_verdicts(model)}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_results_doc(snap: dict) -> str:
    """The results reference: accuracy, recovery fractions and decisions, perplexity, the
    anatomy of the loss (``snap``: the snapshot's JSON)."""
    snap = Snapshot.from_dict(snap)
    lines = []
    for name, model in snap.models.items():
        lines += _accuracy_lines(snap, name, model)
        lines += _decision_lines(name, model)
        lines += _perplexity_lines(name, model)
        lines += _anatomy_lines(snap, name, model)
    return "\n".join(lines).rstrip() + "\n"


def _per_compression(model: ModelResults, values: dict, digits: int) -> list[str]:
    """A compression × remedy table of ``values`` (compression -> remedy -> number)."""
    remedies = model.remedy_names()
    lines = ["| compression | " + " | ".join(f"`{r}`" for r in remedies) + " |", "|" + "---|" * (len(remedies) + 1)]
    for c in [BASE, *model.compressions()]:
        lines.append(f"| `{c}` | " + " | ".join(_fmt(values.get(c, {}).get(r), digits) for r in remedies) + " |")
    return lines


def _accuracy_lines(snap: Snapshot, name: str, model: ModelResults) -> list[str]:
    return [f"### Pooled test accuracy, `{name}`", "", *_caption(snap, name, model), "",
            *_per_compression(model, model.accuracy, 3), "",
            "(Row `none`: the uncompressed base model, as is and after each remedy: the format control.)", ""]


def _decision_lines(name: str, model: ModelResults) -> list[str]:
    lines = [f"### Recovery fractions and decisions, `{name}`", "",
             "Raw F and control-subtracted F_c with their 95% two-level bootstrap intervals (descriptive); the "
             "raw F's interval at its Holm level, which the decision reads.", "",
             "| compression, remedy | side | extra parameters | raw F [95%] | control gain | F_c [95%] "
             "| raw F [Holm] | Holm level | decision |", "|---|---|---|---|---|---|---|---|---|"]
    for c in model.compressions():
        for remedy, r in model.remedies.get(c, {}).items():
            params = model.extra_params.get(c, {}).get(remedy)
            lines.append(f"| `{c}`, `{remedy}` | {model.side(remedy)} | "
                         f"{'—' if params is None else f'{params:,}'} | {_interval(r.raw_f, r.raw_f_95)} | "
                         f"{_fmt(r.control_gain, 3)} | {_interval(r.controlled_f, r.controlled_f_95)} | "
                         f"{_interval(r.raw_f, r.raw_f_holm)} | {_fmt(r.holm_level, 4)} | {r.decision} |")
    return [*lines, "", f"Verdicts: {_verdicts(model)}.", ""]


def _perplexity_lines(name: str, model: ModelResults) -> list[str]:
    return [f"### Held-out word perplexity, `{name}`", "", *_per_compression(model, model.perplexity, 1), ""]


def _anatomy_lines(snap: Snapshot, name: str, model: ModelResults) -> list[str]:
    """Which facts were lost: the pre-specified test, the loss rate per quartile and the
    compressed model's most frequent wrong answers."""
    if not model.anatomy:
        return []
    where = f" (the analysis re-run at {snap.aggregate_commit} on the same evaluations)" \
        if snap.aggregate_commit else ""
    lines = [f"### Which facts were lost, `{name}`", "",
             f"Test questions the base model answered right{where}. Pre-specified: a logistic regression of lost on "
             "the question's popularity percentile within its relation and the base model's confidence (relation "
             "fixed effects, standard errors clustered by fact); the popularity term's log-odds per unit "
             "(least → most popular) and its 95% interval. The rest is descriptive.", "",
             "| compression | lost / at risk | popularity log-odds [95%], p | lost by popularity quartile (Q1 least) "
             "| lost by base-confidence quartile (Q1 least) | most frequent wrong answers (lost questions) |",
             "|---|---|---|---|---|---|"]
    for comp, a in model.anatomy.items():
        lines.append(_anatomy_row(comp, a))
    return [*lines, ""]


def _anatomy_row(comp: str, a: Anatomy) -> str:
    m = a.loss_model
    if m is None:
        counts, test = " / ", f"{_interval(None, (None, None))}, p = {_fmt(None, 2)}"
    else:
        counts = f"{m.events} / {m.n}"
        test = m.note or f"{_interval(m.coef, m.ci_95)}, p = {_fmt(m.p_value, 2)}"
    rates = {axis: " / ".join(_fmt(q.rate, 2) for q in sorted(qs, key=lambda q: q.quartile))
             for axis, qs in (a.lost_rate or {}).items()}
    answers = ", ".join(f"{w.answer} ({w.task}, {w.lost_questions})" for w in a.top_wrong_answers or [])
    return f"| `{comp}` | {counts} | {test} | {rates.get(POPULARITY, '')} | {rates.get(CONFIDENCE, '')} | {answers} |"
