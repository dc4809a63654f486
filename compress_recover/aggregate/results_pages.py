"""The results tables of README.md and docs/results.md, rendered from the snapshot (:mod:`.snapshot`).

:func:`render_results_readme` and :func:`render_results_doc` read the snapshot's JSON only,
so a page shows no number the snapshot lacks (``tests/test_docs.py`` checks it);
``python -m compress_recover.docs`` writes them between the pages' generated markers.
"""

from __future__ import annotations

from ..runs import BASE
from .snapshot_records import CONFIDENCE, POPULARITY, Anatomy, ModelResults, Snapshot

# what a section says when the snapshot's run predates what it shows
PREDATES = "Not in this snapshot: its run predates {what}."


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
    computed = f"; weights computed in {model.compute_dtype}" if model.compute_dtype else ""
    return [f"Model `{name}`; base = {model.base_precision} (every compression compresses that model "
            f"further){computed}. Commit {snap.commit}; seeds: `seed` {seeds.seed}, `data.split.seed` "
            f"{seeds.split_seed}, `recovery.seeds` {_flow(seeds.recovery_seeds)}: "
            f"{per_method}. Pooled test questions: {q.test} (dev: {q.dev}). Training budget "
            f"{budget['steps']} steps × {budget['batch_size']} × {budget['seq_len']} tokens. Holm family: "
            f"{model.family_size()} claims at α = {snap.settings.alpha}.{_units(model)}"]


def _units(model: ModelResults) -> str:
    """The resampling units, as one sentence of the caption ("" for a run that predates them)."""
    u = model.resampling_units
    if u is None:
        return ""
    return (f" Resampling units: the {u.questions} pooled test questions form {u.clusters} clusters (facts and "
            f"shared answers, resampled whole), the largest {u.largest} questions, size-weighted mean size "
            f"{_fmt(u.weighted_mean_size, 2)}.")


def _verdicts(model: ModelResults) -> str:
    return "; ".join(f"`{c}`: **{v}**" for c, v in model.verdicts.items())


def _reference(model: ModelResults, remedy: str) -> str:
    """", reference" for a remedy whose information is the uncompressed model's (outside the family)."""
    return ", reference" if any((per.get(remedy) and per[remedy].reference) for per in model.remedies.values()) \
        else ""


def _references(model: ModelResults) -> str:
    """The references' label per compression (beside the verdict, outside its family), or ""."""
    if not model.references:
        return ""
    return " Beside them, " + "; ".join(f"`{c}`: {label.split(' (reference')[0]}"
                                        for c, label in model.references.items()) + " (references)."


def _one_to_one_scope(model: ModelResults) -> str:
    o = model.one_to_one
    return f"the one-to-one relations alone ({', '.join(f'`{t}`' for t in o.tasks)}; {o.questions} pooled " \
        "test questions)"


def _no_one_to_one(model: ModelResults) -> str:
    """Why a run has no verdict on the one-to-one relations."""
    if not model.one_to_one.tasks:
        return "No verdict on the one-to-one relations alone: no task of this run is one-to-one."
    return f"No verdict on {_one_to_one_scope(model)}: none of them has a base model to decide against."


def _one_to_one(model: ModelResults) -> str:
    """The sensitivity verdict on the one-to-one relations, as one sentence ("" for a run that predates it)."""
    o = model.one_to_one
    if o is None:
        return ""
    if not o.verdicts:
        return f" {_no_one_to_one(model)}"
    each = "; ".join(f"`{c}`: **{v}** ({'the same' if o.same.get(c) else 'differs'})" for c, v in o.verdicts.items())
    return f" Decided again on {_one_to_one_scope(model)}, as a sensitivity check that decides nothing: {each}."


