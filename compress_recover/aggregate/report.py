"""Rule ``report``: ``results/report.html``, one self-contained page (images inlined),
verdict first, then tables, pictures, costs, the leak filter's counts, and the exact
config and library versions that produced it.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..io import atomic_file, read_json
from .figures import FIGURES
from .stats import ALL_KNOWLEDGE
from .tables import PPL_METRIC, knowledge_accuracy, perplexity, perplexity_recovery

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
.verdict{border-left:6px solid #444;padding:0.6em 1em;margin:0.8em 0;background:#fafafa}
.displaced{border-color:#2a7}.forgotten{border-color:#c33}.inconclusive{border-color:#d90}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f6f6f6;padding:0.8em;overflow:auto;
font-size:0.8em}.gap{color:#b00;font-weight:bold}
"""


def _table_html(frame, floatfmt="{:.3f}") -> str:
    def fmt(v):
        if isinstance(v, float):
            return "–" if v != v else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: str, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _verdict_html(v: dict) -> str:
    e = v["evidence"]
    rows = "".join(
        f"<tr><td>{html.escape(m['recovery'])}</td><td>{m['side']}</td><td>{m['acc']:.3f}</td>"
        f"<td>{m['recovery_fraction']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]</td><td>{m['newly_right']}</td>"
        f"<td>{m['newly_wrong']}</td><td>{m['p_value']:.3g}</td><td>{'yes' if m['wins'] else 'no'}</td></tr>"
        for m in e["methods"])
    methods = (f"<table><thead><tr><th>recovery</th><th>side</th><th>acc</th><th>recovery fraction [95% CI]</th>"
               f"<th>newly right</th><th>newly wrong</th><th>McNemar p</th><th>wins</th></tr></thead>"
               f"<tbody>{rows}</tbody></table>") if rows else ""
    return (f'<div class="verdict {v["verdict"].split()[0]}"><h3>{html.escape(v["model"])} / '
            f'{html.escape(v["compression"])}: {html.escape(v["verdict"])}</h3>'
            f'<p>{html.escape(v["reason"])}.</p><p>Base {e["base_acc"]:.3f} → compressed {e["compressed_acc"]:.3f} '
            f'on {e["n"]} pooled knowledge questions ({e["lost_only"]} lost, {e["gained_only"]} gained; '
            f'McNemar p = {e["p_compression"]:.3g}).</p>{methods}</div>')


def run_report(*, summary_csv: str, analysis_dir: str, figures: dict[str, str], cost_files: list[str],
               config: dict, knowledge_tasks: list[str], out_html: str,
               attention_figures: list[str] | None = None) -> None:
    import pandas as pd
    import yaml

    summary = pd.read_csv(summary_csv)
    analysis = Path(analysis_dir)
    verdict = read_json(analysis / "verdict.json")
    fractions = pd.read_csv(analysis / "recovery_fraction.csv")
    flip_table = pd.read_csv(analysis / "flips.csv", keep_default_na=False)
    tests = pd.read_csv(analysis / "paired_tests.csv")
    acc = summary[(summary.metric == "acc") & (summary.subtask == summary.task)]
    cell = ["model", "compression", "recovery"]
    pivot = acc.pivot_table(index="task", columns=cell, values="value", sort=False)
    pooled = knowledge_accuracy(summary, knowledge_tasks)
    pivot.loc["all knowledge (pooled)"] = pooled.set_index(cell)["acc"]
    ppl = perplexity(summary)
    if len(ppl):
        pivot.loc[f"held-out {PPL_METRIC}"] = ppl
    several_models = summary.model.nunique() > 1
    pivot.columns = [f"{m}/{c}/{r}" if several_models else f"{c}/{r}" for m, c, r in pivot.columns]
    pivot = pivot.reset_index()
    ppl_rec = perplexity_recovery(summary)
    know = fractions[fractions.task == ALL_KNOWLEDGE][["model", "compression", "recovery", "recovery_fraction",
                                                        "ci_low", "ci_high"]]
    gap = know.merge(ppl_rec[["model", "compression", "recovery", "perplexity", "perplexity_recovery"]],
                     on=["model", "compression", "recovery"], how="left") if len(ppl_rec) else know
    costs = pd.DataFrame([read_json(f) for f in cost_files])
    cost_table = pd.DataFrame({
        "model": costs.model, "compression": costs.compression, "recovery": costs.recovery,
        "extra params": costs.extra_params, "extra bytes": costs.extra_bytes,
        "training s": costs.training_time_s, "disk MB": costs.disk_bytes / 1e6,
        "batch latency ms": [c["batch"]["median_s"] * 1000 for c in costs.latency],
        "per-token ms": [c["generation"]["per_token_s"] * 1000 for c in costs.latency]})
    versions = costs.library_versions.iloc[0] if len(costs) else {}
    leaks = verdict["leaks"]
    gap_note = ""
    if len(ppl_rec):
        big = gap[(gap.perplexity_recovery - gap.recovery_fraction) > 0.3]
        if len(big):
            gap_note = ('<p class="gap">Perplexity hides knowledge loss here: ' + "; ".join(
                f"{r.compression}/{r.recovery} recovers {r.perplexity_recovery:.0%} of the perplexity damage but "
                f"{r.recovery_fraction:.0%} of the knowledge damage" for r in big.itertuples()) + ".</p>")
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>compress-recover report</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>Forgotten or displaced? compress-recover report</h1>",
        "<h2 id='verdict'>Verdict</h2>",
        *(_verdict_html(v) for v in verdict["verdicts"]),
        "" if verdict["verdicts"] else "<p>No compressed model in this run: nothing to decide.</p>",
        f"<p><b>Rule.</b> {html.escape(verdict['rule'])} Thresholds (config.yaml, <code>report</code>): "
        f"alpha = {verdict['thresholds']['alpha']}, min_recovery_fraction = "
        f"{verdict['thresholds']['min_recovery_fraction']}. Recovery budget: {verdict['budget']['steps']} steps × "
        f"{verdict['budget']['batch_size']} × {verdict['budget']['seq_len']} tokens.</p>",
        "<h2 id='tables'>Accuracy and perplexity</h2>", _table_html(pivot),
        "<h2>Knowledge recovery vs perplexity recovery</h2>", gap_note,
        "<p>Recovery fraction = (recovered − compressed) / (base − compressed); 95% bootstrap interval over "
        "questions; – where compression did no damage.</p>", _table_html(gap, "{:.3f}"),
        "<h2>Knowledge flips</h2>", _table_html(flip_table),
        "<h2>Paired tests (McNemar, exact)</h2>", _table_html(tests, "{:.3g}"),
        "<h2 id='figures'>Pictures</h2>",
        *(_img(figures[name], name.replace("_", " ")) for name in FIGURES),
        "<h2 id='attention'>Attention and activations</h2>" if attention_figures else "",
        "<p>Per layer, on a fixed sample of knowledge questions: attention mass of the input on prompt "
        "positions, attention entropy, hidden-state norm and cosine distance to the base model "
        "(compress_recover/aggregate/attention.py).</p>" if attention_figures else "",
        *(_img(f, f"attention {Path(f).parent.parent.name}") for f in attention_figures or []),
        "<h2 id='costs'>Costs</h2>", _table_html(cost_table, "{:.2f}"),
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
