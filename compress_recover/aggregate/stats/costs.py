"""The numbers the report shows about costs and choices: medians over seeds, the published cost claims against ours, the 2 × 2's best remedy.

Pure functions over cost.json records (one per evaluated run: extra parameters, latency,
training or compute time, from :mod:`compress_recover.evaluate.cost`) and the verdict's
:class:`~.decisions.Decision` s; they return numbers and records, never text (the report's
views format them: :mod:`compress_recover.aggregate.report.costs`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ...prompt_choice import examples_per_prompt
from ...runs import BASE
from .pool_flags import pool_parameters

# The 2 × 2 view's cells in reading order: (trained, side).
CELLS_2X2 = [(False, "input"), (False, "parameters"), (True, "input"), (True, "parameters")]


def measured_costs(costs: list[dict]) -> dict[tuple, list[dict]]:
    """(model, compression, recovery group) -> its cost.json records that measured latency
    (status ok), one per seed."""
    runs: dict[tuple, list[dict]] = {}
    for cost in costs:
        if cost.get("status", "ok") == "ok" and cost.get("latency"):
            runs.setdefault((cost["model"], cost["compression"], cost["recovery"]), []).append(cost)
    return runs


def median_of(group: list[dict], value) -> float:
    """The median of ``value(record)`` over a group of cost records (NaN for none)."""
    return statistics.median(value(c) for c in group) if group else float("nan")


def batch_latency(cost: dict) -> float:
    return cost["latency"]["batch"]["median_s"]


def token_latency(cost: dict) -> float:
    return cost["latency"]["generation"]["per_token_s"]


def extra_params(cost: dict) -> float:
    return cost["extra_params"]


def params_used(cost: dict, chosen: list[int] | None) -> float:
    """The extra parameters that answered a test question. A prompt pool's run (cost.json's
    ``pool``): those of the prompts that answered at least one (:func:`.pool_flags.pool_parameters`;
    ``chosen``, the prompt of each of its test questions, :func:`.pool_flags.chosen_on_test`;
    NaN for None, no test question), of the :func:`extra_params` allocated to the whole pool.
    Any other run: all its :func:`extra_params`."""
    if not cost.get("pool"):
        return extra_params(cost)
    if chosen is None:
        return math.nan
    size = len(examples_per_prompt(cost["pool"]))
    if cost["extra_params"] % size:
        raise ValueError(f"{cost['model']}/{cost['compression']}/{cost.get('run', cost['recovery'])}: "
                         f"{cost['extra_params']} extra parameters do not split into {size} prompts")
    return pool_parameters(size, cost["extra_params"] // size, chosen).used


def input_tokens(cost: dict) -> float:
    return cost.get("input_tokens_added") or 0


def training_seconds(cost: dict) -> float:
    return cost["training_time_s"] or 0.0


@dataclass(frozen=True)
class ClaimCheck:
    """A published cost claim (a recovery method's config ``cost_claim``) beside our
    measurement on one (model, compression): medians over seeds of ``group`` against
    ``against`` (the first group of the method the claim compares with)."""

    model: str
    compression: str
    group: str
    against: str
    params_fewer: float  # extra parameters: theirs / ours ("x fewer")
    claimed_params_fewer: float
    batch_change: float  # latency per batch, relative change
    token_change: float  # latency per generated token, relative change
    claimed_latency_change: float
    kernels: tuple[str, ...]
    source: str


def claim_checks(costs: list[dict], methods: dict[str, str], claims: dict[str, dict]) -> list[ClaimCheck]:
    """Each group of a method with a claim (``claims``: method -> its ``cost_claim``) against
    the first group of the method the claim compares it with (``methods``: recovery group ->
    method), per (model, compression) in name order; none where either side was not measured."""
    runs: dict[tuple, dict[str, list[dict]]] = {}
    for (model, comp, rec), group in measured_costs(costs).items():
        runs.setdefault((model, comp), {})[rec] = group
    out = []
    for (model, comp), groups in sorted(runs.items()):
        for method, claim in claims.items():
            against = next((g for g in groups if methods.get(g) == claim["against"]), None)
            if against is None:
                continue
            base = groups[against]
            for group in (g for g in groups if methods.get(g) == method):
                ours = groups[group]
                out.append(ClaimCheck(
                    model, comp, group, against,
                    params_fewer=median_of(base, extra_params) / max(median_of(ours, extra_params), 1),
                    claimed_params_fewer=claim["params_ratio"],
                    batch_change=median_of(ours, batch_latency) / median_of(base, batch_latency) - 1,
                    token_change=median_of(ours, token_latency) / median_of(base, token_latency) - 1,
                    claimed_latency_change=claim["latency_change"],
                    kernels=tuple(ours[0].get("latency_kernels") or ["dense"]), source=claim["source"]))
    return out


def registered_claims() -> dict[str, dict]:
    """method -> its config's ``cost_claim``, for every registered recovery method with one."""
    from ...recover import RECOVERY

    return {name: RECOVERY[name].config_cls.cost_claim for name in RECOVERY.names()
            if RECOVERY[name].config_cls.cost_claim}


def _nan_low(fraction: float) -> float:
    return -math.inf if math.isnan(fraction) else fraction


@dataclass(frozen=True)
class RemedyCell:
    """One cell of the 2 × 2 view on one (model, compression): the group with the highest
    recovery fraction among the decided groups of that (trained, side) (None: none tried), and
    its costs, medians over its runs (NaN without a measured run)."""

    model: str
    compression: str
    trained: bool
    side: str
    best: object = None  # the Decision
    extra_params: float = math.nan
    input_tokens: float = math.nan
    latency_ratio: float = math.nan  # latency per batch / the compressed model's
    seconds: float = math.nan  # training or compute time


def remedies_2x2(verdicts: list, costs: list[dict]) -> list[RemedyCell]:
    """Per verdict, for {training-free, trained} x {input side, parameter side}: the group
    with the highest recovery fraction (the one its decision used; a NaN fraction counts
    lowest), failed groups aside, with its costs."""
    runs = measured_costs(costs)
    out = []
    for v in verdicts:
        decided = [m for m in v.methods if not m.failed]
        compressed = median_of(runs.get((v.model, v.compression, BASE), []), batch_latency)
        for trained, side in CELLS_2X2:
            cell = [m for m in decided if bool(m.trained) == trained and m.side == side]
            if not cell:
                out.append(RemedyCell(v.model, v.compression, trained, side))
                continue
            best = max(cell, key=lambda m: _nan_low(m.fraction))
            group = runs.get((v.model, v.compression, best.recovery), [])
            out.append(RemedyCell(
                v.model, v.compression, trained, side, best, extra_params=median_of(group, extra_params),
                input_tokens=median_of(group, input_tokens),
                latency_ratio=median_of(group, batch_latency) / compressed if group else math.nan,
                seconds=median_of(group, training_seconds)))
    return out


def best_remedy(decisions: list):
    """The remedy with the highest recovery fraction (the one its decision used), failed
    ones and undefined fractions aside; None when none is left."""
    tried = [m for m in decisions if not m.failed and not math.isnan(m.fraction)]
    return max(tried, key=lambda m: m.fraction) if tried else None
