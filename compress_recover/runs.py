"""Run identity: how a run is named, parsed, foldered and budgeted, for the plan, the rules and aggregate.

A *run* is one evaluated model: a (model, compression, recovery run) cell. Its recovery run
has one of three names, and this module is the only place that spells them:

- ``none``: no recovery (:data:`BASE`; also the compression of the uncompressed model);
- ``<group>.seed<s>``: the recovery entry ``group`` trained with seed ``s`` to the final
  budget (:func:`run_name`);
- ``<group>.seed<s>.step<n>``: the checkpoint that training saved after ``n`` steps, a run
  of its own for the budget curve.

The name is also the run's folder under ``results/<model>/<compression>/``. A run's budget
in tokens is steps × batch_size × seq_len (:func:`budget_tokens`). Whether a run is usable
(``status``: :data:`OK` or :data:`FAILED`) is decided by its training; how a failure is
carried and shown is :mod:`compress_recover.aggregate.failures`'.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

BASE = "none"  # the compression (and the recovery) of the uncompressed model
TEXTS = ("corpus", "generated")  # recovery training texts: data.text, or written by the uncompressed model
SEED_MARK = ".seed"  # a trained recovery's run is f"{group}{SEED_MARK}{seed}"
STEP_MARK = ".step"  # an intermediate budget checkpoint's run is f"{run}{STEP_MARK}{steps}"
CHECKPOINT_MARK = "@"  # aggregate's label of one (group, steps) as a recovery group of its own
OK, FAILED = "ok", "failed"  # a run's status
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")  # a pinned hub revision

_RUN = re.compile(rf"^(?P<group>.+?){re.escape(SEED_MARK)}(?P<seed>\d+)(?:{re.escape(STEP_MARK)}(?P<steps>\d+))?$")


def run_name(group: str, seed: int | None = None, steps: int | None = None) -> str:
    """The run (and folder) name of ``group`` trained with ``seed``; with ``steps``, the
    intermediate checkpoint saved after that many steps. ``seed`` None: an untrained entry,
    named as the group."""
    if seed is None:
        if steps is not None:
            raise ValueError(f"{group}: a checkpoint at {steps} steps needs a seed")
        return group
    name = f"{group}{SEED_MARK}{int(seed)}"
    return name if steps is None else f"{name}{STEP_MARK}{int(steps)}"


def parse_run(run: str) -> tuple[str, int | None, int | None]:
    """(group, seed, steps) of a run name (:func:`run_name`'s inverse; steps None for a final run)."""
    found = _RUN.match(run)
    if not found:
        return run, None, None
    steps = found["steps"]
    return found["group"], int(found["seed"]), None if steps is None else int(steps)


def reserved_mark(name: str) -> str | None:
    """The run-name mark ``name`` contains (a recovery entry may not be named with one), with what it marks."""
    for mark, what in ((SEED_MARK, "a run's seed (<name>.seed<seed>)"),
                       (STEP_MARK, "a budget checkpoint (<name>.seed<seed>.step<steps>)")):
        if mark in name:
            return f"{mark!r}, which marks {what}"
    return None


def checkpoint_label(group: str, steps) -> str:
    """Aggregate's name for the (recovery group, steps) pair of a budget curve: ``<group>@<steps>``."""
    return f"{group}{CHECKPOINT_MARK}{steps}"


def budget_tokens(steps, budget: dict | None) -> float:
    """Training tokens of ``steps`` optimizer steps of ``budget`` (config.yaml
    ``recovery.budget``: batch_size × seq_len tokens a step); NaN without steps or budget."""
    if steps is None or not budget or (isinstance(steps, float) and math.isnan(steps)):
        return float("nan")
    return int(steps) * int(budget["batch_size"]) * int(budget["seq_len"])


def optional_int(value) -> int | None:
    """An int, or None for None, NaN or pandas' NA (a seed or steps column's empty cell)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except TypeError:  # pandas.NA compares to NA, whose truth value is ambiguous
        return None
    return int(value)


@dataclass(frozen=True)
class RunId:
    """One evaluated run: model, compression, recovery group, seed (None untrained), steps
    (None untrained, or labels written before budget curves) and the run's name."""

    model: str
    compression: str
    recovery: str
    seed: int | None = None
    steps: int | None = None
    run: str = ""

    def __post_init__(self):
        object.__setattr__(self, "seed", optional_int(self.seed))
        object.__setattr__(self, "steps", optional_int(self.steps))
        if not self.run:
            object.__setattr__(self, "run", run_name(self.recovery, self.seed))

    @classmethod
    def from_labels(cls, labels: dict) -> "RunId":
        """A run from an evaluation's labels (model, compression, recovery, seed, steps, run)."""
        return cls(labels["model"], labels["compression"], labels["recovery"], labels.get("seed"),
                   labels.get("steps"), labels.get("run") or "")

    @property
    def trained(self) -> bool:
        return self.recovery != BASE

    def as_dict(self) -> dict:
        return {"model": self.model, "compression": self.compression, "recovery": self.recovery,
                "seed": self.seed, "steps": self.steps, "run": self.run}

    @classmethod
    def from_dict(cls, d: dict) -> "RunId":
        """The inverse of :meth:`as_dict` (a run's labels are the same keys)."""
        return cls.from_labels(d)
