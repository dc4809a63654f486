"""Rule ``report``: ``results/report.html``, one self-contained page (images inlined),
the verdict's rule and the verdict first (with the evidence per method: intervals at the
Holm level, p-values, seeds, format control, power), then tables (mean ± sd over seeds,
the base model first, its precision stated beside every "base"), pictures, costs, the
leak filter's counts, and the exact config and library versions that produced it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from ..io import atomic_file, read_json
from .figures import FIGURES
from .stats import ALL_KNOWLEDGE
from .tables import (BASE, CELL, PPL_METRIC, base_first_order, base_precisions, knowledge_accuracy, mean_sd,
                     perplexity_recovery)

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


def _fmt(v, floatfmt: str = "{:.3f}") -> str:
    v = _number(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return floatfmt.format(v)
    return html.escape(str(v))


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


def _pm(mean, sd, fmt: str = "{:.3f}") -> str:
    """"mean ± sd" (just the mean with one seed)."""
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

def _method_row(m: dict) -> str:
    margin = next((t for t in m.get("margin_test", []) if t["metric"] == "margin"), None)
    margin_text = (f"{_fmt(margin['mean_difference'], '{:+.3f}')} [{_fmt(margin['ci_low'])}, {_fmt(margin['ci_high'])}]"
                   f", p = {_fmt(margin['p_value'], '{:.3g}')}") if margin else "–"
    mcnemar = ", ".join(f"{t['b_seed'] or '–'}: {_fmt(t['p_value'], '{:.3g}')}" for t in m.get("mcnemar", [])) or "–"
    power = m.get("power") or {}
    needed = "–"
    if power:
        q, s = _number(power.get("questions_needed")), _number(power.get("seeds_needed"))
        k = _number(power.get("scale_both"))
        needed = "; ".join(x for x in (
            None if q != q else f"{_fmt(q, '{:,.0f}')} questions",
            None if s != s else f"{_fmt(s, '{:,.0f}')} seeds",
            None if k != k or not (math.isinf(q) and math.isinf(s)) else f"or {k:g}× both") if x) \
            or html.escape(power.get("note", "–"))
    seeds = ", ".join(str(s) for s in m["seeds"]) or "–"
    cells = [html.escape(m["recovery"]), html.escape(m["side"]), seeds, _pm(m["recovered_acc"], m["recovered_sd"]),
             f"{_fmt(m['control_gain'], '{:+.3f}')} (seed {', '.join(map(str, m['control_seeds'])) or 'none'})",
             html.escape(m["fraction_used"]),
             _pm(m["fraction"], m["controlled_sd" if m["fraction_used"] == "controlled" else "fraction_sd"], "{:.2f}"),
             f"[{_fmt(m['ci_low'], '{:.2f}')}, {_fmt(m['ci_high'], '{:.2f}')}]", f"{_fmt(m['confidence'], '{:.2%}')}",
             _fmt(m["holm_level"], "{:.4f}"), _p(m["p_value"]), _p(m["p_holm"]),
             f"<b>{html.escape(m['decision'])}</b>", margin_text, mcnemar, needed]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


METHOD_HEAD = ["recovery", "side", "training seed(s)", "acc (mean ± sd)", "control gain", "fraction used", "F (± sd over seeds)",
               "interval", "confidence 1 − α_i", "Holm α_i", "p", "Holm p", "decision",
               "margin Δ vs compressed [95% t], sign-flip p", "McNemar p per seed", "to decide at power"]


def _noninferiority_html(tests: list[dict]) -> str:
    if not tests:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(t['input'])} vs {html.escape(t['parameters'])}</td><td>{t['fractions']}</td>"
        f"<td>{_fmt(t['difference'], '{:+.2f}')}</td><td>{_fmt(t['lower_bound'], '{:+.2f}')}</td>"
        f"<td>{_fmt(t['confidence'], '{:.2%}')}</td><td>−{t['margin']}</td><td>{_p(t['p_value'])}</td>"
        f"<td>{_p(t['p_holm'])}</td><td><b>{t['result']}</b></td></tr>" for t in tests)
    return ("<table><thead><tr><th>input vs parameters</th><th>fractions</th><th>F_input − F_parameters</th>"
            "<th>lower bound</th><th>confidence</th><th>margin</th><th>p</th><th>Holm p</th><th>result</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def _verdict_html(v: dict, precisions: dict[str, str]) -> str:
    e = v["evidence"]
    base = base_label(v["model"], precisions)
    base_cap = base[:1].upper() + base[1:]
    ni = _noninferiority_html(e.get("noninferiority", []))
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
    return (f"<div class='rule'><p><b>Rule.</b> {html.escape(verdict['rule'])}</p>"
            f"<p>{html.escape(verdict.get('noninferiority_rule', ''))}</p>"
            f"<p>Settings (config.yaml <code>report</code>): alpha = {t['alpha']}, min_recovery_fraction = "
            f"{t['min_recovery_fraction']}, min_damage = {t['min_damage']}, noninferiority_margin = "
            f"{t['noninferiority_margin']}, power = {t['power']}; bootstrap resamples (B): {iters.get('pooled', '?')} "
            f"(pooled task), {iters.get('per_task', '?')} (per task); seeds: {seeds}. Recovery budget: "
            f"{verdict['budget']['steps']} steps × {verdict['budget']['batch_size']} × {verdict['budget']['seq_len']} "
            f"tokens.{' Base models: ' + bases + '.' if bases else ''}</p></div>")


# --------------------------------------------------------------------------- tables

def _column_label(cell: tuple, several_models: bool, precisions: dict[str, str]) -> str:
    model, comp, rec = cell
    label = f"{comp}/{rec}"
    if comp == BASE and rec == BASE:
        label += f" = {base_label(model, precisions)}"
    return f"{model}/{label}" if several_models else label


def accuracy_pivot(summary, knowledge_tasks: list[str], precisions: dict[str, str]):
    """Tasks × models: accuracy as mean ± sd over seeds, the pooled knowledge accuracy and
    the held-out perplexity; the base model's column first."""
    import pandas as pd

    acc = summary[(summary.metric == "acc") & (summary.subtask == summary.task)]
    per_task = mean_sd(acc)
    pooled = knowledge_accuracy(summary, knowledge_tasks).rename(columns={"acc": "value", "acc_sd": "value_sd"})
    pooled["task"] = "all knowledge (pooled)"
    ppl = mean_sd(summary[summary.metric == PPL_METRIC])
    ppl["task"] = f"held-out {PPL_METRIC}"
    frames = [f for f in (per_task, pooled, ppl) if len(f)]
    cells = pd.concat(frames, ignore_index=True) if frames else per_task
    order = base_first_order(cells[CELL].itertuples(index=False))
    several = cells.model.nunique() > 1
    table = {}
    for task in dict.fromkeys(cells.task):
        sub = cells[cells.task == task].set_index(CELL)
        fmt = "{:.2f}" if task.startswith("held-out") else "{:.3f}"
        table[task] = {_column_label(c, several, precisions): _pm(sub.value[c], sub.value_sd[c], fmt)
                       if c in sub.index else "–" for c in order}
    out = pd.DataFrame(table).T
    out.index.name = "task"
    return out.reset_index()


