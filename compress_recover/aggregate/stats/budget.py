"""Budgets and checkpoints: which runs are the final budget's, and the budget curve and dev accuracy per checkpoint.

Each recovery trains once to the final budget (the largest of ``recovery.budget.steps``)
and saves a checkpoint at every earlier step; only the final budget's runs enter the
verdict and the headline tables (:func:`at_final_budget`). Per checkpoint, on the pooled
questions, :func:`checkpoint_rows` gives accuracy and recovery fractions with descriptive
95% intervals: on the test questions the budget curve (:func:`budget_curve`), on the dev
questions the table recipes are chosen from (:func:`dev_accuracy`).
"""

from __future__ import annotations

from ...runs import BASE, budget_tokens, checkpoint_label
from ...tokens import budget_steps as steps_list
from .bootstrap import accuracy_draws, interval
from .fractions import fraction, fraction_rows, grid_pairs
from .grid import build_grids
from .methods import Methods
from .questions import ALL_KNOWLEDGE

CHECKPOINT_COLUMNS = ["model", "compression", "recovery", "method", "side", "steps", "tokens", "n", "seeds",
                      "base_acc", "compressed_acc", "recovered_acc", "recovered_sd", "acc_ci_low", "acc_ci_high",
                      "recovery_fraction", "ci_low", "ci_high", "has_control", "control_gain",
                      "controlled_fraction", "controlled_ci_low", "controlled_ci_high"]


def budget_steps(budget: dict | None) -> list[int]:
    """The evaluated budgets, sorted: config.yaml ``recovery.budget.steps`` (an int, or a
    list for a budget curve); empty without a budget."""
    return steps_list(budget["steps"]) if budget else []


def final_steps(budget: dict | None) -> int | None:
    """The final budget: the largest of ``recovery.budget.steps`` (None without a budget)."""
    steps = budget_steps(budget)
    return steps[-1] if steps else None


def final_budget(budget: dict | None) -> dict | None:
    """The final budget's steps, batch_size, seq_len and tokens (None without a budget)."""
    steps = final_steps(budget)
    if steps is None:
        return None
    return {"steps": steps, "batch_size": budget["batch_size"], "seq_len": budget["seq_len"],
            "tokens": budget_tokens(steps, budget)}


def at_final_budget(frame, final: int | None):
    """Mask of the rows of ``frame`` (a question table or the summary) that belong to the
    final budget: without training (``steps`` empty, as for labels written before budget
    curves) or trained for ``final`` steps. Every row when ``final`` is None or there is no
    ``steps`` column."""
    import pandas as pd

    if final is None or "steps" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["steps"].isna() | (frame["steps"] == final)


def checkpoint_steps(table, budget: dict | None):
    """``table`` with every trained run's ``steps`` checked against ``recovery.budget.steps``
    (labels written before budget curves have none: they are the final budget's), and the
    final budget (without a budget, the largest steps in the table). Fails when two runs of
    one recovery group share a seed at one budget (a checkpoint labelled without its steps)."""
    allowed = budget_steps(budget)
    trained = table.recovery != BASE
    steps = table["steps"]
    outside = table[trained & steps.notna() & ~steps.isin(allowed)] if allowed else table.iloc[:0]
    if len(outside):
        raise ValueError(f"run(s) {sorted(set(outside.run))} were trained for {sorted(set(outside.steps))} steps, "
                         f"not one of recovery.budget.steps {allowed}")
    final = allowed[-1] if allowed else (int(steps.max()) if steps.notna().any() else None)
    table = table.assign(steps=steps.mask(trained & steps.isna(), final).astype("Int64"))
    runs = table[table.recovery != BASE].groupby(["model", "compression", "recovery", "seed", "steps", "task"],
                                                 dropna=False).run.unique()
    clash = [list(r) for r in runs if len(r) > 1]
    if clash:
        raise ValueError(f"runs {clash[:3]} share recovery group, seed and steps: label every checkpoint with its "
                         "steps (an intermediate checkpoint must not count as a further seed)")
    return table, final


