"""Rule ``report``: ``results/report.html``, one self-contained page (images inlined),
the verdict's rule and the verdict first (with the evidence per method: intervals at the
Holm level, p-values, seeds, format control, power), the dev/test split it rests on, then
tables (mean ± sd over seeds, the base model first, its precision stated beside every
"base"; knowledge accuracy on the test questions, the final budget's runs only), the
budget curves, the collateral damage, pictures, costs, the leak filter's counts (corpus
and generated text), and the exact config and library versions that produced it.

No value is left as a bare dash: a missing one says why ("undefined (no damage)" for a
recovery fraction where compression lost nothing, "n/a (no control run)", "failed: <why>"
for a run whose recovery training failed), and "n/a" where no reason is known.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

from ..io import atomic_file, read_json
from .figures import FIGURES
from .stats import ALL_KNOWLEDGE, FAILED_RUN_COLUMNS, budget_steps, failed_groups, failure_text, seeds_text
from .tables import (BASE, CELL, PPL_METRIC, base_first_order, base_precisions, headline_summary, mean_sd,
                     perplexity_recovery, read_csv_or_empty)

SECTION_FIGURES = {"budget_curves"}  # figures shown in their own section, not under "Pictures"

CSS = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.82em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
.verdict{border-left:6px solid #444;padding:0.6em 1em;margin:0.8em 0;background:#fafafa}
.displaced{border-color:#2a7}.forgotten{border-color:#c33}.inconclusive{border-color:#d90}
.no{border-color:#999}.not{border-color:#536}.rule{background:#f4f4fb;padding:0.6em 1em;font-size:0.9em}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f6f6f6;padding:0.8em;overflow:auto;
font-size:0.8em}.gap{color:#b00;font-weight:bold}
"""


def _number(v):
    """A float from a value that may be a JSON stand-in for an infinity ("inf") or null."""
    if v is None:
        return float("nan")
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    return v


NO_DAMAGE = "undefined (no damage)"  # a recovery fraction where compression lost nothing
NO_CONTROL = "n/a (no control run)"  # a control gain where the uncompressed model was not recovered
UNDEFINED = "n/a"  # any other missing value


def _isnan(v) -> bool:
    v = _number(v)
    return isinstance(v, float) and math.isnan(v)


def _fmt(v, floatfmt: str = "{:.3f}") -> str:
    """A cell's text: a number in ``floatfmt``, "n/a" for a NaN (callers that know why a value
    is missing say it instead, :func:`_or_why`), ∞ for an infinity, else the escaped text."""
    v = _number(v)
    if isinstance(v, float):
        if math.isnan(v):
            return UNDEFINED
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return floatfmt.format(v)
    return html.escape(str(v))


def _or_why(v, why: str, floatfmt: str = "{:.2f}") -> str:
    """``v`` formatted, or ``why`` it is missing where it is NaN (plain text: a table cell, escaped when drawn)."""
    return why if _isnan(v) else _fmt(v, floatfmt)


def _why_undefined(base_acc, compressed_acc, has_control: bool = True) -> str:
    """Why a recovery fraction of a model with these accuracies is NaN: no damage to recover
    (the fraction's denominator), no control run (a control-subtracted fraction), else n/a."""
    if _number(base_acc) - _number(compressed_acc) <= 0:
        return NO_DAMAGE
    return UNDEFINED if has_control else NO_CONTROL


def _failed(why: str) -> str:
    """The text of a cell whose run(s) failed to train."""
    return f"failed: {why}"


