"""Stage 6, aggregate: the analysis tables, the verdict, the figures and one HTML page.

- :func:`run_analysis` writes ``results/analysis/`` (recovery fractions with bootstrap
  intervals, knowledge flips, McNemar tests, the verdict as JSON) after checking that no
  training or held-out passage names a question's subject together with its answer.
- :func:`run_figures` draws the pictures (PNG) from the summary and the analysis.
- :func:`run_report` writes ``results/report.html``: self-contained (images inlined),
  verdict first, then tables, pictures, costs, the leak filter's counts, and the exact
  config and library versions that produced it.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

from .analysis import (ALL_KNOWLEDGE, VERDICT_RULE, correctness_table, flips, paired_tests, recovery_fractions,
                       verdicts, with_pooled_task)
from .io import atomic_file, read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

FIGURES = ("accuracy_vs_compression", "perplexity_vs_knowledge", "cost_vs_accuracy", "flips")
PPL_METRIC = "word_perplexity"


class LeakError(RuntimeError):
    pass


def check_leaks(text_dir: str | Path, task_dirs: list[str]) -> dict:
    """Fail if any kept passage (train or held-out) names a question's subject and answer."""
    from .text import LeakFilter, pairs_from_tasks

    leak_filter = LeakFilter(pairs_from_tasks(task_dirs))
    hits = []
    for split in ("train", "heldout"):
        for row in read_jsonl(Path(text_dir) / f"{split}.jsonl"):
            found = leak_filter.leaks(row["text"])
            if found:
                hits.append({"split": split, "id": row["id"], "leaks": found[:3]})
    if hits:
        raise LeakError(f"{len(hits)} passage(s) of {text_dir} name a question's subject and answer together, "
                        f"e.g. {hits[:3]}; rebuild the text (rule text) with the current knowledge tasks")
    report = read_json(Path(text_dir) / "leak_report.json")
    return {"dropped_leaks": report["dropped_leaks"], "passages_total": report["passages_total"],
            "train_passages": report["train_passages"], "heldout_passages": report["heldout_passages"],
            "fact_pairs_checked": len(leak_filter.pairs), "remaining_leaks": 0}


def run_analysis(*, samples: list[tuple[dict, str]], knowledge_tasks: list[str], task_dirs: list[str],
                 text_dir: str, methods: dict[str, str], sides: dict[str, str], alpha: float,
                 min_recovery_fraction: float, bootstrap_iters: int, budget: dict, seed: int, out_dir: str) -> dict:
    """``samples``: (labels, samples.jsonl) of every knowledge-task evaluation."""
    leaks = check_leaks(text_dir, task_dirs)
    table = with_pooled_task(correctness_table(samples), knowledge_tasks)
    fractions = recovery_fractions(table, iters=bootstrap_iters, seed=seed)
    flip_table = flips(table)
    tests = paired_tests(table, methods=methods)
    verdict = {
        "rule": VERDICT_RULE,
        "thresholds": {"alpha": alpha, "min_recovery_fraction": min_recovery_fraction},
        "budget": budget,
        "leaks": leaks,
        "verdicts": verdicts(fractions, tests, methods=methods, sides=sides, alpha=alpha,
                             min_recovery_fraction=min_recovery_fraction, budget=budget),
    }
    out = Path(out_dir)
    for name, frame in (("recovery_fraction", fractions), ("flips", flip_table), ("paired_tests", tests)):
        with atomic_file(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "verdict.json", json.loads(json.dumps(verdict, default=float)))
    for v in verdict["verdicts"]:
        log.info("%s / %s: %s (%s)", v["model"], v["compression"], v["verdict"], v["reason"])
    return verdict


# ---- figures ------------------------------------------------------------------------

def _knowledge_accuracy(summary, knowledge_tasks):
    """Pooled knowledge accuracy per (model, compression, recovery): mean over questions."""
    acc = summary[(summary.metric == "acc") & summary.task.isin(knowledge_tasks) & (summary.subtask == summary.task)]
    acc = acc.assign(correct=acc.value * acc.n)
    pooled = acc.groupby(["model", "compression", "recovery"], sort=False).agg(correct=("correct", "sum"),
                                                                               n=("n", "sum"))
    pooled["acc"] = pooled.correct / pooled.n
    pooled["stderr"] = (pooled.acc * (1 - pooled.acc) / pooled.n) ** 0.5
    return pooled.reset_index()


def _perplexity(summary):
    ppl = summary[summary.metric == PPL_METRIC]
    return ppl.set_index(["model", "compression", "recovery"])["value"]


def perplexity_recovery(summary):
    """(ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base) per recovered model."""
    import pandas as pd

    ppl = _perplexity(summary)
    rows = []
    for (model, comp, rec), value in ppl.items():
        if comp == "none" or rec == "none":
            continue
        base, compressed = ppl.get((model, "none", "none")), ppl.get((model, comp, "none"))
        if base is None or compressed is None:
            continue
        damage = compressed - base
        rows.append({"model": model, "compression": comp, "recovery": rec, "perplexity": value,
                     "perplexity_base": base, "perplexity_compressed": compressed,
                     "perplexity_recovery": (compressed - value) / damage if damage > 0 else float("nan")})
    return pd.DataFrame(rows)


