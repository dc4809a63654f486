"""The verdict's thresholds (config.yaml ``report``) and the bootstrap size they need."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

MAX_ITERS = 20000
METHOD_SEEDS = 3  # seeds from which a decision is about the method (t-based seed variance), not its adapters


@dataclass(frozen=True)
class Settings:
    """The thresholds of the verdict (config.yaml ``report``)."""

    alpha: float = 0.05
    min_recovery_fraction: float = 0.5
    bootstrap_iters: int = 1000
    noninferiority_margin: float = 0.1
    power: float = 0.8
    min_damage: float = 0.02  # accuracy (absolute) below which a loss does not matter
    min_tail_resamples: int = 20  # resamples beyond the smallest Holm bound, at least

    @classmethod
    def from_report(cls, report: dict | None = None, **overrides) -> "Settings":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (report or {}).items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def bootstrap_size(settings: Settings, smallest_tail: float) -> int:
    """Resamples so that at least ``min_tail_resamples`` lie beyond the smallest Holm bound
    (never fewer than ``bootstrap_iters``, never more than 20,000)."""
    # (1 - 1e-12): alpha / m / 2 and alpha / (2 m) differ in the last bit; neither should add a resample
    needed = math.ceil(settings.min_tail_resamples / smallest_tail * (1 - 1e-12)) if smallest_tail > 0 else 0
    return max(settings.bootstrap_iters, min(needed, MAX_ITERS))
