"""Stage 6, aggregate: one tidy table of every evaluation.

``results/summary.csv``: one row per (model, compression, recovery, task, metric)
with value, stderr and n (questions scored). For a group task (e.g. mmlu) every
subtask's row is kept, with ``task`` naming the configured task and ``subtask`` the
row's own name.
"""

from __future__ import annotations

import math

from .io import atomic_file, read_json

COLUMNS = ["model", "compression", "recovery", "task", "subtask", "metric", "filter", "value", "stderr", "n"]


def _number(x):
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def rows_from_result(result: dict) -> list[dict]:
    labels = result["compress_recover"]
    n_samples = result.get("n-samples", {})
    rows = []
    for subtask, metrics in sorted(result["results"].items()):
        for key, value in sorted(metrics.items()):
            if "," not in key or "_stderr," in key or _number(value) is None:
                continue
            metric, filt = key.split(",", 1)
            stderr = _number(metrics.get(f"{metric}_stderr,{filt}"))
            n = n_samples.get(subtask, {}).get("effective")
            rows.append({"model": labels["model"], "compression": labels["compression"],
                         "recovery": labels["recovery"], "task": labels["task"], "subtask": subtask,
                         "metric": metric, "filter": filt, "value": _number(value), "stderr": stderr,
                         "n": int(n) if n is not None else None})
    return rows


def summarize(*, eval_files: list[str], out_csv: str) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    rows = []
    for f in eval_files:
        rows.extend(rows_from_result(read_json(f)))
    if not rows:
        raise ValueError("no evaluation produced a metric; nothing to aggregate")
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values(
        ["model", "compression", "recovery", "task", "subtask", "metric", "filter"], kind="stable"
    )
    table["n"] = table["n"].astype("Int64")
    with atomic_file(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table