def _content_free_sentence(model: ModelResults) -> str:
    """The models as compressed (and the base) above their content-free baseline, one sentence."""
    cells = {c: per[BASE] for c, per in (model.content_free or {}).items() if BASE in per and per[BASE].n}
    if not cells:
        return ""
    each = "; ".join(f"`{c}`{' (the base)' if c == BASE else ''} {_fmt(x.accuracy, 3)} against "
                     f"{_fmt(x.content_free, 3)} masked, {_interval(x.above, x.above_95, 3)} above it (n = {x.n})"
                     for c, x in cells.items())
    return ("Accuracy beside the content-free baseline (the same questions with the subject masked), with the "
            f"accuracy above it [95%], no remedy: {each}.")


def render_results_readme(snap: dict) -> str:
    """One table: every remedy's pooled test accuracy and raw recovery fraction per compression
    (``snap``: the snapshot's JSON)."""
    snap = Snapshot.from_dict(snap)
    lines = []
    for name, model in snap.models.items():
        comps = model.compressions()
        head = ["remedy (side)"]
        for c in comps:
            head += [f"`{c}` accuracy", f"`{c}` raw F [simultaneous interval], decision"]
        head.append("on the base (format control)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for remedy in model.remedy_names():
            label = "none: the model as compressed (last column: the uncompressed base)" if remedy == BASE else \
                f"`{remedy}` ({model.side(remedy)}{_reference(model, remedy)})"
            cells = [label]
            for c in comps:
                r = model.remedies.get(c, {}).get(remedy)
                cells.append(_fmt(model.accuracy[c].get(remedy), 3))
                cells.append("" if r is None else f"{_interval(r.raw_f, r.raw_f_holm)} {r.decision}")
            cells.append(_fmt(model.accuracy[BASE].get(remedy), 3))
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *_caption(snap, name, model), "",
                  "F = (remedy − compressed) / (base − compressed), on the same questions. Holm decides over the "
                  "claims the verdict's label reads; a remedy *fails* when the upper bounds of its raw and "
                  "control-subtracted F at its Holm level are both below "
                  f"{snap.settings.min_recovery_fraction}. The interval shown is at the Bonferroni level (the "
                  "family's intervals hold together at 95%); a reference's (its information is the uncompressed "
                  "model's) is marginal, outside the family. Every claim is about this compressed checkpoint. "
                  f"Verdicts: {_verdicts(model)}.{_references(model)}{_one_to_one(model)}", ""]
        content_free = _content_free_sentence(model)
        lines += [content_free, ""] if content_free else []
    return "\n".join(lines).rstrip() + "\n"


def _remedy_cost(model: ModelResults, compression: str, remedy: str, budget: dict) -> str:
    params = model.extra_params.get(compression, {}).get(remedy)
    extra = "no extra parameters" if not params else f"{params:,} extra parameters"
    r = model.remedies[compression][remedy]
    return f"{extra}, {budget['steps']} training steps" if r.trained else f"{extra}, training-free"


def _remedy_phrase(model: ModelResults, compression: str, remedy: str, budget: dict) -> str:
    r = model.remedies[compression][remedy]
    needs = "; needs the uncompressed model" if r.reference else ""
    controlled = "" if r.controlled_f is None else \
        f" (less its format control's gain on the base: {_interval(r.controlled_f, r.controlled_f_95)})"
    return (f"`{remedy}` ({r.side} side{needs}; {_remedy_cost(model, compression, remedy, budget)}): raw F "
            f"{_interval(r.raw_f, r.raw_f_95)}{controlled}, {r.decision}")


def _best(model: ModelResults, compression: str, keep) -> str | None:
    """The remedy of ``compression`` with the highest raw F among those ``keep`` accepts (ties:
    the earlier name), or None."""
    found = [(name, r) for name, r in sorted(model.remedies.get(compression, {}).items())
             if keep(r) and r.raw_f is not None]
    return max(found, key=lambda nr: nr[1].raw_f)[0] if found else None