def _fraction_table(fractions, ppl_rec):
    know = fractions[fractions.task == ALL_KNOWLEDGE].copy()
    know["recovery fraction (± sd)"] = [_pm(f, s, "{:.2f}") for f, s in zip(know.recovery_fraction, know.fraction_sd,
                                                                              strict=True)]
    know["95% interval"] = [f"[{_fmt(lo, '{:.2f}')}, {_fmt(hi, '{:.2f}')}]" for lo, hi in
                            zip(know.ci_low, know.ci_high, strict=True)]
    know["controlled (± sd)"] = [_pm(f, s, "{:.2f}") for f, s in zip(know.controlled_fraction, know.controlled_sd,
                                                                      strict=True)]
    know["controlled 95% interval"] = [f"[{_fmt(lo, '{:.2f}')}, {_fmt(hi, '{:.2f}')}]" for lo, hi in
                                       zip(know.controlled_ci_low, know.controlled_ci_high, strict=True)]
    columns = ["model", "compression", "recovery", "seeds", "recovery fraction (± sd)", "95% interval",
               "control_gain", "controlled (± sd)", "controlled 95% interval"]
    know = know[columns]
    if len(ppl_rec):
        ppl = ppl_rec[CELL + ["perplexity", "perplexity_recovery"]]
        know = know.merge(ppl, on=CELL, how="left")
    return know


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


def _cost_table(cost_files: list[str]):
    import pandas as pd

    costs = pd.DataFrame([read_json(f) for f in cost_files])
    if costs.empty:
        return costs, {}
    table = pd.DataFrame({
        "model": costs.model, "compression": costs.compression, "recovery": costs.recovery,
        "run": costs["run"] if "run" in costs else costs.recovery,
        "extra params": costs.extra_params, "extra bytes": costs.extra_bytes,
        "training s": costs.training_time_s, "disk MB": costs.disk_bytes / 1e6,
        "batch latency ms": [c["batch"]["median_s"] * 1000 for c in costs.latency],
        "per-token ms": [c["generation"]["per_token_s"] * 1000 for c in costs.latency]})
    order = {c: i for i, c in enumerate(base_first_order(table[CELL].itertuples(index=False)))}
    table = table.assign(_o=[order[tuple(c)] for c in table[CELL].itertuples(index=False)])
    table = table.sort_values(["_o", "run"], kind="stable").drop(columns="_o")
    return table, costs.library_versions.iloc[0]


