"""The evidence's tables: the dev/test split, accuracy, recovery fractions, budget curves, collateral damage, format control, margins, prompt pools, flips, McNemar.

Each function is one section's context (:data:`..registry.SECTIONS`): it reads the
results' tables and returns them as cell texts (:func:`.cells.table`; the report's own
frames by :mod:`.frames`). A table with no row is None, and its template leaves it out.
"""

from __future__ import annotations

from ..results import DISTANCE, MARGIN_TESTS
from ..stats.questions import ALL_KNOWLEDGE
from .cells import table
from .first_screen import bases_text, figure
from .frames import (GAP, accuracy_pivot, checkpoint_table, collateral_table, content_free_frame, fraction_table,
                     perplexity_gaps, perplexity_uncontrolled)
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
    """Accuracy per task and the held-out perplexity, tasks × models; beside it each model's
    pooled accuracy above its content-free baseline (None without a content-free variant)."""
    content_free = content_free_frame(r.results.tables.content_free, r.precisions)
    return {"bases": bases_text(r.precisions), "accuracy": {"table": table(accuracy_pivot(
        r.summary, r.knowledge_tasks, r.precisions, r.results.tables.accuracy, r.failures)),
        "content_free": None if content_free is None else table(content_free)}}


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


DISTANCE_SHOWN = {"model": "model", "compression": "compression", "recovery": "recovery", "seed": "seed", "n": "n",
                  "kl_mean": "mean KL (nats)", "kl_p90": "KL 90th pct", "kl_p99": "KL 99th pct",
                  "at_risk": "base right", "lost": "lost", "auc_lost": "AUC: KL tells lost from kept",
                  "auc_low": "AUC 95% low", "auc_high": "AUC 95% high"}


def distance(r: ReportInputs) -> dict:
    """The KL to the base model beside the flips, on the pooled knowledge questions."""
    frame = r.results.tables.distance
    pooled = frame[frame[DISTANCE.c.task] == ALL_KNOWLEDGE] if len(frame) else frame
    return {"distance": shown_table(pooled[list(DISTANCE_SHOWN)].rename(columns=DISTANCE_SHOWN) if len(pooled)
                                    else pooled)}


def format_control(r: ReportInputs) -> dict:
    return {"bases": bases_text(r.precisions), "format_control": shown_table(r.results.tables.format_control)}


def margins(r: ReportInputs) -> dict:
    """The paired margin tests on the pooled knowledge questions."""
    frame = r.results.tables.margin_tests
    pooled = frame[frame[MARGIN_TESTS.c.task] == ALL_KNOWLEDGE] if len(frame) else frame
    return {"margins": shown_table(pooled, "{:.3g}")}


def ablation(r: ReportInputs) -> dict:
    """How each prompt pool was used in training, and the pool ablation at evaluation."""
    from ..stats.pool_flags import MIN_EXAMPLES
    from .costs import pool_training

    min_examples = (r.config.get("report") or {}).get("pool_min_examples", MIN_EXAMPLES)
    return {"pool": pool_training(r.costs, r.pool_choices, min_examples),
            "ablation": shown_table(r.results.tables.prompt_pool_ablation)}


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


# The levels table's columns as the report shows them.
LEVEL_COLUMNS = {"model": "model", "compression": "compression", "tensor_types": "its matrices hold",
                 "disk_mb": "MB", "questions": "test questions", "accuracy_base": "acc. (model)",
                 "accuracy": "acc. (torch)", "accuracy_llamacpp": "acc. (llama.cpp)", "lost": "lost",
                 "gained": "gained", "same_top": "same top answer", "mean_kl": "mean KL",
                 "kl_auc_lost": "KL AUC (lost)", "n_lost": "lost (AUC n)", "path_flips": "flips torch vs llama.cpp",
                 "path_same_top": "same top, paths", "path_mean_kl": "KL between paths",
                 "tokens_mismatched": "tokens differ", "compress_s": "make (s)", "torch_eval_s": "torch eval (s)",
                 "llamacpp_eval_s": "llama.cpp eval (s)"}


def levels(r: ReportInputs) -> dict | None:
    """Every compression against its model question by question (flips both ways, the same
    top answer, KL and whether KL finds the lost questions), a GGUF's two paths side by side,
    and a GGUF ladder's steps; None when the run made no levels table."""
    found = r.levels
    if found is None or not len(found["levels"]):
        return None
    frame = found["levels"].copy()
    frame["disk_mb"] = frame["disk_bytes"] / 1e6
    frame["tensor_types"] = [f"{t} ({types})" if isinstance(types, str) else "" for t, types in
                             zip(frame.gguf_type.fillna(""), frame.tensor_types, strict=True)]
    shown = frame[[c for c in LEVEL_COLUMNS if c in frame.columns]].rename(columns=LEVEL_COLUMNS)
    steps = found["steps"]
    return {"levels": {"table": table(shown), "steps": table(steps) if len(steps) else None,
                       "has_llamacpp": bool(frame.accuracy_llamacpp.notna().any())}}
