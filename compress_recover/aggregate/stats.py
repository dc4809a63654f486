"""The statistics behind the verdict: recovery fractions, knowledge flips, paired tests.

Everything works on per-question correctness read from the evaluation samples, so
models are compared on the same questions (paired):

- recovery fraction of a recovered model: (recovered - compressed) / (base - compressed)
  on accuracy, with a seeded bootstrap interval over questions (all three models
  resampled on the same questions); undefined (NaN), not infinite, when compression did
  no damage (base - compressed <= 0);
- flips: per (model, compression, task) the questions the base model got right and the
  compressed model kept or lost, which recovery methods won the lost ones back (and how
  many several methods won back), and which right answers a recovery broke;
- McNemar's exact test (two-sided binomial on the discordant pairs) of each recovery vs
  the compressed model, of every input-side recovery vs every parameter-side one, and of
  the compressed vs the base model.

A recovery's side (``parameters``: new weights inside the model; ``input``: prompts at
the input) comes from its method's registration, passed in as ``methods`` (recovery
name -> method) and ``sides`` (method -> side).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..io import read_jsonl

KEYS = ["model", "compression", "recovery", "task"]
ALL_KNOWLEDGE = "all_knowledge"  # the pooled questions of every knowledge task


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a right & b wrong,
    a wrong & b right): a binomial test of a_only out of a_only + b_only at 1/2."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def correctness(samples_file: str | Path, metric: str = "acc") -> dict[int, bool]:
    """doc_id -> whether the question was answered right, from lm-eval's samples."""
    out = {}
    for row in read_jsonl(samples_file):
        if metric not in row:
            raise KeyError(f"{samples_file}: sample {row.get('doc_id')} has no metric '{metric}'")
        out[int(row["doc_id"])] = bool(row[metric] >= 0.5)
    return out


def correctness_table(entries: list[tuple[dict, str]], metric: str = "acc") -> "pandas.DataFrame":  # noqa: F821
    """One row per (model, compression, recovery, task, doc_id) with ``correct`` (bool)."""
    import pandas as pd

    frames = []
    for labels, samples in entries:
        answers = correctness(samples, metric)
        frame = pd.DataFrame({"doc_id": list(answers), "correct": list(answers.values())})
        for k in KEYS:
            frame[k] = labels[k]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[[*KEYS, "doc_id", "correct"]]


def with_pooled_task(table, knowledge_tasks: list[str]):
    """Append the pooled task ``all_knowledge``: every knowledge question, ids made unique."""
    import pandas as pd

    pooled = table[table.task.isin(knowledge_tasks)].copy()
    if pooled.empty:
        return table
    pooled["doc_id"] = pooled["task"] + ":" + pooled["doc_id"].astype(str)
    pooled["task"] = ALL_KNOWLEDGE
    table = table.copy()
    table["doc_id"] = table["doc_id"].astype(str)
    return pd.concat([table, pooled], ignore_index=True)


def _vectors(table, model, task, cells: list[tuple[str, str]]):
    """Aligned correctness arrays for (compression, recovery) cells on their common questions."""
    import numpy as np

    sub = table[(table.model == model) & (table.task == task)]
    series = []
    for comp, rec in cells:
        s = sub[(sub.compression == comp) & (sub.recovery == rec)].set_index("doc_id")["correct"]
        if s.empty:
            return None
        series.append(s)
    common = series[0].index
    for s in series[1:]:
        if set(s.index) != set(common):
            raise ValueError(f"{model}/{task}: the models were scored on different questions {cells}")
    return [np.asarray(s.loc[common], dtype=bool) for s in series]


def bootstrap_fraction(base, comp, rec, *, iters: int, seed: int, level: float = 0.95) -> dict:
    """Recovery fraction and its percentile bootstrap interval over questions.

    Resamples where compression did no damage have no fraction; the interval is given
    only when at least ``level`` of the resamples define one (else NaN: the data cannot
    bound it)."""
    import numpy as np

    def fraction(b, c, r):
        damage = b - c
        return (r - c) / damage if damage > 0 else float("nan")

    value = fraction(base.mean(), comp.mean(), rec.mean())
    out = {"recovery_fraction": value, "ci_low": float("nan"), "ci_high": float("nan")}
    if math.isnan(value):
        return out
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(iters, len(base)))
    b, c, r = base[idx].mean(1), comp[idx].mean(1), rec[idx].mean(1)
    damage = b - c
    defined = damage > 0
    if defined.mean() >= level:
        fractions = (r[defined] - c[defined]) / damage[defined]
        tail = (1 - level) / 2 * 100
        out["ci_low"], out["ci_high"] = (float(x) for x in np.percentile(fractions, [tail, 100 - tail]))
    return out


