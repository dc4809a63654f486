"""Rule ``summary``: one tidy table of every evaluation.

``results/summary.csv``: one row per (model, compression, recovery run, task, metric)
with value, stderr and n (questions scored), and the model's cost columns (extra
parameters and bytes, training time, disk size, latency per batch and per token). For a group task (e.g. mmlu) every
subtask's row is kept, with ``task`` naming the configured task and ``subtask`` the
row's own name. ``recovery`` is the recovery entry, ``seed`` its training seed (empty
without training), ``steps`` the training steps of the evaluated checkpoint (empty without
training; every budget of a budget curve has its own rows) and ``run`` the run's folder
(``<recovery>.seed<seed>``, ``<recovery>.seed<seed>.step<steps>`` for an intermediate
checkpoint); ``base_precision`` says what each model's downloaded "base" checkpoint really
is (from its manifest); ``dtype`` the precision the evaluation computed in (its labels';
empty for a run whose training failed or results written before it was recorded). Tables
of the final budget filter on ``steps``
(:func:`compress_recover.aggregate.tables.at_final_budget_rows`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..failures import FAILED, OK, failure_of, is_failed
from ..io import atomic_file, read_json

log = logging.getLogger(__name__)

KEYS = ["model", "compression", "recovery", "seed", "steps", "run"]
RUN = ["model", "compression", "run"]  # one evaluated model
COLUMNS = [*KEYS, "task", "subtask", "metric", "filter", "value", "stderr", "n", "status", "failure", "dtype"]
COST_COLUMNS = ["extra_params", "extra_bytes", "training_time_s", "disk_bytes", "latency_batch_s",
                "latency_token_s"]


def run_labels(labels: dict) -> dict:
    """The KEYS of an evaluation's or a cost's labels (written before seeds: run = recovery;
    before budget curves: no steps)."""
    return {"model": labels["model"], "compression": labels["compression"], "recovery": labels["recovery"],
            "seed": labels.get("seed"), "steps": labels.get("steps"), "run": labels.get("run", labels["recovery"])}


def cost_row(cost: dict) -> dict:
    """The summary's cost columns from one cost.json (empty for a failed recovery's, which measured nothing)."""
    latency = cost["latency"] or {"batch": {"median_s": None}, "generation": {"per_token_s": None}}
    return {**{k: run_labels(cost)[k] for k in RUN}, "extra_params": cost["extra_params"],
            "extra_bytes": cost["extra_bytes"],
            "training_time_s": cost["training_time_s"], "disk_bytes": cost["disk_bytes"],
            "latency_batch_s": latency["batch"]["median_s"],
            "latency_token_s": latency["generation"]["per_token_s"]}


def _number(x):
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def failed_rows(labels: dict) -> list[dict]:
    """The one row of a task that was not evaluated because the run's recovery training failed."""
    return [{**run_labels(labels), "task": labels["task"], "subtask": labels["task"], "metric": "status",
             "filter": "", "value": float("nan"), "stderr": None, "n": None, "status": FAILED,
             "failure": failure_of(labels), "dtype": labels.get("dtype")}]


def rows_from_result(result: dict) -> list[dict]:
    """The summary rows of one evaluation results JSON: one per (subtask, metric, filter),
    or one ``status`` row for a failed run (:func:`failed_rows`)."""
    labels = result["compress_recover"]
    if is_failed(labels):
        return failed_rows(labels)
    n_samples = result.get("n-samples", {})
    rows = []
    for subtask, metrics in sorted(result["results"].items()):
        for key, value in sorted(metrics.items()):
            if "," not in key or "_stderr," in key or _number(value) is None:
                continue
            metric, filt = key.split(",", 1)
            stderr = _number(metrics.get(f"{metric}_stderr,{filt}"))
            n = n_samples.get(subtask, {}).get("effective")
            rows.append({**run_labels(labels), "task": labels["task"], "subtask": subtask,
                         "metric": metric, "filter": filt, "value": _number(value), "stderr": stderr,
                         "n": int(n) if n is not None else None, "status": OK, "failure": None,
                         "dtype": labels.get("dtype")})
    return rows


