"""Stage 3, compress: the registry of compression methods.

``none`` is the base model itself. Each other method lives in its own module here,
with a config dataclass registered below and an entry point
``compress(model_dir, out_dir, config, calibration_file, calibration, device, seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import MethodConfig, Registry
from .gptq_config import GPTQConfig

COMPRESSION = Registry("compression")


@dataclass(frozen=True)
class NoCompression(MethodConfig):
    """The base model, unchanged."""

    method = "none"

    def slug(self) -> str:
        return "none"


COMPRESSION.register(NoCompression, None)
COMPRESSION.register(GPTQConfig, "compress_recover.compress.gptq:compress")