def render_remedy_advice(snap: dict) -> str:
    """"Which remedy first?": per compression of the snapshot's run, the trained and the
    training-free remedy with the highest raw recovery fraction on the test questions (and,
    where that training-free one needs the uncompressed model, the best one that does not),
    each with its interval, decision and cost (``snap``: the snapshot's JSON)."""
    snap = Snapshot.from_dict(snap)
    lines = []
    for name, model in snap.models.items():
        for comp in model.compressions():
            picks = [("trained", _best(model, comp, lambda r: r.trained)),
                     ("training-free", _best(model, comp, lambda r: not r.trained))]
            if picks[1][1] and model.remedies[comp][picks[1][1]].reference:
                picks.append(("training-free without the uncompressed model",
                              _best(model, comp, lambda r: not r.trained and not r.reference)))
            said = [f"{kind}: {_remedy_phrase(model, comp, remedy, snap.budget)}" for kind, remedy in picks if remedy]
            lines.append(f"* **`{comp}`** (model `{name}`): " + "; ".join(said) + ".")
    seeds = snap.seeds.recovery_seeds
    shown = sorted({f"`{r}` on `{c}`" for m in snap.models.values() for c, per in m.remedies.items()
                    for r, rec in per.items() if rec.decision == "recovers"})
    shown_text = (f"shown to win back at least {snap.settings.min_recovery_fraction} of the loss: {', '.join(shown)}"
                  if shown else f"no remedy was shown to win back {snap.settings.min_recovery_fraction} of the loss")
    lines += ["", f"From the default demo's snapshot (commit {snap.commit}; {len(seeds)} seed"
              f"{'s' if len(seeds) != 1 else ''} per trained remedy; 95% intervals, marginal). The pick is the "
              "highest point estimate of F = (remedy − compressed) / (base − compressed) within each kind: an "
              "order to try them in on a model like this one, not a ranking of methods (a claim about a method "
              f"needs seeds, and a pick's interval may overlap the next one's); {shown_text}. Before trusting a remedy on "
              "your model, run it with 3 or more `recovery.seeds` and read its decision in the report.", ""]
    return "\n".join(lines)


def render_results_doc(snap: dict) -> str:
    """The results reference: accuracy and the content-free baseline, recovery fractions,
    decisions and the one-to-one verdict, perplexity, the anatomy of the loss and the distance
    from the base model (``snap``: the snapshot's JSON)."""
    snap = Snapshot.from_dict(snap)
    lines = []
    for name, model in snap.models.items():
        lines += _accuracy_lines(snap, name, model)
        lines += _content_free_lines(name, model)
        lines += _decision_lines(name, model)
        lines += _perplexity_lines(name, model)
        lines += _anatomy_lines(snap, name, model)
        lines += _distance_lines(name, model)
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
             "Raw F and control-subtracted F_c with their 95% intervals (descriptive); the raw F's interval "
             "shown with the decision (simultaneous, at the Bonferroni level alpha / m; a reference's marginal), "
             "the Holm level the decision was read at, and the share of the lost questions won back against the "
             "share of the never-known ones the remedy gets right.", "",
             "| compression, remedy | side | extra parameters | raw F [95%] | control gain | F_c [95%] "
             "| raw F [simultaneous] | Holm level | won back / never known | decision |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in model.compressions():
        for remedy, r in model.remedies.get(c, {}).items():
            params = model.extra_params.get(c, {}).get(remedy)
            lines.append(f"| `{c}`, `{remedy}` | {model.side(remedy)} | "
                         f"{'—' if params is None else f'{params:,}'} | {_interval(r.raw_f, r.raw_f_95)} | "
                         f"{_fmt(r.control_gain, 3)} | {_interval(r.controlled_f, r.controlled_f_95)} | "
                         f"{_interval(r.raw_f, r.raw_f_holm)} | {_fmt(r.holm_level, 4)} | "
                         f"{_fmt(r.won_back, 2)} / {_fmt(r.never_known_right, 2)} | {r.decision}"
                         f"{' (reference)' if r.reference else ''} |")
    return [*lines, "", f"Verdicts: {_verdicts(model)}.", "", *_one_to_one_lines(model)]