def _table_html(frame, floatfmt: str = "{:.3f}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v, floatfmt)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _p(v) -> str:
    """A bootstrap p-value: 0 means no resample crossed, shown as "< 1/B" (B: the resamples, stated
    with the settings), not as a p of exactly 0."""
    v = _number(v)
    return "< 1/B" if isinstance(v, float) and v == 0 else _fmt(v, "{:.3g}")


def _bracket(low, high, fmt: str = "{:.2f}") -> str:
    """"[low, high]"."""
    return f"[{_fmt(low, fmt)}, {_fmt(high, fmt)}]"


def _with_interval(points, lows, highs, fmt: str = "{:.3f}", whys=None) -> list[str]:
    """"point [low, high]" per row of three columns; a NaN point shows its row's ``whys``
    (default n/a), without the interval when that is NaN too."""
    whys = whys or [UNDEFINED] * len(points)
    return [_or_why(p, why, fmt) + ("" if _isnan(lo) and _isnan(hi) else f" {_bracket(lo, hi, fmt)}")
            for p, lo, hi, why in zip(points, lows, highs, whys, strict=True)]


def _pm(mean, sd, fmt: str = "{:.3f}", why: str = UNDEFINED) -> str:
    """"mean ± sd" (just the mean with one seed); ``why`` where the mean is NaN (plain text)."""
    if _isnan(mean):
        return why
    sd = _number(sd)
    return _fmt(mean, fmt) + ("" if sd != sd else f" ± {_fmt(sd, fmt)}")


def _img(path: str, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def base_label(model: str, precisions: dict[str, str]) -> str:
    """"base (<precision>)" for ``model``, or plain "base" where the summary states none."""
    precision = precisions.get(model)
    return f"base ({precision})" if precision else "base"


# --------------------------------------------------------------------------- verdict

def _margin_text(m: dict) -> str:
    margin = next((t for t in m.get("margin_test", []) if t["metric"] == "margin"), None)
    if not margin:
        return "n/a (no margin test)"
    return (f"{_fmt(margin['mean_difference'], '{:+.3f}')} {_bracket(margin['ci_low'], margin['ci_high'], '{:.3f}')}"
            f", p = {_fmt(margin['p_value'], '{:.3g}')}")


def _power_needed(m: dict) -> str:
    """What would decide an undecided method (its power estimate); decided ones need nothing."""
    power = m.get("power") or {}
    if not power:
        return "not needed (decided)"
    q, s = _number(power.get("questions_needed")), _number(power.get("seeds_needed"))
    k = _number(power.get("scale_both"))
    return "; ".join(x for x in (
        None if q != q else f"{_fmt(q, '{:,.0f}')} questions",
        None if s != s else f"{_fmt(s, '{:,.0f}')} seeds",
        None if k != k or not (math.isinf(q) and math.isinf(s)) else f"or {k:g}× both") if x) \
        or html.escape(power.get("note", "no estimate"))


def _seeds_cell(m: dict) -> str:
    seeds = ", ".join(str(s) for s in m["seeds"]) or "none"
    failed = ", ".join(str(s) for s in m.get("failed_seeds") or [])
    return seeds + (f" (failed to train: {failed})" if failed else "")


def _control_text(m: dict) -> str:
    if not m["control_seeds"]:
        return NO_CONTROL
    return f"{_fmt(m['control_gain'], '{:+.3f}')} (seed {', '.join(map(str, m['control_seeds']))})"


def _failed_method_row(m: dict) -> str:
    """A method whose every run failed to train: "failed: why" across its evidence."""
    cells = [html.escape(m["recovery"]), html.escape(m["side"]), html.escape(", ".join(map(str, m["seeds"])))]
    return ("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td colspan='{len(METHOD_HEAD) - len(cells)}'>"
            f"<b>{html.escape(_failed(m['failure']))}</b> (not tried: no adapter, outside the Holm family)</td></tr>")


def _method_row(m: dict) -> str:
    if m.get("status") == "failed":
        return _failed_method_row(m)
    mcnemar = ", ".join(f"{t['b_seed'] or 'no seed'}: {_fmt(t['p_value'], '{:.3g}')}" for t in m.get("mcnemar", []))
    sd = m["controlled_sd" if m["fraction_used"] == "controlled" else "fraction_sd"]
    cells = [html.escape(m["recovery"]), html.escape(m["side"]), html.escape(_seeds_cell(m)),
             _pm(m["recovered_acc"], m["recovered_sd"]), html.escape(_control_text(m)), html.escape(m["fraction_used"]),
             html.escape(_pm(m["fraction"], sd, "{:.2f}", _why_undefined(m["base_acc"], m["compressed_acc"]))),
             _bracket(m["ci_low"], m["ci_high"]), f"{_fmt(m['confidence'], '{:.2%}')}",
             _fmt(m["holm_level"], "{:.4f}"), _p(m["p_value"]), _p(m["p_holm"]),
             f"<b>{html.escape(m['decision'])}</b>", _margin_text(m), mcnemar or "n/a (no McNemar test)",
             _power_needed(m)]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


METHOD_HEAD = ["recovery", "side", "training seed(s)", "acc (mean ± sd)", "control gain", "fraction used", "F (± sd over seeds)",
               "interval", "confidence 1 − α_i", "Holm α_i", "p", "Holm p", "decision",
               "margin Δ vs compressed [95% t], sign-flip p", "McNemar p per seed", "to decide at power"]


def _noninferiority_html(tests: list[dict], why: str = UNDEFINED) -> str:
    """The non-inferiority tests; ``why``: why a difference of fractions is NaN (no damage)."""
    if not tests:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(t['input'])} vs {html.escape(t['parameters'])}</td><td>{t['fractions']}</td>"
        f"<td>{html.escape(_or_why(t['difference'], why, '{:+.2f}'))}</td><td>{_fmt(t['lower_bound'], '{:+.2f}')}</td>"
        f"<td>{_fmt(t['confidence'], '{:.2%}')}</td><td>−{t['margin']}</td><td>{_p(t['p_value'])}</td>"
        f"<td>{_p(t['p_holm'])}</td><td><b>{t['result']}</b></td></tr>" for t in tests)
    return ("<table><thead><tr><th>input vs parameters</th><th>fractions</th><th>F_input − F_parameters</th>"
            "<th>lower bound</th><th>confidence</th><th>margin</th><th>p</th><th>Holm p</th><th>result</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def _verdict_html(v: dict, precisions: dict[str, str]) -> str:
    e = v["evidence"]
    base = base_label(v["model"], precisions)
    base_cap = base[:1].upper() + base[1:]
    ni = _noninferiority_html(e.get("noninferiority", []), _why_undefined(e["base_acc"], e["compressed_acc"]))
    rows = "".join(_method_row(m) for m in e["methods"])
    head = "".join(f"<th>{h}</th>" for h in METHOD_HEAD)
    methods = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" if rows else ""
    return (f'<div class="verdict {v["verdict"].split()[0]}"><h3>{html.escape(v["model"])} / '
            f'{html.escape(v["compression"])}: {html.escape(v["verdict"])}</h3>'
            f'<p>{html.escape(v["reason"])}.</p>'
            f'<p>{html.escape(base_cap)} {_fmt(e["base_acc"])} → compressed {_fmt(e["compressed_acc"])} '
            f'(further compression of that {html.escape(base)}) on {e["n"]} pooled knowledge questions '
            f'({e["lost_only"]} lost, {e["gained_only"]} gained): damage {_fmt(e["damage"])}, one-sided upper bound '
            f'{_fmt(e["damage_upper"])} at {_fmt(e["confidence"], "{:.2%}")} against min_damage {e["min_damage"]} '
            f'(no-loss test: Holm p = {_p(e["p_holm"])}).</p>{methods}{ni}'
            '</div>')


def _rule_html(verdict: dict, precisions: dict[str, str]) -> str:
    t = verdict["thresholds"]
    seeds = ", ".join(map(str, verdict.get("seeds", []))) or "none"
    bases = "; ".join(f"{html.escape(m)}: {html.escape(base_label(m, precisions))}" for m in sorted(precisions))
    iters = verdict.get("bootstrap_iters", {})
    budget = verdict["budget"]
    steps = budget_steps(budget)
    shown = f"{steps[-1]} steps" + (f" (final; budget curve at {', '.join(map(str, steps[:-1]))})"
                                    if len(steps) > 1 else "")
    return (f"<div class='rule'><p><b>Rule.</b> {html.escape(verdict['rule'])}</p>"
            f"<p>{html.escape(verdict.get('noninferiority_rule', ''))}</p>"
            f"<p>Settings (config.yaml <code>report</code>): alpha = {t['alpha']}, min_recovery_fraction = "
            f"{t['min_recovery_fraction']}, min_damage = {t['min_damage']}, noninferiority_margin = "
            f"{t['noninferiority_margin']}, power = {t['power']}; bootstrap resamples (B): {iters.get('pooled', '?')} "
            f"(pooled task), {iters.get('per_task', '?')} (per task); seeds: {seeds}. Recovery budget: "
            f"{shown} × {budget['batch_size']} × {budget['seq_len']} "
            f"tokens.{' Base models: ' + bases + '.' if bases else ''}</p></div>")


# --------------------------------------------------------------------------- tables

def _column_label(cell: tuple, several_models: bool, precisions: dict[str, str]) -> str:
    model, comp, rec = cell
    label = f"{comp}/{rec}"
    if comp == BASE and rec == BASE:
        label += f" = {base_label(model, precisions)}"
    return f"{model}/{label}" if several_models else label


def _test_rows(test_accuracy):
    """The analysis's accuracy.csv (test questions) as mean_sd rows, per task then pooled."""
    if test_accuracy.empty:
        return test_accuracy
    know = test_accuracy.rename(columns={"acc": "value", "acc_sd": "value_sd"})
    know = know.sort_values("task", key=lambda t: t == ALL_KNOWLEDGE, kind="stable")
    names = ["all knowledge (pooled)" if t == ALL_KNOWLEDGE else t for t in know.task]
    return know.assign(task=[f"{t}, test questions" for t in names])[[*CELL, "task", "value", "value_sd", "seeds"]]


def _accuracy_cell(sub, cell: tuple, fmt: str, failures: dict) -> str:
    """One model's mean ± sd on one task; "failed: why" when every run of it failed to train,
    the failed seeds noted when some did; n/a when it has no value for another reason."""
    runs = failures.get(cell, [])
    if cell not in sub.index:
        return _failed(failure_text(runs)) if runs else UNDEFINED
    return _pm(sub.value[cell], sub.value_sd[cell], fmt) + (f" ({seeds_text(runs)} failed to train)" if runs else "")


def accuracy_pivot(summary, knowledge_tasks: list[str], precisions: dict[str, str], test_accuracy,
                   failures: dict | None = None):
    """Tasks × models, mean ± sd over seeds at the final budget: knowledge accuracy on the
    test questions per task and pooled (``test_accuracy``: the analysis's accuracy.csv),
    every other task's accuracy as lm-eval reports it, and the held-out perplexity; the
    base model's column first. ``failures``: (model, compression, recovery) -> its runs that
    failed to train at the final budget (:func:`.stats.failed_groups`)."""
    import pandas as pd

    other = mean_sd(summary[(summary.metric == "acc") & (summary.subtask == summary.task)
                            & ~summary.task.isin(knowledge_tasks)])
    ppl = mean_sd(summary[summary.metric == PPL_METRIC])
    ppl["task"] = f"held-out {PPL_METRIC}"
    frames = [f for f in (_test_rows(test_accuracy), other, ppl) if len(f)]
    cells = pd.concat(frames, ignore_index=True) if frames else other
    failures = failures or {}
    order = base_first_order([*cells[CELL].itertuples(index=False), *failures])
    several = cells.model.nunique() > 1
    table = {}
    for task in dict.fromkeys(cells.task):
        sub = cells[cells.task == task].set_index(CELL)
        fmt = "{:.2f}" if task.startswith("held-out") else "{:.3f}"
        table[task] = {_column_label(c, several, precisions): _accuracy_cell(sub, c, fmt, failures) for c in order}
    out = pd.DataFrame(table).T
    out.index.name = "task"
    return out.reset_index()


def _interval_or_why(low, high, why: str) -> str:
    """"[low, high]", or ``why`` the interval is missing where both ends are NaN."""
    return why if _isnan(low) and _isnan(high) else _bracket(low, high)


def _fraction_cells(r) -> dict:
    """The recovery fraction columns of one row of recovery_fraction.csv, as text: a NaN says
    why (no damage, no control run)."""
    raw = _why_undefined(r.base_acc, r.compressed_acc)
    controlled = _why_undefined(r.base_acc, r.compressed_acc, not _isnan(r.control_gain))
    return {"recovery fraction (± sd)": _pm(r.recovery_fraction, r.fraction_sd, "{:.2f}", raw),
            "95% interval": _interval_or_why(r.ci_low, r.ci_high, raw),
            "control_gain": _or_why(r.control_gain, NO_CONTROL, "{:.3f}"),
            "controlled (± sd)": _pm(r.controlled_fraction, r.controlled_sd, "{:.2f}", controlled),
            "controlled 95% interval": _interval_or_why(r.controlled_ci_low, r.controlled_ci_high, controlled)}


def _perplexity_cells(r) -> dict:
    """Perplexity and its recovery fraction (undefined where compression did not raise perplexity)."""
    no_damage = _number(r.perplexity_compressed) - _number(r.perplexity_base) <= 0
    return {"perplexity": _or_why(r.perplexity, UNDEFINED, "{:.3f}"),
            "perplexity_recovery": _or_why(r.perplexity_recovery, NO_DAMAGE if no_damage else UNDEFINED, "{:.3f}")}


FRACTION_COLUMNS = ["recovery fraction (± sd)", "95% interval", "control_gain", "controlled (± sd)",
                    "controlled 95% interval"]


def _fraction_table(fractions, ppl_rec, failures: dict):
    """The pooled recovery fractions per recovered model (and perplexity's, when measured); a
    model whose every run failed to train says so in every cell, one with failed seeds beside
    its seed count."""
    import pandas as pd

    know = fractions[fractions.task == ALL_KNOWLEDGE]
    if len(ppl_rec):
        know = know.merge(ppl_rec, on=CELL, how="left")
    rows = []
    for r in know.itertuples(index=False):
        runs = failures.get((r.model, r.compression, r.recovery), [])
        rows.append({"model": r.model, "compression": r.compression, "recovery": r.recovery,
                     "seeds": f"{r.seeds}" + (f" ({seeds_text(runs)} failed to train)" if runs else ""),
                     **_fraction_cells(r), **(_perplexity_cells(r) if len(ppl_rec) else {})})
    shown = {(r["model"], r["compression"], r["recovery"]) for r in rows}
    columns = [*CELL, "seeds", *FRACTION_COLUMNS, *(["perplexity", "perplexity_recovery"] if len(ppl_rec) else [])]
    rows.extend({**dict.fromkeys(columns, _failed(failure_text(runs))), **dict(zip(CELL, key, strict=True)),
                 "seeds": f"0 ({seeds_text(runs)} failed to train)"}
                for key, runs in failures.items() if BASE not in key[1:] and key not in shown)
    return pd.DataFrame(rows, columns=columns)


def _gap_note(fractions, ppl_rec) -> str:
    if not len(ppl_rec):
        return ""
    know = fractions[fractions.task == ALL_KNOWLEDGE].merge(ppl_rec, on=CELL, how="inner")
    big = know[(know.perplexity_recovery - know.recovery_fraction) > 0.3]
    if not len(big):
        return ""
    return ('<p class="gap">Perplexity hides knowledge loss here: ' + "; ".join(
        f"{r.compression}/{r.recovery} recovers {r.perplexity_recovery:.0%} of the perplexity damage but "
        f"{r.recovery_fraction:.0%} of the knowledge damage" for r in big.itertuples()) + ".</p>")


COST_HEAD = ["extra params", "extra bytes", "training s", "disk MB", "batch latency ms", "per-token ms"]


def _cost_cells(cost: dict) -> dict:
    """The cost table's measurements of one cost.json; "failed: why" in each for a model whose
    recovery training failed (nothing was measured)."""
    if cost.get("status") == "failed":
        return dict.fromkeys(COST_HEAD, _failed(cost["failure"]))
    values = (cost["extra_params"], cost["extra_bytes"], cost["training_time_s"], cost["disk_bytes"] / 1e6,
              cost["latency"]["batch"]["median_s"] * 1000, cost["latency"]["generation"]["per_token_s"] * 1000)
    return dict(zip(COST_HEAD, values, strict=True))


def _cost_table(cost_files: list[str]):
    import pandas as pd

    costs = [read_json(f) for f in cost_files]
    if not costs:
        return pd.DataFrame(), {}
    table = pd.DataFrame([{**{k: c[k] for k in CELL}, "run": c.get("run", c["recovery"]), **_cost_cells(c)}
                          for c in costs], columns=[*CELL, "run", *COST_HEAD])
    order = {c: i for i, c in enumerate(base_first_order(table[CELL].itertuples(index=False)))}
    table = table.assign(_o=[order[tuple(c)] for c in table[CELL].itertuples(index=False)])
    table = table.sort_values(["_o", "run"], kind="stable").drop(columns="_o")
    return table, costs[0]["library_versions"]


def _section(title: str, frame, note: str = "", floatfmt: str = "{:.3f}") -> list[str]:
    if frame is None or frame.empty:
        return []
    return [f"<h2>{title}</h2>", note, _table_html(frame, floatfmt)]


# --------------------------------------------------------------------------- split, budgets, collateral, data

def _counts(values, fmt: str = "{:,.0f}") -> list[str]:
    return [_fmt(float(v), fmt) for v in values]


def _checkpoint_table(frame, extra: tuple[str, ...] = ()):
    """Rows of dev_accuracy.csv or budget_curve.csv: accuracy and the raw and controlled
    recovery fractions, each with its 95% interval (a NaN fraction says why)."""
    if frame.empty:
        return frame
    out = frame[["model", "compression", "recovery"]].copy()
    out["steps"], out["tokens"], out["runs"] = _counts(frame.steps), _counts(frame.tokens), _counts(frame.seeds)
    out["questions"] = _counts(frame.n)
    out["accuracy [95%]"] = _with_interval(frame.recovered_acc, frame.acc_ci_low, frame.acc_ci_high)
    accuracies = list(zip(frame.base_acc, frame.compressed_acc, strict=True))
    raw = [_why_undefined(b, c) for b, c in accuracies]
    controlled = [_why_undefined(b, c, str(h) == "True") for (b, c), h in zip(accuracies, frame.has_control,
                                                                               strict=True)]
    out["F raw [95%]"] = _with_interval(frame.recovery_fraction, frame.ci_low, frame.ci_high, "{:.2f}", raw)
    out["F controlled [95%]"] = _with_interval(frame.controlled_fraction, frame.controlled_ci_low,
                                               frame.controlled_ci_high, "{:.2f}", controlled)
    for column in extra:
        out[column] = frame[column]
    return out


def _split_html(verdict: dict, dev) -> list[str]:
    import pandas as pd

    split = verdict.get("split")
    if not split:
        return []
    held = split.get("held_out_tasks", [])
    counts = [{"task": t, "dev questions": c["dev"], "test questions": c["test"],
               "held out": "yes" if t in held else ""} for t, c in split["counts"].items()]
    rule = (
        f"<p>Per knowledge task (stratified), the questions are ranked by the sha256 of "
        f"<code>seed:task:doc_id</code> (split seed {split['seed']}) and the round({split['dev_fraction']} × n) "
        "lowest form the <b>dev</b> set, the rest the <b>test</b> set: deterministic, and a task's split does "
        "not move when tasks are added. Anything chosen by looking at results (a recovery recipe, objective, "
        "budget or learning rate) is to be chosen on the dev questions: the table below ranks each recovery "
        "group among those of its method on the same compressed model at the same steps by dev accuracy (ties: "
        "config order). The verdict, its Holm family and every headline table (accuracy, recovery fractions, "
        "decisions, non-inferiority, paired tests, flips, prompt-pool ablation, budget curves, collateral damage) "
        "use the <b>test</b> questions only. Held-out tasks "
        f"({html.escape(', '.join(held)) or 'none'}) have every question in test and enter no choice; the "
        "collateral-damage section shows what recovery does to them. Every question's split: "
        "<code>analysis/split.csv</code>.</p>")
    dev_part = (["<h3>Dev questions (for choosing; no verdict, no Holm)</h3>",
                 "<p>Pooled dev questions of the tasks not held out; 95% two-level bootstrap intervals, "
                 "descriptive.</p>", _table_html(_checkpoint_table(dev, ("rank",)))]
                if len(dev) else ["<p>No dev questions in this run (dev_fraction 0).</p>"])
    return ["<h2 id='split'>Dev/test split</h2>", rule, _table_html(pd.DataFrame(counts)), *dev_part]


def _budget_html(curve, figure: str) -> list[str]:
    if curve.empty:
        return []
    return ["<h2 id='budget'>Budget curves</h2>",
            "<p>Each recovery trains once to the final budget and is evaluated at every step listed in "
            "<code>recovery.budget.steps</code>. The learning rate is constant (AdamW, no schedule), so the "
            "checkpoint at step k equals a run trained for k steps. Pooled test questions; steps 0 is the "
            "compressed model (recovery fraction 0). Accuracy (mean over seeds) and recovery fractions (raw, and "
            "control-subtracted where the uncompressed model was recovered to the same steps) with 95% two-level "
            "bootstrap intervals (seeds, then questions): descriptive, not corrected for multiplicity; only the "
            "final budget enters the verdict.</p>",
            _img(figure, "budget curves"), _table_html(_checkpoint_table(curve))]


def _collateral_table(frame):
    if frame.empty:
        return frame
    out = frame[["model", "compression", "recovery", "task"]].copy()
    out["held out"] = ["yes" if str(h) == "True" else "" for h in frame.held_out]
    out["questions"], out["runs"] = _counts(frame.n), _counts(frame.seeds)
    out["before recovery"], out["after recovery"] = frame.compressed_acc, frame.recovered_acc
    out["newly broken"] = _counts(frame.newly_broken, "{:.1f}")
    out["newly fixed"] = _counts(frame.newly_fixed, "{:.1f}")
    out["Δ accuracy [95%]"] = _with_interval(frame.difference, frame.ci_low, frame.ci_high)
    return out


COLLATERAL_NOTE = (
    "<p>Per knowledge task, on its test questions, each recovered model at the final budget against the same model "
    "before recovery (the compressed model; on compression none the base model: the format control): newly "
    "broken = right before recovery and wrong after, newly fixed = the reverse, means over seeds; Δ accuracy with "
    "a 95% question-bootstrap interval (seeds fixed), descriptive, not corrected for multiplicity. Held-out tasks "
    "entered no choice: their rows measure the collateral damage on relations nothing was tuned on; compare them "
    "with the other tasks' rows.</p>")


def _leak_text(what: str, leaks: dict) -> str:
    short = f", {leaks['dropped_too_short']} more as too short" if "dropped_too_short" in leaks else ""
    return (f"{what}: {leaks['dropped_leaks']} of {leaks['passages_total']} passages were dropped because they name "
            f"a question's subject together with its answer{short}; {leaks['train_passages']} training and "
            f"{leaks['heldout_passages']} held-out passages remain, re-checked against {leaks['fact_pairs_checked']} "
            f"fact pairs: {leaks['remaining_leaks']} leaks.")


def _leaks_html(leaks: dict) -> str:
    lines = [_leak_text("Corpus text", leaks)]
    lines += [_leak_text(f"Text generated by model {g.get('model') or g.get('text_dir')}", g)
              for g in leaks.get("generated", [])]
    return "<p>Leak filter.</p><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def floating_revisions(config: dict) -> dict[str, str]:
    """Hub models whose revision is a branch or tag (``allow_floating_revision``), by name."""
    return {name: spec.get("revision", "") for name, spec in (config.get("models") or {}).items()
            if spec.get("source") == "hub" and not re.fullmatch(r"[0-9a-f]{40}", spec.get("revision", ""))}


def _floating_revision_html(config: dict) -> str:
    floating = floating_revisions(config)
    if not floating:
        return ""
    named = ", ".join(f"{html.escape(m)} at {html.escape(r)!s}" for m, r in sorted(floating.items()))
    return (f"<p class='gap'><b>Not reproducible:</b> {named} {'is' if len(floating) == 1 else 'are'} "
            "pinned to a branch or tag (allow_floating_revision), not a commit, so the same config can fetch "
            "other weights later.</p>")


def _failed_runs_html(failed: list[dict]) -> list[str]:
    """Every run (and checkpoint) whose recovery training failed, with why (analysis/failed_runs.csv)."""
    import pandas as pd

    if not failed:
        return []
    frame = pd.DataFrame([{k: "" if r[k] is None else r[k] for k in FAILED_RUN_COLUMNS} for r in failed],
                         dtype=object)
    return ["<h3 id='failed'>Failed runs</h3>",
            "<p>These recovery trainings diverged (a NaN or infinite loss or weight): no adapter was saved, nothing "
            "of them was evaluated or measured, and every table says 'failed: why' where they would appear. A "
            "method whose every run at the final budget failed was not tried: it is outside the Holm family and the "
            "verdict names it.</p>", _table_html(frame)]


def run_report(*, summary_csv: str, analysis_dir: str, figures: dict[str, str], cost_files: list[str],
               config: dict, knowledge_tasks: list[str], out_html: str,
               attention_figures: list[str] | None = None) -> None:
    import pandas as pd
    import yaml

    analysis = Path(analysis_dir)
    verdict = read_json(analysis / "verdict.json")
    summary = headline_summary(summary_csv, verdict["budget"])
    precisions = base_precisions(summary)
    fractions = pd.read_csv(analysis / "recovery_fraction.csv")
    flip_table = read_csv_or_empty(analysis / "flips.csv", keep_default_na=False)
    tests = read_csv_or_empty(analysis / "paired_tests.csv", keep_default_na=False)
    margins = read_csv_or_empty(analysis / "margin_tests.csv")
    control = read_csv_or_empty(analysis / "format_control.csv")
    ablation = read_csv_or_empty(analysis / "prompt_pool_ablation.csv")
    ppl_rec = perplexity_recovery(summary)
    cost_table, versions = _cost_table(cost_files)
    failures = failed_groups(verdict.get("failed_runs", []), verdict.get("final_steps"))
    bases = "; ".join(f"{m}: {base_label(m, precisions)}" for m in sorted(precisions))
    base_note = f"<p>Base models: {html.escape(bases)}; every compression is a further compression of that.</p>" \
        if bases else ""
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>compress-recover report</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>Forgotten or displaced? compress-recover report</h1>",
        _floating_revision_html(config),
        "<h2 id='verdict'>Verdict</h2>",
        _rule_html(verdict, precisions),
        *(_verdict_html(v, precisions) for v in verdict["verdicts"]),
        "" if verdict["verdicts"] else "<p>No compressed model in this run: nothing to decide.</p>",
        *_failed_runs_html(verdict.get("failed_runs", [])),
        *_split_html(verdict, read_csv_or_empty(analysis / "dev_accuracy.csv")),
        "<h2 id='tables'>Accuracy and perplexity</h2>",
        base_note + "<p>Mean ± sd over seeds (one value: one run), the final budget's runs; knowledge tasks on "
        "their test questions (analysis/accuracy.csv), other tasks as lm-eval reports them.</p>",
        _table_html(accuracy_pivot(summary, knowledge_tasks, precisions,
                                   read_csv_or_empty(analysis / "accuracy.csv"), failures)),
        "<h2>Knowledge recovery vs perplexity recovery</h2>", _gap_note(fractions, ppl_rec),
        "<p>Recovery fraction = (recovered − compressed) / (base − compressed), recovered averaged over seeds "
        "(± sd of the per-seed fractions); controlled = (recovered − compressed − control gain) / (base − compressed), "
        "control gain = the uncompressed model recovered by the same method − base when positive, else 0 (no credit "
        "for what a method breaks on the uncompressed model). 95% two-level bootstrap "
        "intervals (seeds, then questions), not corrected for multiplicity (the verdict's intervals are); "
        f"'{NO_DAMAGE}' where compression did no damage, '{NO_CONTROL}' where the uncompressed model was not "
        "recovered by the method, ∞ where too many resamples have no damage; 'failed: why' where every run "
        "failed to train.</p>",
        _table_html(_fraction_table(fractions, ppl_rec, failures), "{:.3f}"),
        *_budget_html(read_csv_or_empty(analysis / "budget_curve.csv"), figures["budget_curves"]),
        *_section("Collateral damage", _collateral_table(read_csv_or_empty(analysis / "collateral.csv")),
                  COLLATERAL_NOTE),
        *_section("Format control", control, base_note + "<p>The uncompressed model recovered by each method "
                  "(mean ± sd over seeds) minus the base model: what the method adds without any compression "
                  "damage to repair; 95% two-level bootstrap interval.</p>"),
        *_section("Paired margins", margins[margins.task == ALL_KNOWLEDGE] if len(margins) else margins,
                  "<p>Per question, the log-probability of the right choice minus that of the best wrong one "
                  "(<code>margin</code>: unnormalised, as lm-eval's acc; <code>margin_norm</code>: each choice's "
                  "log-likelihood divided by its length in characters, as acc_norm), the recovery's averaged over "
                  "its seeds. Mean difference recovered − compressed with a 95% t interval; p from a paired "
                  "sign-flip permutation test (two-sided).</p>", "{:.3g}"),
        *_section("Prompt-pool ablation", ablation,
                  "<p>Methods that keep one prompt of a pool per question: how often each prompt was chosen, "
                  "accuracy as chosen, with one prompt drawn at random per question (seeded) and its expectation, "
                  "with the best fixed prompt chosen by 2-fold cross-fitting (chosen on one half of the questions, "
                  "scored on the other, and vice versa), the in-sample best fixed prompt (optimistic) and the share "
                  "some prompt answers right.</p>"),
        "<h2>Knowledge flips</h2>", _table_html(flip_table),
        "<h2>Paired tests (McNemar, exact)</h2>", base_note, _table_html(tests, "{:.3g}"),
        "<h2 id='figures'>Pictures</h2>",
        *(_img(figures[name], name.replace("_", " ")) for name in FIGURES if name not in SECTION_FIGURES),
        "<h2 id='attention'>Attention and activations</h2>" if attention_figures else "",
        "<p>Per layer, on a fixed sample of knowledge questions: attention mass of the input on prompt "
        "positions, attention entropy, hidden-state norm and cosine distance to the base model "
        "(compress_recover/aggregate/attention.py).</p>" if attention_figures else "",
        *(_img(f, f"attention {Path(f).parent.parent.name}") for f in attention_figures or []),
        "<h2 id='costs'>Costs</h2>", _table_html(cost_table, "{:.2f}") if len(cost_table) else "",
        "<h2>Data</h2>",
        _leaks_html(verdict["leaks"]),
        "<h2>Config and versions</h2>",
        f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>",
        f"<pre>{html.escape(json.dumps(versions, indent=1))}</pre>",
        "</body></html>",
    ]
    with atomic_file(out_html) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