def _read_csv(path: Path, **kw):
    import pandas as pd

    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path, **kw)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _section(title: str, frame, note: str = "", floatfmt: str = "{:.3f}") -> list[str]:
    if frame is None or frame.empty:
        return []
    return [f"<h2>{title}</h2>", note, _table_html(frame, floatfmt)]


def run_report(*, summary_csv: str, analysis_dir: str, figures: dict[str, str], cost_files: list[str],
               config: dict, knowledge_tasks: list[str], out_html: str,
               attention_figures: list[str] | None = None) -> None:
    import pandas as pd
    import yaml

    summary = pd.read_csv(summary_csv)
    precisions = base_precisions(summary)
    analysis = Path(analysis_dir)
    verdict = read_json(analysis / "verdict.json")
    fractions = pd.read_csv(analysis / "recovery_fraction.csv")
    flip_table = _read_csv(analysis / "flips.csv", keep_default_na=False)
    tests = _read_csv(analysis / "paired_tests.csv", keep_default_na=False)
    margins = _read_csv(analysis / "margin_tests.csv")
    control = _read_csv(analysis / "format_control.csv")
    ablation = _read_csv(analysis / "prompt_pool_ablation.csv")
    ppl_rec = perplexity_recovery(summary)
    cost_table, versions = _cost_table(cost_files)
    leaks = verdict["leaks"]
    bases = "; ".join(f"{m}: {base_label(m, precisions)}" for m in sorted(precisions))
    base_note = f"<p>Base models: {html.escape(bases)}; every compression is a further compression of that.</p>" \
        if bases else ""
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>compress-recover report</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>Forgotten or displaced? compress-recover report</h1>",
        "<h2 id='verdict'>Verdict</h2>",
        _rule_html(verdict, precisions),
        *(_verdict_html(v, precisions) for v in verdict["verdicts"]),
        "" if verdict["verdicts"] else "<p>No compressed model in this run: nothing to decide.</p>",
        "<h2 id='tables'>Accuracy and perplexity</h2>",
        base_note + "<p>Mean ± sd over seeds (one value: one run).</p>",
        _table_html(accuracy_pivot(summary, knowledge_tasks, precisions)),
        "<h2>Knowledge recovery vs perplexity recovery</h2>", _gap_note(fractions, ppl_rec),
        "<p>Recovery fraction = (recovered − compressed) / (base − compressed), recovered averaged over seeds "
        "(± sd of the per-seed fractions); controlled = (recovered − compressed − control gain) / (base − compressed), "
        "control gain = the uncompressed model recovered by the same method − base when positive, else 0 (no credit "
        "for what a method breaks on the uncompressed model). 95% two-level bootstrap "
        "intervals (seeds, then questions), not corrected for multiplicity (the verdict's intervals are); – where "
        "compression did no damage, ∞ where too many resamples have none.</p>",
        _table_html(_fraction_table(fractions, ppl_rec), "{:.3f}"),
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
        *(_img(figures[name], name.replace("_", " ")) for name in FIGURES),
        "<h2 id='attention'>Attention and activations</h2>" if attention_figures else "",
        "<p>Per layer, on a fixed sample of knowledge questions: attention mass of the input on prompt "
        "positions, attention entropy, hidden-state norm and cosine distance to the base model "
        "(compress_recover/aggregate/attention.py).</p>" if attention_figures else "",
        *(_img(f, f"attention {Path(f).parent.parent.name}") for f in attention_figures or []),
        "<h2 id='costs'>Costs</h2>", _table_html(cost_table, "{:.2f}") if len(cost_table) else "",
        "<h2>Data</h2>",
        f"<p>Leak filter: {leaks['dropped_leaks']} of {leaks['passages_total']} text passages were dropped because "
        f"they name a question's subject together with its answer; {leaks['train_passages']} training and "
        f"{leaks['heldout_passages']} held-out passages remain, re-checked against {leaks['fact_pairs_checked']} "
        f"fact pairs: {leaks['remaining_leaks']} leaks.</p>",
        "<h2>Config and versions</h2>",
        f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>",
        f"<pre>{html.escape(json.dumps(versions, indent=1))}</pre>",
        "</body></html>",
    ]
    with atomic_file(out_html) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