def by_checkpoint(table):
    """``table`` with each checkpoint (recovery group, steps) of a trained run relabelled as a
    recovery group of its own (:func:`compress_recover.runs.checkpoint_label`; the untrained
    models keep ``none``), so the grid machinery (paired draws, fractions, the format control
    at the same steps) applies per budget; and the map back, pseudo-group -> (group, steps)."""
    import pandas as pd

    trained = table.recovery != BASE
    labels = pd.Series([checkpoint_label(r, s) for r, s in zip(table.recovery, table.steps, strict=True)],
                       index=table.index, dtype=object)
    names = table.recovery.where(~trained, labels)
    pairs = pd.DataFrame({"name": names, "recovery": table.recovery, "steps": table.steps})[trained]
    pairs = pairs.drop_duplicates()
    if pairs.name.duplicated().any() or set(pairs.name) & set(table.recovery):
        raise ValueError(f"recovery group names clash with their checkpoints' labels "
                         f"{checkpoint_label('<group>', '<steps>')}: {sorted(set(pairs.name))}")
    back = {n: (r, None if pd.isna(s) else int(s)) for n, r, s in pairs.itertuples(index=False)}
    return table.assign(recovery=names), back


def _start_row(row: dict, draws: dict) -> dict:
    """Step 0 of ``row``'s recovery group: the compressed model itself (fraction 0, or
    undefined without damage; no control gain without training)."""
    b, c = draws[(BASE, BASE)][:, 0], draws[(row["compression"], BASE)][:, 0]
    point = fraction(row["base_acc"], row["compressed_acc"], row["compressed_acc"])
    (acc_low, acc_high), (low, high) = interval(c), interval(fraction(b, c, c))
    controlled = {"control_gain": 0.0, "controlled_fraction": point, "controlled_ci_low": low,
                  "controlled_ci_high": high} if row["has_control"] else {}
    return {**row, "steps": 0, "tokens": 0, "seeds": 0, "recovered_acc": row["compressed_acc"],
            "recovered_sd": float("nan"), "acc_ci_low": acc_low, "acc_ci_high": acc_high,
            "recovery_fraction": point, "ci_low": low, "ci_high": high, **controlled}


def checkpoint_rows(table, *, methods: Methods, seed: int, iters: int, budget: dict | None,
                    start: bool = False) -> list[dict]:
    """Per (model, compression, recovery group, steps) on the pooled questions of ``table``:
    accuracy (mean over seeds) and the raw and control-subtracted recovery fractions (the
    control: the uncompressed model's checkpoint at the same steps), each with a 95%
    two-level bootstrap interval, descriptive (no multiplicity correction). ``start``: also
    a row at steps 0 per recovery group, the compressed model, where its curve starts."""
    relabelled, back = by_checkpoint(table[table.task == ALL_KNOWLEDGE])
    named = methods.relabelled(back)
    rows = []
    for grid in build_grids(relabelled).values():
        if not grid.has_base:
            continue
        draws = accuracy_draws(grid, iters, seed)
        pairs = grid_pairs(grid, draws)
        grid_rows = []
        for row, pair in zip(fraction_rows(grid, pairs, named), pairs.values(), strict=True):
            rec, steps = back[row["recovery"]]
            acc_low, acc_high = pair.accuracy.interval()
            grid_rows.append({**row, "recovery": rec, "steps": steps, "tokens": budget_tokens(steps, budget),
                              "acc_ci_low": acc_low, "acc_ci_high": acc_high, "has_control": pair.has_control})
        if start:
            firsts = {(r["compression"], r["recovery"]): r for r in reversed(grid_rows)}
            grid_rows.extend(_start_row(r, draws) for r in firsts.values())
        rows.extend(grid_rows)
    return rows


def _checkpoint_frame(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=CHECKPOINT_COLUMNS)
    return frame.sort_values(["model", "compression", "recovery", "steps"], kind="stable").reset_index(drop=True)


def budget_curve(test, **kw):
    """``budget_curve.csv``: :func:`checkpoint_rows` on the pooled test questions, from the
    compressed model (steps 0) through every checkpoint to the final budget."""
    return _checkpoint_frame(checkpoint_rows(test, start=True, **kw))


def dev_accuracy(dev, order: list[str], **kw):
    """``dev_accuracy.csv``: :func:`checkpoint_rows` on the pooled dev questions (held-out
    tasks have none), with ``rank``: 1 for the best dev accuracy among the recovery groups
    of the same method on the same (model, compression) at the same steps, ties broken by
    ``order`` (the config's order of the groups)."""
    frame = _checkpoint_frame(checkpoint_rows(dev, **kw))
    ranked = frame.assign(_order=frame.recovery.map({r: i for i, r in enumerate(order)})).sort_values(
        ["recovered_acc", "_order"], ascending=[False, True], kind="stable")
    frame["rank"] = ranked.groupby(["model", "compression", "method", "steps"], dropna=False).cumcount() + 1
    return frame.astype({"rank": "Int64"})
