"""Collateral damage: per knowledge task, the questions a recovery newly breaks and newly fixes.

Each recovered model at the final budget is compared with the same model before recovery
(the compressed model; on compression ``none`` the base model: the format control), task
by task, held-out tasks flagged: what recovery does to relations nothing was tuned on.
"""

from __future__ import annotations

from ...runs import BASE
from .bootstrap import interval
from .grid import base_first
from .questions import ALL_KNOWLEDGE

COLLATERAL_COLUMNS = ["model", "compression", "recovery", "task", "held_out", "n", "seeds", "compressed_acc",
                      "recovered_acc", "newly_broken", "newly_fixed", "difference", "ci_low", "ci_high"]


def _collateral_row(grid, draws: dict, comp: str, rec: str) -> dict:
    """One recovered model against its model before recovery on one task's grid."""
    before, cell = grid.get(comp, BASE), grid.get(comp, rec)
    right_before, right_after = before.correct[0] > 0.5, cell.correct > 0.5
    difference = draws[(comp, rec)].mean(axis=1) - draws[(comp, BASE)][:, 0]  # questions resampled, seeds fixed
    low, high = interval(difference)
    return {"model": grid.model, "compression": comp, "recovery": rec, "task": grid.task, "n": grid.n,
            "seeds": len(cell.runs), "compressed_acc": before.accuracy, "recovered_acc": cell.accuracy,
            "newly_broken": float((right_before & ~right_after).sum(axis=1).mean()),
            "newly_fixed": float((~right_before & right_after).sum(axis=1).mean()),
            "difference": cell.accuracy - before.accuracy, "ci_low": low, "ci_high": high}


def collateral(grids: dict, draws: dict, held_out_tasks) -> "pandas.DataFrame":  # noqa: F821
    """``collateral.csv``: per knowledge task's test questions and recovered model at the
    final budget (on the uncompressed model too: the format control), the questions right
    before recovery and wrong after (``newly_broken``) and the reverse (``newly_fixed``),
    means over seeds, and the accuracy difference with a 95% question-bootstrap interval;
    ``held_out``: a task no choice was made on."""
    import pandas as pd

    rows = []
    for key, grid in grids.items():
        if grid.task == ALL_KNOWLEDGE or key not in draws:
            continue
        for comp in [c for c in (BASE, *grid.compressions()) if grid.get(c, BASE) is not None]:
            rows.extend({**_collateral_row(grid, draws[key], comp, rec), "held_out": grid.task in held_out_tasks}
                        for rec in grid.recoveries(comp))
    return base_first(pd.DataFrame(rows, columns=COLLATERAL_COLUMNS))
