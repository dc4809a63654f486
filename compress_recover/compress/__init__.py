"""Stage 3, compress: the registry of compression methods.

``none`` is the base model itself. Each other method lives in its own module here,
with a config dataclass registered below and an entry point
``compress(model_dir, out_dir, config, calibration, device, seed) -> (model, details)``
that saves the compressed checkpoint in ``out_dir`` and returns the compressed model
as it is in memory (tests compare it with the reloaded checkpoint) and the details
for the manifest.
"""

from __future__ import annotations

from ..registry import NoMethod, Registry
from .gptq_config import GPTQConfig
from .pruning_config import MagnitudeConfig, SparseGPTConfig, WandaConfig

COMPRESSION = Registry("compression")
COMPRESSION.register(NoMethod, None)
COMPRESSION.register(GPTQConfig, "compress_recover.compress.gptq:compress")
COMPRESSION.register(MagnitudeConfig, "compress_recover.compress.pruning:compress_magnitude")
COMPRESSION.register(WandaConfig, "compress_recover.compress.pruning:compress_llmcompressor")
COMPRESSION.register(SparseGPTConfig, "compress_recover.compress.pruning:compress_llmcompressor")
