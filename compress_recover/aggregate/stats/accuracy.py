"""Accuracy per model and the format control: what each recovery does to the uncompressed model.

:func:`accuracy_table` gives every cell's accuracy (mean and sd over seeds) and the mean
probability of the right choice among the choices (``p_right``, ``p_right_norm``);
:func:`control_table` the format control, the uncompressed model recovered by a method
minus the base model, with a 95% interval from the question resample and, with
METHOD_SEEDS runs or more, the seeds' t (:class:`.spread.Spread`; a few runs are never
resampled with replacement).
"""

from __future__ import annotations

from ...runs import BASE
from .bootstrap import sd
from .fractions import seed_part
from .grid import base_first
from .spread import Spread

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


def control_table(grids: dict, draws: dict):
    """Format control per (model, task, recovery): the uncompressed model recovered by the
    method (mean and sd over seeds) minus the base model, with a 95% interval (the shared
    question resample, the runs' mean per draw, and the seeds' t with >= METHOD_SEEDS runs)."""
    import pandas as pd

    rows = []
    for key, grid in grids.items():
        base = grid.get(BASE, BASE)
        if base is None:
            continue
        for rec in grid.recoveries(BASE):
            ctrl = grid.get(BASE, rec).run_accuracies
            gain = draws[key][(BASE, rec)].mean(axis=1) - draws[key][(BASE, BASE)][:, 0]
            low, high = Spread(float(ctrl.mean() - base.accuracy), gain, seed_part(ctrl)).interval()
            rows.append({"model": grid.model, "task": grid.task, "recovery": rec, "seeds": len(ctrl),
                         "base_acc": base.accuracy, "control_acc": float(ctrl.mean()), "control_sd": sd(ctrl),
                         "control_gain": float(ctrl.mean() - base.accuracy), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=CONTROL_COLUMNS)
