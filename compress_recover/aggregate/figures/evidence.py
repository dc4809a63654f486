"""The evidence's figures: accuracy vs compression, perplexity vs knowledge recovery, cost vs accuracy, flips, budget curves."""

from __future__ import annotations

from ...runs import BASE
from ..results import BUDGET_CURVE, FLIPS
from ..stats.paired import MAJORITY
from ..stats.questions import ALL_KNOWLEDGE
from ..tables import base_first_order, perplexity_recovery
from .base import LINESTYLES, MARKERS, Inputs, _interval_bars, _pyplot


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


B = BUDGET_CURVE.c
CURVE_PANELS = [(B.recovered_acc, B.acc_ci_low, B.acc_ci_high, "knowledge accuracy (pooled test questions)"),
                ("fraction", "fraction_low", "fraction_high", "recovery fraction")]  # the columns _curve_frame adds


def _curve_frame(sub):
    """One recovery group's curve sorted by steps, with the fraction it plots: control-
    subtracted where every checkpoint has a control run, else raw."""
    controlled = bool(sub.has_control.astype(bool).all())
    point, low, high = ((B.controlled_fraction, B.controlled_ci_low, B.controlled_ci_high) if controlled
                        else (B.recovery_fraction, B.ci_low, B.ci_high))
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
