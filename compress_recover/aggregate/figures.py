"""Rule ``figures``: the report's pictures as PNG files, one small function per figure.

Each figure function takes the :class:`Inputs` read once from the summary and the
analysis, and returns a matplotlib figure; :data:`FIGURES` maps the figure's name (its
file ``results/figures/<name>.png``) to its function, in the report's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_file
from .stats import ALL_KNOWLEDGE
from .tables import knowledge_accuracy, perplexity_recovery


@dataclass(frozen=True)
class Inputs:
    summary: "pandas.DataFrame"  # noqa: F821
    fractions: "pandas.DataFrame"  # noqa: F821
    flips: "pandas.DataFrame"  # noqa: F821
    accuracy: "pandas.DataFrame"  # noqa: F821  pooled knowledge accuracy per model

    @classmethod
    def read(cls, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str]) -> "Inputs":
        import pandas as pd

        summary = pd.read_csv(summary_csv)
        return cls(summary=summary, fractions=pd.read_csv(Path(analysis_dir) / "recovery_fraction.csv"),
                   flips=pd.read_csv(Path(analysis_dir) / "flips.csv", keep_default_na=False),
                   accuracy=knowledge_accuracy(summary, knowledge_tasks))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_compression(data: Inputs):
    """Pooled knowledge accuracy per compression setting, one series per recovery method."""
    plt = _pyplot()
    acc = data.accuracy
    compressions = sorted(dict.fromkeys(acc.compression), key=lambda c: c != "none")  # the base model first
    recoveries = sorted(dict.fromkeys(acc.recovery), key=lambda r: r != "none")
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
    return fig


def perplexity_vs_knowledge(data: Inputs):
    """Perplexity recovery fraction against knowledge recovery fraction, per recovered model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ppl = perplexity_recovery(data.summary)
    know = data.fractions[data.fractions.task == ALL_KNOWLEDGE]
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
    return fig


def cost_vs_accuracy(data: Inputs):
    """Pooled knowledge accuracy against extra parameters and against per-token latency."""
    plt = _pyplot()
    costs = data.summary.drop_duplicates(["model", "compression", "recovery"])[
        ["model", "compression", "recovery", "extra_params", "latency_token_s"]]
    merged = data.accuracy.merge(costs, on=["model", "compression", "recovery"])
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
    return fig


def flips(data: Inputs):
    """Of the questions compression lost, how many each recovery won back; and how many it broke."""
    plt = _pyplot()
    pooled = data.flips[data.flips.task == ALL_KNOWLEDGE]
    bars = []
    for (_, comp), sub in pooled.groupby(["model", "compression"], sort=False):
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
    return fig


FIGURES: dict[str, Callable] = {
    "accuracy_vs_compression": accuracy_vs_compression,
    "perplexity_vs_knowledge": perplexity_vs_knowledge,
    "cost_vs_accuracy": cost_vs_accuracy,
    "flips": flips,
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
