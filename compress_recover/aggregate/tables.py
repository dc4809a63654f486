"""Tables derived from the summary, shared by the figures and the report.

Runs of the same recovery with different seeds are separate rows of the summary (columns
``seed`` and ``run``); these tables give their mean and their standard deviation over
seeds, and order rows and columns with the base model first. Recovery methods get one
colour each, fixed by the method's name (:func:`method_colour`).
"""

from __future__ import annotations

import zlib

PPL_METRIC = "word_perplexity"
CELL = ["model", "compression", "recovery"]
BASE = "none"
# Colours by position in the recovery registry (so fixed per method name), "none" grey;
# a method outside the registry gets one of the remaining colours by a hash of its name.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
NONE_COLOUR = "#555555"


def method_colour(method: str) -> str:
    """The colour of a recovery method in every figure."""
    from ..recover import RECOVERY

    if method == BASE:
        return NONE_COLOUR
    names = [n for n in RECOVERY.names() if n != BASE]
    if method in names:
        return PALETTE[names.index(method) % len(PALETTE)]
    spare = PALETTE[len(names):] or PALETTE
    return spare[zlib.crc32(method.encode()) % len(spare)]


def _run_column(frame):
    """The summary's ``run`` column, or the recovery name for summaries without seeds."""
    return frame["run"].fillna(frame["recovery"]) if "run" in frame else frame["recovery"]


def base_first_order(cells) -> list[tuple]:
    """(model, compression, recovery) cells: per model the base model first, then every
    compression with its recoveries, ``none`` first."""
    return sorted(dict.fromkeys(map(tuple, cells)),
                  key=lambda c: (c[0], c[1] != BASE, c[1], c[2] != BASE, c[2]))


def base_precisions(summary) -> dict[str, str]:
    """model -> the precision of its base model (summary column ``base_precision``)."""
    if "base_precision" not in summary:
        return {}
    rows = summary.dropna(subset=["base_precision"]).drop_duplicates("model")
    return dict(zip(rows.model, rows.base_precision.astype(str), strict=True))


def mean_sd(frame, value: str = "value"):
    """Mean, sd (NaN with one seed) and number of runs per (model, compression, recovery, task)."""
    keys = [c for c in (*CELL, "task") if c in frame]
    out = frame.groupby(keys, sort=False)[value].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": value, "std": f"{value}_sd", "count": "seeds"})


def knowledge_accuracy(summary, knowledge_tasks):
    """Pooled knowledge accuracy per (model, compression, recovery): per run the mean over
    every knowledge question, then the mean over runs (seeds) with ``acc_sd`` their sd and
    ``stderr`` the binomial standard error of one run."""
    acc = summary[(summary.metric == "acc") & summary.task.isin(knowledge_tasks) & (summary.subtask == summary.task)]
    acc = acc.assign(correct=acc.value * acc.n, run=_run_column(acc))
    per_run = acc.groupby([*CELL, "run"], sort=False).agg(correct=("correct", "sum"), n=("n", "sum")).reset_index()
    per_run["acc"] = per_run.correct / per_run.n
    pooled = per_run.groupby(CELL, sort=False).agg(acc=("acc", "mean"), acc_sd=("acc", "std"), n=("n", "first"),
                                                    seeds=("run", "nunique"))
    pooled["stderr"] = (pooled.acc * (1 - pooled.acc) / pooled.n) ** 0.5
    return pooled.reset_index()


def perplexity(summary):
    """Held-out perplexity per (model, compression, recovery), the mean over seeds."""
    ppl = summary[summary.metric == PPL_METRIC]
    return ppl.groupby(CELL, sort=False)["value"].mean()


def perplexity_recovery(summary):
    """(ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base) per recovered model."""
    import pandas as pd

    ppl = perplexity(summary)
    rows = []
    for (model, comp, rec), value in ppl.items():
        if comp == BASE or rec == BASE:
            continue
        base, compressed = ppl.get((model, BASE, BASE)), ppl.get((model, comp, BASE))
        if base is None or compressed is None:
            continue
        damage = compressed - base
        rows.append({"model": model, "compression": comp, "recovery": rec, "perplexity": value,
                     "perplexity_base": base, "perplexity_compressed": compressed,
                     "perplexity_recovery": (compressed - value) / damage if damage > 0 else float("nan")})
    return pd.DataFrame(rows)
