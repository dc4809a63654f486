"""Rule ``figures``: the report's pictures as PNG files, one small function per figure.

Each figure function takes the :class:`Inputs` read once from the summary and the
analysis, and returns a matplotlib figure; :data:`FIGURES` maps the figure's name (its
file ``results/figures/<name>.png``) to its function, in the report's order. A recovery
method has the same colour in every figure (:mod:`compress_recover.recover.colours`); recovery
groups of one method (e.g. other objectives) differ by line style or marker. Runs with
several seeds are shown as their mean, error bars the sd over seeds (the binomial standard
error with one seed). Knowledge accuracy is on the test questions, every figure but the
budget curve shows the final budget's runs only. Runs whose recovery training failed have
no score and no cost: they are not drawn (the report names them).

The figures read the results record only (:class:`.base.Inputs`, from
:meth:`..results.Results.load`); :mod:`.first_screen` draws the report's first screen,
:mod:`.evidence` the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...io import atomic_file
from .base import Inputs, _pyplot
from .evidence import accuracy_vs_compression, budget_curves, cost_vs_accuracy, flips, perplexity_vs_knowledge
from .first_screen import loss_anatomy, overview, remedy_deltas

__all__ = ["FIGURES", "Inputs", "run_figures", "save_figure", "accuracy_vs_compression", "budget_curves",
           "cost_vs_accuracy", "flips", "loss_anatomy", "overview", "perplexity_vs_knowledge", "remedy_deltas"]


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