def recovery_fractions(table, *, base: str = "none", iters: int = 1000, seed: int = 0):
    """Per (model, compression, recovery, task): accuracies, recovery fraction and CI."""
    import pandas as pd

    rows = []
    cells = table[KEYS].drop_duplicates()
    for (model, comp, rec, task) in cells.itertuples(index=False):
        if comp == base:
            continue
        vectors = _vectors(table, model, task, [(base, "none"), (comp, "none"), (comp, rec)])
        if vectors is None:
            continue
        b, c, r = vectors
        rows.append({"model": model, "compression": comp, "recovery": rec, "task": task, "n": len(b),
                     "base_acc": b.mean(), "compressed_acc": c.mean(), "recovered_acc": r.mean(),
                     **bootstrap_fraction(b, c, r, iters=iters, seed=seed)})
    return pd.DataFrame(rows)


def flips(table, *, base: str = "none"):
    """Question counts per (model, compression, task, category, recovery).

    Categories: ``kept`` (right before and after compression), ``lost`` (right before,
    wrong after), ``gained`` (wrong before, right after), ``recovered`` (lost, then right
    after this recovery), ``recovered_by_several`` (lost, won back by two or more
    recovery methods), ``broken`` (right after compression, wrong after this recovery).
    """
    import numpy as np
    import pandas as pd

    rows = []
    for (model, comp, task), sub in table.groupby(["model", "compression", "task"], sort=True):
        if comp == base:
            continue
        recs = sorted(r for r in sub.recovery.unique() if r != "none")
        vectors = _vectors(table, model, task, [(base, "none"), (comp, "none"), *((comp, r) for r in recs)])
        if vectors is None:
            continue
        b, c, *rs = vectors
        lost = b & ~c

        def add(category, count, recovery=""):
            rows.append({"model": model, "compression": comp, "task": task, "category": category,
                         "recovery": recovery, "count": int(count)})

        add("kept", (b & c).sum())
        add("lost", lost.sum())
        add("gained", (~b & c).sum())
        for rec, r in zip(recs, rs, strict=True):
            add("recovered", (lost & r).sum(), rec)
            add("broken", (c & ~r).sum(), rec)
        if rs:
            add("recovered_by_several", (lost & (np.sum(rs, axis=0) >= 2)).sum())
    return pd.DataFrame(rows, columns=["model", "compression", "task", "category", "recovery", "count"])


def paired_tests(table, *, methods: dict[str, str], sides: dict[str, str], base: str = "none"):
    """McNemar exact tests: compressed vs base; each recovery vs the compressed model;
    ``input_vs_parameters``: every input-side recovery (b) vs every parameter-side one (a)."""
    import pandas as pd

    rows = []

    def test(model, task, comparison, a_cell, b_cell):
        vectors = _vectors(table, model, task, [a_cell, b_cell])
        if vectors is None:
            return
        a, b = vectors
        a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
        rows.append({"model": model, "task": task, "comparison": comparison, "a": "/".join(a_cell),
                     "b": "/".join(b_cell), "n": len(a), "a_acc": a.mean(), "b_acc": b.mean(),
                     "a_only": a_only, "b_only": b_only, "p_value": mcnemar_exact(a_only, b_only)})

    for (model, comp, task), sub in table.groupby(["model", "compression", "task"], sort=True):
        if comp == base:
            continue
        test(model, task, "compression", (base, "none"), (comp, "none"))
        recs = sorted(r for r in sub.recovery.unique() if r != "none")
        for rec in recs:
            test(model, task, "recovery", (comp, "none"), (comp, rec))
        side = {r: sides.get(methods.get(r, r)) for r in recs}
        for parameters in (r for r in recs if side[r] == "parameters"):
            for prompt in (r for r in recs if side[r] == "input"):
                test(model, task, "input_vs_parameters", (comp, parameters), (comp, prompt))
    return pd.DataFrame(rows, columns=["model", "task", "comparison", "a", "b", "n", "a_acc", "b_acc", "a_only",
                                       "b_only", "p_value"])


