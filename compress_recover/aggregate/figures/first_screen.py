"""The first screen's figures: the overview per compression, each remedy's per-question change, the anatomy of the loss."""

from __future__ import annotations

from ...runs import BASE
from .base import Inputs, _interval_bars, _panels, _pyplot


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