def base_precisions(base_dirs: list[str]) -> dict[str, str | None]:
    """Model name -> ``base_precision`` of its downloaded checkpoint's manifest."""
    out = {}
    for folder in base_dirs:
        manifest = read_json(Path(folder) / "manifest.json")
        out[manifest["model"]] = manifest.get("base_precision")
        if out[manifest["model"]] is None:
            log.warning("%s: the manifest states no base_precision (downloaded by an older version; "
                        "rerun its download job to record it)", folder)
    return out


def intermediate_checkpoints(table):
    """Mask of the rows of a budget curve's intermediate checkpoints: fewer steps than the
    largest of their training run (model, compression, recovery, seed). Their cost columns
    may stay empty: a cost.json describes a run at its final budget."""
    largest = table.groupby(["model", "compression", "recovery", "seed"], dropna=False).steps.transform("max")
    return (table.steps < largest).fillna(False).astype(bool)


def with_steps(rows: list[dict], steps: dict[str, int | None] | None) -> list[dict]:
    """``rows`` with the ``steps`` of their run from ``steps`` (run -> training steps of its
    adapter, the plan's) where their labels carry none."""
    if steps is None:
        return rows
    unknown = sorted({r["run"] for r in rows if r["steps"] is None and r["run"] not in steps})
    if unknown:
        raise ValueError(f"evaluations of run(s) {unknown} state no training steps and the plan knows none")
    return [r if r["steps"] is not None else {**r, "steps": steps[r["run"]]} for r in rows]


def summarize(*, eval_files: list[str], cost_files: list[str], out_csv: str,
              out_parquet: str | None = None, base_dirs: list[str] | None = None,
              steps: dict[str, int | None] | None = None,
              recovery: dict | None = None) -> "pandas.DataFrame":  # noqa: F821
    """The tidy table; ``base_dirs``: the downloaded checkpoint of every model; ``steps``:
    run -> the training steps of its adapter (None without training), for evaluations whose
    labels do not carry them; ``recovery``: {"methods": group or run -> method, "sides":
    method -> side, "trained": method -> bool}, which give each row its ``side`` and
    ``trained`` (empty for the unrecovered models)."""
    import pandas as pd

    rows = []
    for f in eval_files:
        rows.extend(rows_from_result(read_json(f)))
    rows = with_steps(rows, steps)
    if not rows:
        raise ValueError("no evaluation produced a metric; nothing to aggregate")
    table = pd.DataFrame(rows, columns=COLUMNS)
    costs = pd.DataFrame([cost_row(read_json(f)) for f in cost_files], columns=[*RUN, *COST_COLUMNS])
    if costs.duplicated(RUN).any():
        raise ValueError("two cost files describe the same model")
    table = table.merge(costs, on=RUN, how="left", validate="many_to_one")
    table[["seed", "steps"]] = table[["seed", "steps"]].astype("Int64")
    measured = ~intermediate_checkpoints(table) & (table["status"] != FAILED)
    missing = table[table["latency_batch_s"].isna() & measured][RUN].drop_duplicates()
    if len(missing):
        raise ValueError(f"no cost.json for {missing.to_dict('records')}")
    table["base_precision"] = table["model"].map(base_precisions(base_dirs or []))
    if recovery:
        from .stats.methods import Methods

        methods = Methods(recovery.get("methods", {}), recovery.get("sides", {}), recovery.get("trained", {}))
        table["side"] = [methods.side(r) for r in table["recovery"]]
        table["trained"] = [methods.is_trained(r) if methods.side(r) else None for r in table["recovery"]]
    table = table.sort_values(["model", "compression", "recovery", "seed", "steps", "run", "task", "subtask",
                               "metric", "filter"], kind="stable")
    table["n"] = table["n"].astype("Int64")
    with atomic_file(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    if out_parquet:
        with atomic_file(out_parquet) as tmp:
            table.to_parquet(tmp, index=False)
    return table
