"""The training objective every recovery method can use: next-token loss, distillation
from the uncompressed model, or a weighted mix. Import-light (read at DAG-build time).

- ``lm``: cross-entropy of the next token of the training text.
- ``distill``: KL(teacher || student) between the uncompressed model's and the recovered
  model's next-token distributions on the same text (softened by ``temperature``, scaled
  by temperature**2 as in Hinton et al. 2015).
- ``mix``: ``(1 - distill_weight) * lm + distill_weight * distill``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..registry import ConfigError

LOSSES = ("lm", "distill", "mix")


@dataclass(frozen=True)
class Objective:
    loss: str = "lm"
    distill_weight: float = 0.5
    temperature: float = 1.0

    @classmethod
    def from_dict(cls, raw: dict | None, key: str, base: "Objective | None" = None) -> "Objective":
        """``raw`` over ``base`` (the config-wide default); errors name ``key``."""
        raw = dict(raw or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
        merged = {**dataclasses.asdict(base or cls()), **raw}
        obj = cls(**merged)
        if obj.loss not in LOSSES:
            raise ConfigError(f"{key}.loss: {obj.loss!r} is not one of {list(LOSSES)}")
        if not 0.0 < obj.distill_weight < 1.0:
            raise ConfigError(f"{key}.distill_weight: {obj.distill_weight} must be in (0, 1) (use loss lm or "
                              f"distill for the ends)")
        if obj.temperature <= 0:
            raise ConfigError(f"{key}.temperature: {obj.temperature} must be > 0")
        return obj

    @property
    def lm_weight(self) -> float:
        return {"lm": 1.0, "distill": 0.0}.get(self.loss, 1.0 - self.distill_weight)

    @property
    def kd_weight(self) -> float:
        return 1.0 - self.lm_weight

    @property
    def needs_teacher(self) -> bool:
        return self.kd_weight > 0

    def suffix(self) -> str:
        """Appended to a recovery folder name: '' (lm), '-kd', '-mix0.5'."""
        if self.loss == "lm":
            return ""
        tail = "" if self.temperature == 1.0 else f"t{self.temperature:g}"
        return ("-kd" if self.loss == "distill" else f"-mix{self.distill_weight:g}") + tail

    def params(self) -> dict:
        return dataclasses.asdict(self)
