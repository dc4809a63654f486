"""Rule ``figures``: the report's pictures as PNG files, one small function per figure.

Each figure function takes the :class:`Inputs` read once from the summary and the
analysis, and returns a matplotlib figure; :data:`FIGURES` maps the figure's name (its
file ``results/figures/<name>.png``) to its function, in the report's order. A recovery
method has the same colour in every figure (:func:`.tables.method_colour`); recovery
groups of one method (e.g. other objectives) differ by line style or marker. Runs with
several seeds are shown as their mean, error bars the sd over seeds (the binomial standard
error with one seed). Knowledge accuracy is on the test questions, every figure but the
budget curve shows the final budget's runs only. Runs whose recovery training failed have
no score and no cost: they are not drawn (the report names them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.split import TEST
from ..io import atomic_file
from .results import FLIPS, Results
from .stats.budget import at_final_budget
from .stats.methods import method_of
from .stats.paired import MAJORITY
from .stats.questions import ALL_KNOWLEDGE
from ..runs import BASE
from .tables import (at_final_budget_rows, base_first_order, method_colour, perplexity_recovery,
                     pooled_test_accuracy)

MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LINESTYLES = ["-", "-.", ":", (0, (5, 1))]


@dataclass(frozen=True)
class Inputs:
    summary: "pandas.DataFrame"  # noqa: F821
    fractions: "pandas.DataFrame"  # noqa: F821
    flips: "pandas.DataFrame"  # noqa: F821
    accuracy: "pandas.DataFrame"  # noqa: F821  pooled knowledge accuracy (test questions) per model
    methods: dict  # recovery group (or run) -> method
    budget_curve: "pandas.DataFrame"  # noqa: F821  the analysis's budget_curve.csv
    questions: "pandas.DataFrame"  # noqa: F821  questions.csv at the final budget, test questions, no pooled task
    loss_anatomy: "pandas.DataFrame"  # noqa: F821  the analysis's loss_anatomy.csv

    @classmethod
    def read(cls, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str]) -> "Inputs":
        """The summary at the final budget and the analysis's tables (``knowledge_tasks`` is
        kept for the rule's call: the analysis already pooled them)."""
        return cls.of(Results.load(analysis_dir, summary=summary_csv))

    @classmethod
    def of(cls, results: Results) -> "Inputs":
        """What the figures draw from a results record (read with its summary)."""
        t = results.tables
        questions = t.questions
        if not questions.empty:
            questions = questions[(questions.task != ALL_KNOWLEDGE) & (questions.split == TEST)
                                  & at_final_budget(questions, results.final_steps)]
        return cls(summary=at_final_budget_rows(results.summary, results.budget), fractions=t.recovery_fraction,
                   flips=t.flips, accuracy=pooled_test_accuracy(t.accuracy), methods=results.method_names,
                   budget_curve=t.budget_curve, questions=questions, loss_anatomy=t.loss_anatomy)

    def method(self, recovery: str) -> str:
        return method_of(recovery, None, self.methods)

    def colour(self, recovery: str) -> str:
        return method_colour(self.method(recovery))

    def variant(self, recovery: str) -> int:
        """Index of ``recovery`` among the recovery groups of the same method (its style)."""
        groups = sorted({r for r in self.accuracy.recovery if self.method(r) == self.method(recovery)})
        return groups.index(recovery) if recovery in groups else 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_compression(data: Inputs):
    """Pooled knowledge accuracy per compression setting, one series per recovery method."""
    plt = _pyplot()
    acc = data.accuracy
    order = base_first_order(acc[["model", "compression", "recovery"]].itertuples(index=False))
    compressions = list(dict.fromkeys(c for _, c, _ in order))  # the base model first
    recoveries = list(dict.fromkeys(r for _, _, r in sorted(order, key=lambda c: (c[2] != BASE, c[2]))))
    fig, ax = plt.subplots(figsize=(7, 4))
    models = list(dict.fromkeys(acc.model))
    series = [(m, r) for m in models for r in recoveries]
    for i, (model, rec) in enumerate(series):
        sub = acc[(acc.model == model) & (acc.recovery == rec)].set_index("compression").reindex(compressions)
        x = [j + (i - (len(series) - 1) / 2) * 0.08 for j in range(len(compressions))]
        if sub.acc.isna().all():  # every run failed to train: no series (a missing point is a gap, never drawn)
            continue
        err = sub.acc_sd.where(sub.seeds > 1, sub.stderr)
        style = "--" if rec == BASE else LINESTYLES[data.variant(rec) % len(LINESTYLES)]
        ax.errorbar(x, sub.acc, yerr=err, capsize=3, linestyle=style, color=data.colour(rec),
                    marker=MARKERS[models.index(model) % len(MARKERS)],
                    label=f"{model}/{rec}" if len(models) > 1 else rec)
    ax.set_xticks(range(len(compressions)), [f"{c} (base)" if c == BASE else c for c in compressions], rotation=15)
    ax.set_ylabel("knowledge accuracy (all tasks pooled)")
    ax.set_xlabel("compression (of the base model, at its stated precision)")
    ax.set_title("Accuracy vs compression per recovery method (± sd over seeds, or stderr)")
    ax.legend(title="recovery", fontsize=8)
    return fig


