"""The summary-derived tables the figures and the report share: mean ± sd over seeds, base model first.

Runs of the same recovery with different seeds are separate rows of the summary (columns
``seed`` and ``run``); these tables give their mean and their standard deviation over
seeds, and order rows and columns with the base model first. The headline tables show the
final budget's runs only (:func:`at_final_budget_rows`; intermediate checkpoints enter the
budget curve alone) and knowledge accuracy on the test questions only (from the
analysis's accuracy table, :func:`pooled_test_accuracy`). A recovery method's colour:
:func:`compress_recover.recover.colours.method_colour`.
"""

from __future__ import annotations

from ..runs import BASE
from .stats.budget import at_final_budget, final_steps
from .stats.questions import ALL_KNOWLEDGE

PPL_METRIC = "word_perplexity"
PPL_RECOVERY_COLUMNS = ["model", "compression", "recovery", "perplexity", "perplexity_base", "perplexity_compressed",
                        "perplexity_control", "perplexity_recovery", "perplexity_recovery_controlled"]
CELL = ["model", "compression", "recovery"]
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


def compute_dtypes(summary) -> dict[str, str]:
    """model -> the precision(s) its evaluations computed in (summary column ``dtype``),
    ", "-joined when its runs differ (e.g. jobs resolved ``auto`` on different nodes)."""
    if "dtype" not in summary:
        return {}
    rows = summary.dropna(subset=["dtype"])
    return {model: ", ".join(sorted(group.dtype.astype(str).unique())) for model, group in rows.groupby("model")}


def mean_sd(frame, value: str = "value"):
    """Mean, sd (NaN with one seed) and number of runs per (model, compression, recovery, task)."""
    keys = [c for c in (*CELL, "task") if c in frame]
    out = frame.groupby(keys, sort=False)[value].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": value, "std": f"{value}_sd", "count": "seeds"})


def pooled_test_accuracy(accuracy):
    """Pooled knowledge accuracy on the test questions per (model, compression, recovery)
    at the final budget, from the analysis's ``accuracy.csv``: the mean over runs (seeds) of
    each run's accuracy, ``acc_sd`` their sd and ``stderr`` the binomial standard error of
    one run."""
    if accuracy.empty:
        return accuracy.reindex(columns=[*CELL, "acc", "acc_sd", "n", "seeds", "stderr"])
    pooled = accuracy[accuracy.task == ALL_KNOWLEDGE][[*CELL, "acc", "acc_sd", "n", "seeds"]].reset_index(drop=True)
    pooled["stderr"] = (pooled.acc * (1 - pooled.acc) / pooled.n) ** 0.5
    return pooled


def at_final_budget_rows(summary, budget: dict | None):
    """The summary's rows at the final budget of ``budget`` (the record's ``budget``): what
    every headline table and figure shows."""
    return summary[at_final_budget(summary, final_steps(budget))].reset_index(drop=True)


def perplexity(summary):
    """Held-out perplexity per (model, compression, recovery), the mean over seeds."""
    ppl = summary[summary.metric == PPL_METRIC]
    return ppl.groupby(CELL, sort=False)["value"].mean()


def perplexity_recovery(summary):
    """Per recovered model, held-out perplexity against the base, the compressed model and the
    control (the same method applied to the base model: compression none, that recovery).

    The held-out text is from the domain the recovery trains on, so any training lowers its
    perplexity; the raw fraction credits that to recovery, the controlled one does not:

    - ``perplexity_recovery`` = (ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base);
    - ``perplexity_recovery_controlled`` = (ppl_compressed - ppl_recovered - (ppl_base -
      ppl_control)) / (ppl_compressed - ppl_base): the control's own drop subtracted, as the
      knowledge fraction subtracts the control's gain; 1 when the recovered compressed model
      is as good as the base model trained the same way, NaN without a control run.

    Both NaN where compression did not raise perplexity."""
    import pandas as pd

    ppl = perplexity(summary)
    rows = []
    for (model, comp, rec), value in ppl.items():
        if comp == BASE or rec == BASE:
            continue
        base, compressed = ppl.get((model, BASE, BASE)), ppl.get((model, comp, BASE))
        if base is None or compressed is None:
            continue
        control = ppl.get((model, BASE, rec), float("nan"))
        damage = compressed - base
        raw = (compressed - value) / damage if damage > 0 else float("nan")
        controlled = (compressed - value - (base - control)) / damage if damage > 0 else float("nan")
        rows.append({"model": model, "compression": comp, "recovery": rec, "perplexity": value,
                     "perplexity_base": base, "perplexity_compressed": compressed, "perplexity_control": control,
                     "perplexity_recovery": raw, "perplexity_recovery_controlled": controlled})
    return pd.DataFrame(rows, columns=PPL_RECOVERY_COLUMNS)
