"""Tables derived from the summary, shared by the figures and the report."""

from __future__ import annotations

PPL_METRIC = "word_perplexity"


def knowledge_accuracy(summary, knowledge_tasks):
    """Pooled knowledge accuracy per (model, compression, recovery): mean over questions."""
    acc = summary[(summary.metric == "acc") & summary.task.isin(knowledge_tasks) & (summary.subtask == summary.task)]
    acc = acc.assign(correct=acc.value * acc.n)
    pooled = acc.groupby(["model", "compression", "recovery"], sort=False).agg(correct=("correct", "sum"),
                                                                               n=("n", "sum"))
    pooled["acc"] = pooled.correct / pooled.n
    pooled["stderr"] = (pooled.acc * (1 - pooled.acc) / pooled.n) ** 0.5
    return pooled.reset_index()


def perplexity(summary):
    ppl = summary[summary.metric == PPL_METRIC]
    return ppl.set_index(["model", "compression", "recovery"])["value"]


def perplexity_recovery(summary):
    """(ppl_compressed - ppl_recovered) / (ppl_compressed - ppl_base) per recovered model."""
    import pandas as pd

    ppl = perplexity(summary)
    rows = []
    for (model, comp, rec), value in ppl.items():
        if comp == "none" or rec == "none":
            continue
        base, compressed = ppl.get((model, "none", "none")), ppl.get((model, comp, "none"))
        if base is None or compressed is None:
            continue
        damage = compressed - base
        rows.append({"model": model, "compression": comp, "recovery": rec, "perplexity": value,
                     "perplexity_base": base, "perplexity_compressed": compressed,
                     "perplexity_recovery": (compressed - value) / damage if damage > 0 else float("nan")})
    return pd.DataFrame(rows)