def perplexity_vs_knowledge(data: Inputs):
    """Perplexity recovery fraction against knowledge recovery fraction, per recovered model,
    like with like: both against the control run (the same method on the base model, filled
    marker) where it exists, else both raw (hollow marker, labelled so)."""
    import math

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ppl = perplexity_recovery(data.summary)
    know = data.fractions[data.fractions.task == ALL_KNOWLEDGE]
    merged = know.merge(ppl, on=["model", "compression", "recovery"], how="inner") if len(ppl) else ppl
    if len(merged):
        for row in merged.itertuples():
            controlled = not math.isnan(row.perplexity_control)
            x, y = ((row.perplexity_recovery_controlled, row.controlled_fraction) if controlled
                    else (row.perplexity_recovery, row.recovery_fraction))
            colour = data.colour(row.recovery)
            ax.scatter(x, y, s=40, edgecolors=colour, facecolors=colour if controlled else "none",
                       marker=MARKERS[data.variant(row.recovery) % len(MARKERS)])
            ax.annotate(f"{row.compression}/{row.recovery}" + ("" if controlled else " (raw: no control run)"),
                        (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.axline((0, 0), (1, 1), color="grey", linestyle=":", label="equal recovery")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.axvline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no perplexity task in this run (data.perplexity: false)", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("perplexity recovery fraction (held-out text), control subtracted")
    ax.set_ylabel("knowledge recovery fraction (pooled), control subtracted")
    ax.set_title("Perplexity recovery vs knowledge recovery")
    return fig


def cost_vs_accuracy(data: Inputs):
    """Pooled knowledge accuracy against extra parameters and against per-token latency."""
    plt = _pyplot()
    cell = ["model", "compression", "recovery"]
    costs = data.summary.groupby(cell, sort=False)[["extra_params", "latency_token_s"]].mean().reset_index()
    merged = data.accuracy.merge(costs, on=cell)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, label in ((axes[0], "extra_params", "extra parameters"),
                              (axes[1], "latency_token_s", "latency per generated token (ms)")):
        scale = 1000 if column == "latency_token_s" else 1
        for row in merged.itertuples():
            x = getattr(row, column) * scale
            err = row.acc_sd if row.seeds > 1 else row.stderr
            ax.errorbar(x, row.acc, yerr=err, marker=MARKERS[data.variant(row.recovery) % len(MARKERS)], capsize=2,
                        color=data.colour(row.recovery))
            ax.annotate(f"{row.compression}/{row.recovery}", (x, row.acc), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if column == "extra_params":
            ax.set_xscale("symlog", linthresh=1000)
        ax.set_xlabel(label)
    axes[0].set_ylabel("knowledge accuracy (pooled)")
    fig.suptitle("Cost vs accuracy")
    return fig


def flips(data: Inputs):
    """Of the questions compression lost, how many each recovery won back (in the method's
    colour); and how many right answers it broke (hatched); means over seeds."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    c = FLIPS.c
    pooled = data.flips[(data.flips.task == ALL_KNOWLEDGE) & (data.flips.seed.astype(str) != MAJORITY)]
    bars = []
    for (_, comp), sub in pooled.groupby([c.model, c.compression], sort=False):
        lost = int(sub[sub.category == "lost"][c.count].sum())
        won = sub[sub.category == "recovered"].groupby(c.recovery, sort=True)[c.count].mean()
        broken = sub[sub.category == "broken"].groupby(c.recovery, sort=True)[c.count].mean()
        for rec, count in won.items():
            bars.append((f"{comp}\n{rec}", rec, count, lost - count, broken.get(rec, 0.0)))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(bars)), 4))
    if bars:
        labels = [b[0] for b in bars]
        colours = [data.colour(b[1]) for b in bars]
        won, still, broken = ([b[i] for b in bars] for i in (2, 3, 4))
        ax.bar(labels, won, color=colours)
        ax.bar(labels, still, bottom=won, color="#dddddd")
        ax.bar(labels, broken, bottom=[w + s for w, s in zip(won, still, strict=True)], color="white",
               edgecolor=colours, hatch="///")
        ax.legend(handles=[Patch(color="#888888", label="lost by compression, won back (method colour)"),
                           Patch(color="#dddddd", label="lost by compression, still lost"),
                           Patch(facecolor="white", edgecolor="#888888", hatch="///",
                                 label="right after compression, broken by recovery")], fontsize=8)
    else:
        ax.text(0.5, 0.5, "no recovered model in this run", ha="center", transform=ax.transAxes)
    ax.set_ylabel("questions (all knowledge tasks; mean over seeds)")
    ax.set_title("Knowledge flips per recovery method")
    return fig


def _interval_bars(y, low, high):
    """Error bar lengths below and above ``y`` for an interval [low, high] (none where it
    is not finite)."""
    import numpy as np

    y, low, high = (np.asarray(v, dtype=float) for v in (y, low, high))
    below, above = np.clip(y - low, 0, None), np.clip(high - y, 0, None)
    return np.where(np.isfinite(below), below, np.nan), np.where(np.isfinite(above), above, np.nan)


CURVE_PANELS = [("recovered_acc", "acc_ci_low", "acc_ci_high", "knowledge accuracy (pooled test questions)"),
                ("fraction", "fraction_low", "fraction_high", "recovery fraction")]


def _curve_frame(sub):
    """One recovery group's curve sorted by steps, with the fraction it plots: control-
    subtracted where every checkpoint has a control run, else raw."""
    controlled = bool(sub.has_control.astype(bool).all())
    point, low, high = (("controlled_fraction", "controlled_ci_low", "controlled_ci_high") if controlled
                        else ("recovery_fraction", "ci_low", "ci_high"))
    x = sub.tokens.where(sub.tokens.notna(), sub.steps)
    curve = sub.assign(x=x, fraction=sub[point], fraction_low=sub[low], fraction_high=sub[high])
    return curve.sort_values("steps"), controlled


def budget_curves(data: Inputs):
    """Pooled test accuracy and recovery fraction against training tokens per recovery group,
    from the compressed model (0 tokens) to the final budget; error bars: 95% two-level
    bootstrap intervals, not corrected for multiplicity. A budget of one point gives two
    points per group (the compressed model and the final budget)."""
    plt = _pyplot()
    curve = data.budget_curve
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if curve.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no recovered compressed model in this run", ha="center", transform=ax.transAxes)
        return fig
    compressions = list(dict.fromkeys(curve.compression))
    several = curve.model.nunique() > 1
    for (model, comp, rec), sub in curve.groupby(["model", "compression", "recovery"], sort=False):
        sub, controlled = _curve_frame(sub)
        label = f"{model}/{comp}/{rec}" if several else f"{comp}/{rec}"
        style = {"color": data.colour(rec), "linestyle": LINESTYLES[data.variant(rec) % len(LINESTYLES)],
                 "marker": MARKERS[compressions.index(comp) % len(MARKERS)], "capsize": 3}
        for ax, (y, low, high, _) in zip(axes, CURVE_PANELS, strict=True):
            suffix = "" if controlled or ax is axes[0] else " (raw)"
            ax.errorbar(sub.x, sub[y], yerr=_interval_bars(sub[y], sub[low], sub[high]), label=label + suffix,
                        **style)
    for ax, (*_, ylabel) in zip(axes, CURVE_PANELS, strict=True):
        ax.set_xlabel("training tokens (0: the compressed model)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[1].axhline(0, color="black", linewidth=0.5)
    fig.suptitle("Budget curves (95% intervals, descriptive; the verdict uses the final budget)")
    return fig


def _panels(plt, count: int, width: float, height: float):
    """``count`` stacked axes (at least one) in one figure."""
    fig, axes = plt.subplots(max(count, 1), 1, figsize=(width, height * max(count, 1)), squeeze=False)
    return fig, list(axes[:, 0])


def overview(data: Inputs):
    """Per (model, compression), the report's first figure: pooled test accuracy of the base
    model, the compressed model and every remedy (95% Wilson interval of one run's accuracy,
    or ± sd over seeds), each remedy's cost written beside it (extra parameters, training or
    compute seconds, from the cost step)."""
    import pandas as pd
    from statsmodels.stats.proportion import proportion_confint

    plt = _pyplot()
    acc = data.accuracy
    comps = [(m, c) for m, c in dict.fromkeys(zip(acc.model, acc.compression, strict=True)) if c != BASE]
    fig, axes = _panels(plt, len(comps), 9, 0.45 * (2 + max([acc.recovery.nunique()] or [1])))
    cell = ["model", "compression", "recovery"]
    costs = data.summary.groupby(cell, sort=False)[["extra_params", "training_time_s"]].mean() \
        if len(data.summary) else None
    for ax, (model, comp) in zip(axes, comps, strict=False):
        rows = [acc[(acc.model == model) & (acc.compression == BASE) & (acc.recovery == BASE)]]
        rows += [acc[(acc.model == model) & (acc.compression == comp)].sort_values(
            "recovery", key=lambda r: r.map(lambda x: (x != BASE, x)))]
        sub = pd.concat(rows)
        labels = ["base" if c == BASE else (comp if r == BASE else f"+ {r}")
                  for c, r in zip(sub.compression, sub.recovery, strict=True)]
        y = list(range(len(sub)))[::-1]
        for yi, row in zip(y, sub.itertuples(), strict=True):
            if row.seeds > 1:
                low, high = row.acc - row.acc_sd, row.acc + row.acc_sd
            else:
                low, high = proportion_confint(round(row.acc * row.n), row.n, method="wilson")
            colour = "#555555" if row.recovery == BASE else data.colour(row.recovery)
            ax.errorbar(row.acc, yi, xerr=[[row.acc - low], [high - row.acc]], fmt="o", color=colour, capsize=3)
            note = f"{row.acc:.3f}"
            if costs is not None and row.recovery != BASE and (row.model, row.compression, row.recovery) in costs.index:
                c = costs.loc[(row.model, row.compression, row.recovery)]
                note += f"   +{c.extra_params:,.0f} params, {c.training_time_s:,.0f} s"
            ax.annotate(note, (high, yi), xytext=(6, -3), textcoords="offset points", fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xlim(0, 1.25)
        ax.axvline(sub.acc.iloc[0], color="#999999", linestyle=":", linewidth=1)
        ax.set_title(f"{model} / {comp}: knowledge accuracy, pooled test questions (base: dotted)", fontsize=9)
    axes[-1].set_xlabel("accuracy (95% Wilson interval of one run; ± sd over seeds); cost beside each remedy")
    if not comps:
        axes[0].text(0.5, 0.5, "no compressed model in this run", ha="center", transform=axes[0].transAxes)
    return fig


def remedy_deltas(data: Inputs):
    """Per compression, each remedy's per-question change in the right choice's probability
    against the compressed model (test questions, mean over seeds): a histogram per remedy."""
    import numpy as np

    plt = _pyplot()
    q = data.questions
    comps = [] if q.empty else [(m, c) for m, c in dict.fromkeys(zip(q.model, q.compression, strict=True))
                                if c != BASE]
    fig, axes = _panels(plt, len(comps), 9, 3)
    bins = np.linspace(-1, 1, 41)
    for ax, (model, comp) in zip(axes, comps, strict=False):
        sub = q[(q.model == model) & (q.compression == comp)]
        mean = sub.groupby(["recovery", "task", "doc_id"]).p_right.mean()
        compressed = mean.loc[BASE] if BASE in mean.index.get_level_values(0) else None
        for rec in [r for r in dict.fromkeys(sub.recovery) if r != BASE]:
            if compressed is None:
                break
            delta = (mean.loc[rec] - compressed).dropna()
            ax.hist(delta, bins=bins, histtype="step", linewidth=1.5, color=data.colour(rec),
                    label=f"{rec}: mean {delta.mean():+.3f}, {int((delta > 0).sum())} up / {int((delta < 0).sum())} down")
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_ylabel("questions")
        ax.set_title(f"{model} / {comp}: per-question change in P(right choice), remedy − compressed", fontsize=9)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("change in the right choice's probability among the choices")
    if not comps:
        axes[0].text(0.5, 0.5, "no compressed model in this run", ha="center", transform=axes[0].transAxes)
    return fig


def loss_anatomy(data: Inputs):
    """The loss rate (right in base, wrong compressed) per quartile of popularity (within the
    relation) and of the base model's confidence, per relation and over all, with Wilson 95%
    intervals; descriptive (the pre-specified test is in loss_model.csv)."""
    plt = _pyplot()
    a = data.loss_anatomy
    a = a[a.outcome == "lost"] if len(a) else a
    comps = [] if a.empty else list(dict.fromkeys(zip(a.model, a.compression, strict=True)))
    fig, grid = plt.subplots(max(len(comps), 1), 2, figsize=(11, 3.4 * max(len(comps), 1)), squeeze=False)
    for row, (model, comp) in zip(grid, comps, strict=False):
        for ax, axis in zip(row, ("popularity", "base confidence"), strict=True):
            sub = a[(a.model == model) & (a.compression == comp) & (a.axis == axis)]
            tasks = list(dict.fromkeys(sub.task))
            for i, task in enumerate(tasks):
                t = sub[sub.task == task].sort_values("bin")
                x = t.bin + (i - (len(tasks) - 1) / 2) * 0.06
                ax.errorbar(x, t.rate, yerr=_interval_bars(t.rate, t.ci_low, t.ci_high), capsize=2,
                            marker="o", linewidth=2.5 if task == "all" else 1, label=task,
                            color="black" if task == "all" else None, alpha=1 if task == "all" else 0.6)
            ax.set_xticks([1, 2, 3, 4], ["Q1 (least)", "Q2", "Q3", "Q4 (most)"])
            ax.set_ylim(0, 1)
            ax.set_xlabel(f"quartile of {axis}" + (" (within relation)" if axis == "popularity" else ""))
            ax.set_ylabel("lost (share of those right in base)")
            ax.set_title(f"{model} / {comp}: loss vs {axis}", fontsize=9)
            ax.legend(fontsize=6, ncol=2)
    if not comps:
        grid[0][0].text(0.5, 0.5, "no compressed model in this run", ha="center", transform=grid[0][0].transAxes)
    return fig


FIGURES: dict[str, Callable] = {
    "overview": overview,
    "remedy_deltas": remedy_deltas,
    "loss_anatomy": loss_anatomy,
    "accuracy_vs_compression": accuracy_vs_compression,
    "perplexity_vs_knowledge": perplexity_vs_knowledge,
    "cost_vs_accuracy": cost_vs_accuracy,
    "flips": flips,
    "budget_curves": budget_curves,
}


def save_figure(fig, out_png: str | Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG atomically and close it."""
    plt = _pyplot()
    fig.tight_layout()
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def run_figures(*, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str], out_files: dict[str, str]) -> None:
    """Draw every figure of :data:`FIGURES` into ``out_files[name]``."""
    data = Inputs.read(summary_csv, analysis_dir, knowledge_tasks)
    for name, draw in FIGURES.items():
        save_figure(draw(data), out_files[name])