def _cells(model: ModelResults, values: dict) -> list[tuple[str, str, object]]:
    """(compression, remedy, value) of ``values`` (compression -> remedy -> value), the base
    first and remedies in the accuracy table's order."""
    order = {r: i for i, r in enumerate(model.remedy_names())}
    comps = [BASE, *model.compressions()]
    comps += [c for c in values if c not in comps]
    return [(c, r, values[c][r]) for c in comps if c in values
            for r in sorted(values[c], key=lambda r: (order.get(r, len(order)), r))]


def _content_free_lines(name: str, model: ModelResults) -> list[str]:
    """Each model's accuracy beside its content-free baseline (pooled test questions)."""
    title = [f"### Pooled test accuracy above the content-free baseline, `{name}`", ""]
    if model.content_free is None:
        return [*title, PREDATES.format(what="the content-free baseline"), ""]
    if not model.content_free:
        return [*title, "This run evaluated no content-free variant (`data.content_free_mask`).", ""]
    lines = [*title,
             "Every model also answered each question with its subject masked (same template, choices and answer): "
             "its content-free accuracy is what its prior alone scores. On the pooled test questions that have such "
             "a twin (n): the accuracy, the content-free accuracy, the accuracy above it with its 95% interval "
             "(clusters of facts and shared right answers resampled, stratified by task; descriptive) and the share "
             "of answers equal to the masked one "
             "(answered from the prior: right or wrong, no evidence that the model knows the fact).", "",
             "| compression, remedy | n | accuracy | content-free accuracy | above content-free [95%] "
             "| answered from the prior |", "|---|---|---|---|---|---|"]
    for c, r, x in _cells(model, model.content_free):
        lines.append(f"| `{c}`, `{r}` | {x.n} | {_fmt(x.accuracy, 3)} | {_fmt(x.content_free, 3)} | "
                     f"{_interval(x.above, x.above_95, 3)} | {_fmt(x.from_prior, 3)} |")
    return [*lines, ""]


def _one_to_one_lines(model: ModelResults) -> list[str]:
    """The verdict decided again on the one-to-one relations alone, beside the verdict."""
    if model.one_to_one is None:
        return [PREDATES.format(what="the verdict on the one-to-one relations alone"), ""]
    if not model.one_to_one.verdicts:
        return [_no_one_to_one(model), ""]
    lines = [f"Decided again on {_one_to_one_scope(model)}: the relations where at most 5% of the questions "
             "share a right answer, those few left out, with the same rule, thresholds and kind of Holm family. "
             "A sensitivity check that decides nothing: where it differs, the verdict rests partly on questions "
             "that share a right answer.", "",
             "| compression | verdict | one-to-one relations alone | the same |", "|---|---|---|---|"]
    o = model.one_to_one
    for c, v in o.verdicts.items():
        lines.append(f"| `{c}` | {model.verdicts.get(c, '—')} | {v} | {'yes' if o.same.get(c) else 'no'} |")
    return [*lines, ""]


def _distance_lines(name: str, model: ModelResults) -> list[str]:
    """Each run's KL from the base model and how well it tells the lost questions."""
    title = [f"### Distance from the base model, `{name}`", ""]
    if model.distance is None:
        return [*title, PREDATES.format(what="the distance from the base model"), ""]
    if not model.distance:
        return [*title, "No run of this model has a base model to compare with.", ""]
    lines = [*title,
             "Each run of the final budget against the base model, pooled test questions: KL(base ‖ run) over the "
             "question's choices, its mean and 90th percentile; of the questions the base model answers right (at "
             "risk), those the run loses, and the AUC with which the KL tells them from the kept ones (0.5: no "
             "better than chance; 1: every lost question moved further than every kept one) with its 95% interval "
             "(facts and shared answers resampled; descriptive). One row per seed: a trained remedy's seeds are "
             "not averaged. Rows of `none`: a remedy on the uncompressed base (the format control).", "",
             "| compression, remedy | seed | mean KL | KL p90 | lost / at risk | AUC lost [95%] |",
             "|---|---|---|---|---|---|"]
    for c, r, runs in _cells(model, model.distance):
        for d in runs:
            lines.append(f"| `{c}`, `{r}` | {'—' if d.seed is None else d.seed} | {_fmt(d.kl_mean, 3)} | "
                         f"{_fmt(d.kl_p90, 3)} | {'—' if d.lost is None else f'{d.lost} / {d.at_risk}'} | "
                         f"{_interval(d.auc_lost, d.auc_95)} |")
    return [*lines, ""]


