"""The prompt-pool ablation: for a method that keeps one prompt of a pool per question, what its choice is worth.

Per run and task (and over all the run's tasks): how often each prompt was chosen and the
normalised entropy of those choices (H / log m: 1 an evenly used pool, 0 one prompt for
everything), the accuracy as chosen, each prompt's accuracy on the questions routed to it
against the other prompts' on the same questions, with one prompt drawn at random per
question, with the best fixed prompt (2-fold cross-fitted, and in sample).

The share of questions some prompt answers right (formerly ``acc_any_prompt``) is dropped,
not cross-fitted: it picks a prompt per question by looking at that question's label, so
there is no rule to fit on one half and score on the other (cross-fitting it would be the
best fixed prompt, already here). As a maximum over correlated predictors it is an oracle's
bound that grows with the pool's size even when every prompt is a coin flip (1 - 2^-k for
k independent ones), so it would read as reachable accuracy that no method can reach.
"""

from __future__ import annotations

from ...prompt_choice import normalised_entropy
from .bootstrap import stable_seed

POOLED = "(all tasks)"  # the task name of a run's row over all its knowledge questions
POOL_COLUMNS = ["model", "compression", "recovery", "seed", "run", "task", "n", "pool_size", "chosen_counts",
                "entropy", "acc_as_chosen", "routed_own", "routed_others", "acc_chosen_forced", "acc_random_prompt",
                "acc_random_expected", "acc_best_fixed_crossfit", "best_fixed_prompts", "acc_best_fixed_in_sample",
                "acc_per_prompt"]


def _pool_run_ablation(frame, seed: int) -> dict:
    """The ablation numbers of one run of a prompt-pool method (see :func:`pool_ablation`)."""
    import numpy as np

    chosen = frame.pool_choice.to_numpy(dtype=float)
    out = {"n": len(frame), "acc_as_chosen": float(frame.correct.mean())}
    forced_rows = [s for s in frame.pool_correct if s]
    size = len(forced_rows[0]) if forced_rows and len(forced_rows) == len(frame) else None
    pool = size or int(np.nanmax(chosen)) + 1
    counts = np.bincount(chosen.astype(int), minlength=pool)
    out.update(pool_size=pool, chosen_counts="/".join(map(str, counts)), entropy=round(normalised_entropy(counts), 4))
    if size is None:
        return out
    forced = np.array([[c == "1" for c in s] for s in frame.pool_correct], dtype=float)  # questions × prompts
    n = len(forced)
    own, others = [], []
    for i in range(size):  # each prompt on the questions routed to it, against the other prompts there
        routed = forced[chosen.astype(int) == i]
        own.append(f"{routed[:, i].mean():.3f}" if len(routed) else "-")
        others.append(f"{np.delete(routed, i, axis=1).mean():.3f}" if len(routed) and size > 1 else "-")
    out.update(routed_own="/".join(own), routed_others="/".join(others))
    rng = np.random.default_rng(seed)
    random_pick = rng.integers(0, size, size=n)
    halves = np.array_split(rng.permutation(n), 2)
    best = [int(np.argmax(forced[h].mean(axis=0))) for h in halves]  # first maximum on ties
    crossfit = (forced[halves[1], best[0]].sum() + forced[halves[0], best[1]].sum()) / n
    out.update(
        acc_chosen_forced=float(forced[np.arange(n), chosen.astype(int)].mean()),
        acc_random_prompt=float(forced[np.arange(n), random_pick].mean()),
        acc_random_expected=float(forced.mean()),
        acc_best_fixed_crossfit=float(crossfit),
        best_fixed_prompts=f"{best[0]}|{best[1]}",
        acc_best_fixed_in_sample=float(forced.mean(axis=0).max()),
        acc_per_prompt="/".join(f"{a:.3f}" for a in forced.mean(axis=0)),
    )
    return out


def pool_ablation(table, *, seed: int):
    """Per run of a method that keeps one prompt of a pool per question: how often each
    prompt was chosen, the accuracy as chosen, with one prompt drawn at random per question
    (seeded; and its expectation, the mean over prompts), with the best fixed prompt chosen
    by 2-fold cross-fitting (questions split in two seeded halves; the prompt best on one
    half is scored on the other and vice versa) and the in-sample best fixed prompt
    (optimistic). Descriptive, outside the verdict's error budget."""
    import pandas as pd

    pooled = table[table.pool_choice.notna()]

    def row(model, comp, rec, run, task, frame) -> dict:
        run_seed = frame.seed.iloc[0]
        return {"model": model, "compression": comp, "recovery": rec,
                "seed": None if pd.isna(run_seed) else int(run_seed), "run": run, "task": task,
                **_pool_run_ablation(frame, stable_seed(seed, model, comp, run, task, "pool"))}

    rows = [row(*key, frame) for key, frame in
            pooled.groupby(["model", "compression", "recovery", "run", "task"], sort=True)]
    rows += [row(*key, POOLED, frame) for key, frame in
             pooled.groupby(["model", "compression", "recovery", "run"], sort=True)
             if frame.task.nunique() > 1]  # the run over all its knowledge questions
    return pd.DataFrame(rows, columns=POOL_COLUMNS)
