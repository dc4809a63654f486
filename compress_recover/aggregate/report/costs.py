"""The cost sections and the rest: costs and the published claims, the 2 × 2 of remedies, pictures, data, config and versions.

Each function is one section's context (:data:`..registry.SECTIONS`); the numbers (medians
over seeds, ratios, the 2 × 2's best remedy) come from :mod:`..stats.costs`, this module
only formats them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...failures import is_failed, shown
from ...prompt_choice import examples_per_prompt
from ..stats.costs import (batch_latency, claim_checks, extra_params, input_tokens, params_used, registered_claims,
                           remedies_2x2, token_latency, training_seconds)
from ..stats.pool_flags import MIN_EXAMPLES, undertrained_runs
from ..tables import CELL, base_first_order
from .cells import UNDEFINED, fmt, table
from .first_screen import figure
from .inputs import ReportInputs

# The figures shown in their own section, not under "Pictures".
SECTION_FIGURES = {"budget_curves", "overview", "remedy_deltas", "loss_anatomy"}
POOL_HEAD = {"routing": "routing", "trained_with": "examples trained per prompt",
             "text_before": "chosen on training-text spans, before", "text_after": "after",
             "text_entropy": "entropy after (H / log m)", "confusion": "held-out source → prompt"}
COST_HEAD = ["extra params", "extra params used", "extra bytes", "input tokens added", "training (compute) s",
             "disk MB", "batch latency ms", "per-token ms"]
NO_TEST = f"{UNDEFINED} (no test question)"  # a pool's run whose test questions are not in the question table
REMEDY_COSTS = ["F [interval]", "decision", "extra params", "input tokens added", "latency per batch",
                "training / compute s"]


def costs(r: ReportInputs) -> dict:
    """The cost table (None without cost.json records) and the published cost claims beside ours."""
    frame = cost_table(r.costs, r.pool_choices)
    return {"costs": table(frame, "{:.2f}") if len(frame) else None, "paper": paper_claims(r)}


def paper_claims(r: ReportInputs) -> dict | None:
    """Per (model, compression), each group of a method with a published cost claim against
    the group it compares with, medians over seeds (:func:`..stats.costs.claim_checks`):
    extra parameters (theirs / ours, "x fewer") and latency per batch and per generated token
    (relative change) on the deployment kernel. None when no claim has both sides."""
    import pandas as pd

    checks = claim_checks(r.costs, r.results.method_names, registered_claims())
    if not checks:
        return None
    return table(pd.DataFrame([{
        "model": c.model, "compression": c.compression, "runs": f"{c.group} vs {c.against}",
        "extra params: x fewer": f"{c.params_fewer:.0f}x", "paper": f"{c.claimed_params_fewer:.0f}x",
        "latency per batch": f"{100 * c.batch_change:+.0f}%", "per token": f"{100 * c.token_change:+.0f}%",
        "paper latency": f"{100 * c.claimed_latency_change:+.0f}%", "kernel": ", ".join(c.kernels),
        "source": c.source} for c in checks]))


def pool_training(costs: list[dict], choices: dict[tuple, list[int]], min_examples: int = MIN_EXAMPLES) -> dict | None:
    """How each prompt pool was used in training (its cost.json's ``pool``, from the adapter's
    manifest) and whether its test questions were answered by prompts that trained
    (:func:`..stats.pool_flags.undertrained_runs`; ``choices``: the prompt of each run's test
    questions, :func:`..stats.pool_flags.chosen_on_test`): one row per run; None when no run
    has a pool."""
    import pandas as pd

    pools = {(c["model"], c["compression"], c.get("run", c["recovery"])): c["pool"] for c in costs if c.get("pool")}
    if not pools:
        return None
    trained = undertrained_runs({k: v for k, v in choices.items() if k in pools},
                                {k: examples_per_prompt(pool) for k, pool in pools.items()}, min_examples)
    fewer = f"test questions answered by a prompt trained with < {min_examples} examples"
    rows = []
    for (model, compression, run), pool in pools.items():
        use = trained.get((model, compression, run))
        rows.append({"model": model, "compression": compression, "run": run,
                     **{POOL_HEAD[k]: pool.get(k) for k in POOL_HEAD},
                     "prompts used on test": ",".join(map(str, use.prompts_used)) if use else NO_TEST,
                     fewer: f"{use.undertrained} of {use.questions}" if use else NO_TEST,
                     "fewest examples of a prompt used on test": use.fewest_examples if use else NO_TEST})
    return table(pd.DataFrame(rows).sort_values(["model", "compression", "run"], kind="stable"), "{:.3f}")


def remedies(r: ReportInputs) -> dict | None:
    """The 2 × 2 view: per (model, compression), for {training-free, trained} x {input side,
    parameter side}, the best group (:func:`..stats.costs.remedies_2x2`) with its interval at
    the Holm level and decision, and its costs. None (the section left out) without a verdict."""
    import pandas as pd

    rows = []
    for c in remedies_2x2(r.results.verdicts, r.costs):
        head = {"model": c.model, "compression": c.compression, "training": "trained" if c.trained else "training-free",
                "side": c.side}
        if c.best is None:
            rows.append({**head, "best": "none tried", **dict.fromkeys(REMEDY_COSTS, "n/a")})
            continue
        b = c.best
        rows.append({**head, "best": b.recovery,
                     "F [interval]": f"{fmt(b.fraction, '{:.2f}')} [{fmt(b.ci_low, '{:.2f}')}, {fmt(b.ci_high, '{:.2f}')}]",
                     "decision": b.decision, "extra params": fmt(c.extra_params, "{:,.0f}"),
                     "input tokens added": fmt(c.input_tokens, "{:.0f}"),
                     "latency per batch": fmt(c.latency_ratio, "{:.2f}x"),
                     "training / compute s": fmt(c.seconds, "{:.0f}")})
    return {"remedies": table(pd.DataFrame(rows))} if rows else None


def pictures(r: ReportInputs) -> dict:
    """The figures not shown in a section of their own, in the figures' order, then the
    attention and activation figures (one per compressed model; None without)."""
    from ..figures import FIGURES

    shown = [figure(r.figure(name, required=True), name.replace("_", " ")) for name in FIGURES
             if name not in SECTION_FIGURES]
    attention = [figure(f, f"attention {Path(f).parent.parent.name}") for f in r.attention_figures]
    return {"pictures": shown, "attention": attention or None}


def shortfalls(folders) -> dict | None:
    """What jobs served with less than asked (their manifest.json's ``shortfalls``: the key
    that asked, what, how many asked and served), by folder; None when nothing fell short."""
    import pandas as pd

    rows = []
    for folder in folders:
        manifest = Path(folder) / "manifest.json"
        if manifest.is_file():
            rows += [{"folder": str(folder), **s} for s in json.loads(manifest.read_text()).get("shortfalls", [])]
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["folder", "key", "what", "asked", "served"])
    return table(frame.rename(columns={"key": "config key"}))


def data(r: ReportInputs) -> dict:
    """The leak filter's counts (the corpus text's, then each generated text's) and the shortfalls."""
    leaks = r.results.leaks
    lines = [{"what": "Corpus text", **leaks}] + [
        {"what": f"Text generated by model {g.get('model') or g.get('text_dir')}", **g} for g in leaks.get("generated", [])]
    return {"leaks": lines, "shortfalls": shortfalls(r.manifest_dirs)}