def _perplexity_lines(name: str, model: ModelResults) -> list[str]:
    return [f"### Held-out word perplexity, `{name}`", "", *_per_compression(model, model.perplexity, 1), ""]


def _anatomy_lines(snap: Snapshot, name: str, model: ModelResults) -> list[str]:
    """Which facts were lost: the pre-specified test (popularity's total effect), the
    secondary confidence gradient beside its noise null, the loss rate per quartile and the
    compressed model's most frequent wrong answers. A snapshot whose run predates the
    total-effect test says that its popularity term is the direct effect, and has no null."""
    if not model.anatomy:
        return []
    where = f" (the analysis re-run at {snap.aggregate_commit} on the same evaluations)" \
        if snap.aggregate_commit else ""
    total = any(a.loss_model is not None and a.loss_model.fit for a in model.anatomy.values())
    method = (
        "Pre-specified: a logistic regression of lost on the question's popularity percentile within its relation "
        "(relation fixed effects, standard errors clustered by fact and shared answer); the popularity term's "
        "log-odds per unit (least → most popular) and its 95% interval: popularity's total effect, base confidence "
        "not held fixed. Secondary (descriptive): the same with the logit of the base model's confidence added; its "
        "log-odds per unit of that logit beside what noise on the base model's outputs of the compression's mean "
        "KL gives (the null's mean and 95% range over its draws; a perturbation of outputs, not weights). The rest "
        "is descriptive." if total else
        "A logistic regression of lost on the question's popularity percentile within its relation and the base "
        "model's confidence (relation fixed effects, standard errors clustered by fact); the popularity term's "
        "log-odds per unit (least → most popular) and its 95% interval: popularity's direct effect at equal "
        "confidence, not its total effect (this run predates the total-effect test). The rest is descriptive.")
    head = ["compression", "lost / at risk", "popularity log-odds [95%], p",
            *(["confidence log-odds [95%] (secondary) · noise null [95%]"] if total else []),
            "lost by popularity quartile (Q1 least)", "lost by base-confidence quartile (Q1 least)",
            "most frequent wrong answers (lost questions)"]
    lines = [f"### Which facts were lost, `{name}`", "",
             f"Test questions the base model answered right{where}. {method}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for comp, a in model.anatomy.items():
        lines.append(_anatomy_row(comp, a, total))
    return [*lines, ""]


def _gradient_cell(a: Anatomy) -> str:
    """The secondary fit's confidence term and its noise null, or why either is missing."""
    g = a.confidence_gradient
    if g is None:
        return "—"
    if g.coef is None or g.null_coef is None:
        return g.note or "—"
    return f"{_interval(g.coef, g.ci_95)} · {_interval(g.null_coef, g.null_95)}"


def _anatomy_row(comp: str, a: Anatomy, total: bool) -> str:
    m = a.loss_model
    if m is None:
        counts, test = " / ", f"{_interval(None, (None, None))}, p = {_fmt(None, 2)}"
    else:
        counts = f"{m.events} / {m.n}"
        test = m.note or f"{_interval(m.coef, m.ci_95)}, p = {_fmt(m.p_value, 2)}"
    rates = {axis: " / ".join(_fmt(q.rate, 2) for q in sorted(qs, key=lambda q: q.quartile))
             for axis, qs in (a.lost_rate or {}).items()}
    answers = ", ".join(f"{w.answer} ({w.task}, {w.lost_questions})" for w in a.top_wrong_answers or [])
    cells = [f"`{comp}`", counts, test, *([_gradient_cell(a)] if total else []), rates.get(POPULARITY, ""),
             rates.get(CONFIDENCE, ""), answers]
    return "| " + " | ".join(cells) + " |"

