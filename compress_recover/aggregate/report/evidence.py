"""The evidence's tables: the dev/test split, accuracy, recovery fractions, budget curves, collateral damage, format control, margins, prompt pools, flips, McNemar.

Each function is one section's context (:data:`..registry.SECTIONS`): it reads the
results' tables and returns them as cell texts (:func:`.cells.table`; the report's own
frames by :mod:`.frames`). A table with no row is None, and its template leaves it out.
"""

from __future__ import annotations

from ..results import MARGIN_TESTS
from ..stats.questions import ALL_KNOWLEDGE
from .cells import table
from .first_screen import bases_text, figure
from .frames import (GAP, accuracy_pivot, checkpoint_table, collateral_table, fraction_table, perplexity_gaps,
                     perplexity_uncontrolled)
from .inputs import ReportInputs


def shown_table(frame, floatfmt: str = "{:.3f}") -> dict | None:
    """An analysis table shown as it is; None when it has no row."""
    if frame is None or frame.empty:
        return None
    return table(frame, floatfmt)


def split(r: ReportInputs) -> dict:
    """The dev/test split's settings and counts, and the dev questions' accuracy (for choosing)."""
    settings, dev = r.results.split, r.results.tables.dev_accuracy
    if not settings:
        return {"split": None}
    return {"split": {"seed": settings["seed"], "dev_fraction": settings["dev_fraction"],
                      "held_out": ", ".join(settings.get("held_out_tasks", [])),
                      "counts": table(split_counts(settings)),
                      "dev": table(checkpoint_table(dev, ("rank",))) if len(dev) else None}}


def accuracy(r: ReportInputs) -> dict:
    """Accuracy per task and the held-out perplexity, tasks × models."""
    return {"bases": bases_text(r.precisions), "accuracy": {"table": table(accuracy_pivot(
        r.summary, r.knowledge_tasks, r.precisions, r.results.tables.accuracy, r.failures))}}


def fractions(r: ReportInputs) -> dict:
    """The pooled recovery fractions beside the perplexity recovery (raw and against the
    control run), where perplexity hides a knowledge loss, and which models cannot be
    compared so for want of a control run."""
    frame, ppl = r.results.tables.recovery_fraction, r.perplexity_recovery
    return {"fractions": {"gaps": perplexity_gaps(frame, ppl), "has_perplexity": bool(len(ppl)), "gap": GAP,
                          "uncontrolled": ", ".join(perplexity_uncontrolled(frame, ppl)),
                          "table": table(fraction_table(frame, ppl, r.failures), "{:.3f}")}}


def budget(r: ReportInputs) -> dict:
    """The budget curves' figure and table; None with one budget."""
    curve = r.results.tables.budget_curve
    return {"budget": None if curve.empty else {"figure": figure(r.figure("budget_curves", required=True),
                                                                 "budget curves"),
                                                "table": table(checkpoint_table(curve))}}


def collateral(r: ReportInputs) -> dict:
    return {"collateral": shown_table(collateral_table(r.results.tables.collateral))}


def format_control(r: ReportInputs) -> dict:
    return {"bases": bases_text(r.precisions), "format_control": shown_table(r.results.tables.format_control)}


def margins(r: ReportInputs) -> dict:
    """The paired margin tests on the pooled knowledge questions."""
    frame = r.results.tables.margin_tests
    pooled = frame[frame[MARGIN_TESTS.c.task] == ALL_KNOWLEDGE] if len(frame) else frame
    return {"margins": shown_table(pooled, "{:.3g}")}


def ablation(r: ReportInputs) -> dict:
    """How each prompt pool was used in training, and the pool ablation at evaluation."""
    from .costs import pool_training

    return {"pool": pool_training(r.costs), "ablation": shown_table(r.results.tables.prompt_pool_ablation)}


def flips(r: ReportInputs) -> dict:
    return {"flips": table(r.results.tables.flips)}


def mcnemar(r: ReportInputs) -> dict:
    return {"bases": bases_text(r.precisions), "mcnemar": table(r.results.tables.paired_tests, "{:.3g}")}


def split_counts(split: dict):
    """Dev and test questions per knowledge task, and which tasks are held out."""
    import pandas as pd

    held = split.get("held_out_tasks", [])
    return pd.DataFrame([{"task": t, "dev questions": c["dev"], "test questions": c["test"],
                          "held out": "yes" if t in held else ""} for t, c in split["counts"].items()])