def verdict_rule(sides: dict[str, str]) -> str:
    """The verdict's rule in words, naming the methods of each side (method -> side)."""

    def named(side: str) -> str:
        return ", ".join(sorted(m for m, s in sides.items() if s == side)) or "none registered"

    return (
        "Per compression setting, on the pooled questions of every knowledge task: "
        "(1) if the compressed model is not worse than the base model with McNemar p < alpha, "
        "there is no measurable knowledge loss to explain; "
        "(2) a recovery method wins knowledge back when it beats the compressed model with McNemar p < alpha "
        "and its recovery fraction is at least min_recovery_fraction; "
        f"(3) if an input-side method ({named('input')}) wins it back, the knowledge was displaced; "
        f"(4) else, if only a method with new parameters ({named('parameters')}) wins it back, it was forgotten; "
        "(5) else the verdict is inconclusive: no method tried won back enough at this budget, "
        "so the budget is too small to decide (or the knowledge is gone for every method tried)."
    )


def verdicts(fractions, tests, *, methods: dict[str, str], sides: dict[str, str], alpha: float,
             min_recovery_fraction: float, budget: dict, task: str = ALL_KNOWLEDGE) -> list[dict]:
    """The verdict per (model, compression), with the evidence it rests on."""
    out = []
    fr = fractions[fractions.task == task]
    ts = tests[tests.task == task]
    for (model, comp), cell in fr.groupby(["model", "compression"], sort=True):
        damage = ts[(ts.model == model) & (ts.comparison == "compression") & (ts.b == f"{comp}/none")]
        if damage.empty:
            continue
        d = damage.iloc[0]
        evidence = {"base_acc": d.a_acc, "compressed_acc": d.b_acc, "lost_only": int(d.a_only),
                    "gained_only": int(d.b_only), "p_compression": d.p_value, "n": int(d.n), "methods": []}
        if not (d.p_value < alpha and d.a_acc > d.b_acc):
            out.append({"model": model, "compression": comp, "verdict": "no measurable loss",
                        "reason": f"compressed {d.b_acc:.3f} vs base {d.a_acc:.3f}, McNemar p = {d.p_value:.3g} "
                                  f"(alpha {alpha})", "evidence": evidence})
            continue
        winners = {"input": [], "parameters": []}
        for row in cell.itertuples(index=False):
            if row.recovery == "none":
                continue
            t = ts[(ts.model == model) & (ts.comparison == "recovery") & (ts.b == f"{comp}/{row.recovery}")]
            if t.empty:
                continue
            t = t.iloc[0]
            method = methods.get(row.recovery, row.recovery)
            side = sides[method]
            wins = bool(t.p_value < alpha and t.b_acc > t.a_acc and row.recovery_fraction >= min_recovery_fraction)
            evidence["methods"].append({
                "recovery": row.recovery, "method": method, "side": side, "acc": row.recovered_acc,
                "recovery_fraction": row.recovery_fraction, "ci_low": row.ci_low, "ci_high": row.ci_high,
                "newly_right": int(t.b_only), "newly_wrong": int(t.a_only), "p_value": t.p_value, "wins": wins})
            if wins:
                winners[side].append(row.recovery)
        tokens = budget["steps"] * budget["batch_size"] * budget["seq_len"]
        if winners["input"]:
            verdict = "displaced"
            reason = f"input-side recovery ({', '.join(winners['input'])}) won the knowledge back"
        elif winners["parameters"]:
            verdict = "forgotten"
            reason = (f"only recovery with new parameters ({', '.join(winners['parameters'])}) won the knowledge "
                      "back; no input-side prompt did")
        else:
            verdict = "inconclusive"
            reason = (f"no recovery method won back at least {min_recovery_fraction:.0%} of the loss with p < {alpha} "
                      f"at this budget ({budget['steps']} steps, {tokens:,} tokens): the budget is too small to "
                      "decide, or the knowledge is gone for every method tried")
        out.append({"model": model, "compression": comp, "verdict": verdict, "reason": reason, "evidence": evidence})
    return out
