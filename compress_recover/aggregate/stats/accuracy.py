"""Accuracy per model and the format control: what each recovery does to the uncompressed model.

:func:`accuracy_table` gives every cell's accuracy (mean and sd over seeds) and the mean
probability of the right choice among the choices (``p_right``, ``p_right_norm``);
:func:`control_table` the format control, the uncompressed model recovered by a method
minus the base model, with a 95% two-level bootstrap interval.
"""

from __future__ import annotations

from ...runs import BASE
from .bootstrap import interval, sd, seed_means, stable_seed
from .grid import base_first

CONTROL_COLUMNS = ["model", "task", "recovery", "seeds", "base_acc", "control_acc", "control_sd", "control_gain",
                   "ci_low", "ci_high"]


def accuracy_table(grids: dict):
    """Accuracy per (model, compression, recovery, task): mean and sd over seeds, and the mean
    probability of the right choice among the choices, unnormalised (``p_right``) and on
    per-character log-likelihoods (``p_right_norm``, :func:`.questions.choice_probability`)."""
    import pandas as pd

    rows = []
    for grid in grids.values():
        for (comp, rec), cell in grid.cells.items():
            accs = cell.run_accuracies
            rows.append({"model": grid.model, "compression": comp, "recovery": rec, "task": grid.task,
                         "seeds": len(cell.runs), "n": grid.n, "acc": float(accs.mean()), "acc_sd": sd(accs),
                         "p_right": float(cell.p_right.mean()), "p_right_norm": float(cell.p_right_norm.mean())})
    return base_first(pd.DataFrame(rows))


def control_table(grids: dict, draws: dict, seed: int):
    """Format control per (model, task, recovery): the uncompressed model recovered by the
    method (mean and sd over seeds) minus the base model, with a 95% two-level interval."""
    import numpy as np
    import pandas as pd

    rows = []
    for key, grid in grids.items():
        base = grid.get(BASE, BASE)
        if base is None:
            continue
        for rec in grid.recoveries(BASE):
            ctrl = grid.get(BASE, rec).run_accuracies
            rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, rec, "control"))
            gain = seed_means(draws[key][(BASE, rec)], rng) - draws[key][(BASE, BASE)][:, 0]
            low, high = interval(gain)
            rows.append({"model": grid.model, "task": grid.task, "recovery": rec, "seeds": len(ctrl),
                         "base_acc": base.accuracy, "control_acc": float(ctrl.mean()), "control_sd": sd(ctrl),
                         "control_gain": float(ctrl.mean() - base.accuracy), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=CONTROL_COLUMNS)