def run_figures(*, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str], out_files: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    summary = pd.read_csv(summary_csv)
    fractions = pd.read_csv(Path(analysis_dir) / "recovery_fraction.csv")
    flip_table = pd.read_csv(Path(analysis_dir) / "flips.csv", keep_default_na=False)
    acc = _knowledge_accuracy(summary, knowledge_tasks)
    compressions = sorted(dict.fromkeys(acc.compression), key=lambda c: c != "none")  # the base model first
    recoveries = sorted(dict.fromkeys(acc.recovery), key=lambda r: r != "none")

    def save(fig, name):
        fig.tight_layout()
        with atomic_file(out_files[name]) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    # 1. accuracy vs compression setting, one series per recovery method
    fig, ax = plt.subplots(figsize=(7, 4))
    models = list(dict.fromkeys(acc.model))
    series = [(m, r) for m in models for r in recoveries]
    for i, (model, rec) in enumerate(series):
        sub = acc[(acc.model == model) & (acc.recovery == rec)].set_index("compression").reindex(compressions)
        x = [j + (i - (len(series) - 1) / 2) * 0.08 for j in range(len(compressions))]
        ax.errorbar(x, sub.acc, yerr=sub.stderr, marker="o", capsize=3, linestyle="-" if rec != "none" else "--",
                    label=f"{model}/{rec}" if len(models) > 1 else rec)
    ax.set_xticks(range(len(compressions)), compressions, rotation=15)
    ax.set_ylabel("knowledge accuracy (all tasks pooled)")
    ax.set_xlabel("compression")
    ax.set_title("Accuracy vs compression, per recovery method (± stderr)")
    ax.legend(title="recovery", fontsize=8)
    save(fig, "accuracy_vs_compression")

    # 2. perplexity recovery vs knowledge recovery
    fig, ax = plt.subplots(figsize=(6, 5))
    ppl = perplexity_recovery(summary)
    know = fractions[fractions.task == ALL_KNOWLEDGE]
    merged = know.merge(ppl, on=["model", "compression", "recovery"], how="inner") if len(ppl) else ppl
    if len(merged):
        for row in merged.itertuples():
            ax.scatter(row.perplexity_recovery, row.recovery_fraction, s=40)
            ax.annotate(f"{row.compression}/{row.recovery}", (row.perplexity_recovery, row.recovery_fraction),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.axline((0, 0), (1, 1), color="grey", linestyle=":", label="equal recovery")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no perplexity task in this run (data.perplexity: false)", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("perplexity recovery fraction (held-out text)")
    ax.set_ylabel("knowledge recovery fraction (pooled)")
    ax.set_title("Perplexity recovery vs knowledge recovery")
    save(fig, "perplexity_vs_knowledge")

    # 3. cost vs accuracy
    costs = summary.drop_duplicates(["model", "compression", "recovery"])[
        ["model", "compression", "recovery", "extra_params", "latency_token_s"]]
    merged = acc.merge(costs, on=["model", "compression", "recovery"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, label in ((axes[0], "extra_params", "extra parameters"),
                              (axes[1], "latency_token_s", "latency per generated token (ms)")):
        scale = 1000 if column == "latency_token_s" else 1
        for row in merged.itertuples():
            x = getattr(row, column) * scale
            ax.errorbar(x, row.acc, yerr=row.stderr, marker="o", capsize=2)
            ax.annotate(f"{row.compression}/{row.recovery}", (x, row.acc), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if column == "extra_params":
            ax.set_xscale("symlog", linthresh=1000)
        ax.set_xlabel(label)
    axes[0].set_ylabel("knowledge accuracy (pooled)")
    fig.suptitle("Cost vs accuracy")
    save(fig, "cost_vs_accuracy")

    # 4. flips: of the questions compression lost, how many each recovery won back; and broke
    pooled = flip_table[flip_table.task == ALL_KNOWLEDGE]
    bars = []
    for (model, comp), sub in pooled.groupby(["model", "compression"], sort=False):
        lost = int(sub[sub.category == "lost"]["count"].sum())
        for row in sub[sub.category == "recovered"].itertuples():
            broken = int(sub[(sub.category == "broken") & (sub.recovery == row.recovery)]["count"].sum())
            bars.append((f"{comp}\n{row.recovery}", row.count, lost - row.count, broken))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(bars)), 4))
    if bars:
        labels = [b[0] for b in bars]
        won, still, broken = ([b[i] for b in bars] for i in (1, 2, 3))
        ax.bar(labels, won, label="lost by compression, won back", color="tab:green")
        ax.bar(labels, still, bottom=won, label="lost by compression, still lost", color="tab:gray")
        ax.bar(labels, broken, bottom=[w + s for w, s in zip(won, still, strict=True)],
               label="right after compression, broken by recovery", color="tab:red")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no recovered model in this run", ha="center", transform=ax.transAxes)
    ax.set_ylabel("questions (all knowledge tasks)")
    ax.set_title("Knowledge flips per recovery method")
    save(fig, "flips")


# ---- HTML -----------------------------------------------------------------------------

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
    pooled = _knowledge_accuracy(summary, knowledge_tasks)
    pivot.loc["all knowledge (pooled)"] = pooled.set_index(cell)["acc"]
    ppl = _perplexity(summary)
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
        "(compress_recover/attention.py).</p>" if attention_figures else "",
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
