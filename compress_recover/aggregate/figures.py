"""Rule ``figures``: the report's pictures as PNG files, one small function per figure.

Each figure function takes the :class:`Inputs` read once from the summary and the
analysis, and returns a matplotlib figure; :data:`FIGURES` maps the figure's name (its
file ``results/figures/<name>.png``) to its function, in the report's order. A recovery
method has the same colour in every figure (:func:`.tables.method_colour`); recovery
groups of one method (e.g. other objectives) differ by line style or marker. Runs with
several seeds are shown as their mean, error bars the sd over seeds (the binomial standard
error with one seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_file, read_json
from .stats import ALL_KNOWLEDGE, method_of
from .tables import BASE, base_first_order, knowledge_accuracy, method_colour, perplexity_recovery

MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LINESTYLES = ["-", "-.", ":", (0, (5, 1))]


@dataclass(frozen=True)
class Inputs:
    summary: "pandas.DataFrame"  # noqa: F821
    fractions: "pandas.DataFrame"  # noqa: F821
    flips: "pandas.DataFrame"  # noqa: F821
    accuracy: "pandas.DataFrame"  # noqa: F821  pooled knowledge accuracy per model
    methods: dict  # recovery group (or run) -> method

    @classmethod
    def read(cls, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str]) -> "Inputs":
        import pandas as pd

        summary = pd.read_csv(summary_csv)
        verdict = Path(analysis_dir) / "verdict.json"
        methods = read_json(verdict).get("methods", {}) if verdict.exists() else {}
        return cls(summary=summary, fractions=pd.read_csv(Path(analysis_dir) / "recovery_fraction.csv"),
                   flips=pd.read_csv(Path(analysis_dir) / "flips.csv", keep_default_na=False),
                   accuracy=knowledge_accuracy(summary, knowledge_tasks), methods=methods)

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
    """Perplexity recovery fraction against knowledge recovery fraction, per recovered model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ppl = perplexity_recovery(data.summary)
    know = data.fractions[data.fractions.task == ALL_KNOWLEDGE]
    merged = know.merge(ppl, on=["model", "compression", "recovery"], how="inner") if len(ppl) else ppl
    if len(merged):
        for row in merged.itertuples():
            ax.scatter(row.perplexity_recovery, row.recovery_fraction, s=40, color=data.colour(row.recovery),
                       marker=MARKERS[data.variant(row.recovery) % len(MARKERS)])
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

    pooled = data.flips[data.flips.task == ALL_KNOWLEDGE]
    bars = []
    for (_, comp), sub in pooled.groupby(["model", "compression"], sort=False):
        lost = int(sub[sub.category == "lost"]["count"].sum())
        won = sub[sub.category == "recovered"].groupby("recovery", sort=True)["count"].mean()
        broken = sub[sub.category == "broken"].groupby("recovery", sort=True)["count"].mean()
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