def config(r: ReportInputs) -> dict:
    """The exact config (YAML), the library versions (JSON) that produced the report and the
    precision the evaluations computed in (model -> dtype used, from the summary)."""
    import yaml

    versions = library_versions(r.costs)
    precision = "; ".join(f"{m}: {d}" for m, d in sorted(r.compute_dtypes.items()))
    return {"config": yaml.safe_dump(r.config, sort_keys=False), "versions": json.dumps(versions, indent=1),
            "compute_dtype": precision, "config_dtype": r.config.get("dtype", "float32")}


# --------------------------------------------------------------------------- the cost table

def _training_time(cost: dict) -> str:
    """The training time, or for a training-free remedy the time it took to compute, marked."""
    seconds = f"{training_seconds(cost):.2f}"
    return seconds if cost.get("trained", True) is not False else f"({seconds}, computed)"


def _cost_cells(cost: dict, chosen: list[int] | None) -> dict:
    """The cost table's measurements of one cost.json (``chosen``: the prompt of each of its
    test questions, for a prompt pool's extra parameters used); "failed: why" in each for a
    model whose recovery training failed (nothing was measured)."""
    if is_failed(cost):
        return dict.fromkeys(COST_HEAD, shown(cost["failure"]))
    values = (extra_params(cost), params_used(cost, chosen), cost["extra_bytes"], input_tokens(cost),
              _training_time(cost), cost["disk_bytes"] / 1e6, batch_latency(cost) * 1000, token_latency(cost) * 1000)
    return dict(zip(COST_HEAD, values, strict=True))


def library_versions(costs: list[dict]) -> dict:
    """The library versions the first cost.json records ({} without one)."""
    return costs[0]["library_versions"] if costs else {}


def cost_table(costs: list[dict], choices: dict[tuple, list[int]]):
    """One row per cost.json record, the base model first (an empty frame without one);
    ``choices``: the prompt of each test question of every prompt pool's run
    (:func:`..stats.pool_flags.chosen_on_test`)."""
    import pandas as pd

    if not costs:
        return pd.DataFrame()

    def row(c: dict) -> dict:
        run = c.get("run", c["recovery"])
        chosen = choices.get((c["model"], c["compression"], run))
        return {**{k: c[k] for k in CELL}, "run": run, **_cost_cells(c, chosen)}

    table = pd.DataFrame([row(c) for c in costs], columns=[*CELL, "run", *COST_HEAD])
    order = {c: i for i, c in enumerate(base_first_order(table[CELL].itertuples(index=False)))}
    table = table.assign(_o=[order[tuple(c)] for c in table[CELL].itertuples(index=False)])
    return table.sort_values(["_o", "run"], kind="stable").drop(columns="_o")
