"""Stage 3, compress: the registry of compression methods.

Rule ``compress_<method>`` (one per registered method) runs
``workflow_scripts/compress.py`` -> :func:`compress_recover.compress.compress.run_compression`.

``none`` is the base model itself. Each other method is one unit: a config dataclass in
``<method>_config.py`` (import-light: read while Snakemake builds the DAG) naming its entry
point ``compress(model_dir, out_dir, config, calibration, device, seed, dtype) -> (model, details)``,
which saves the compressed checkpoint in ``out_dir`` and returns the compressed model as
it is in memory (tests compare it with the reloaded checkpoint) and the details for the
manifest. Layer-width checks (group size, N:M) are in :mod:`.widths`.
"""

from __future__ import annotations

from ..registry import NoMethod, Registry
from .external_config import CheckpointConfig
from .gguf_level_config import GGUFLevelConfig
from .gptq_config import GPTQConfig
from .pruning_config import MagnitudeConfig, SparseGPTConfig, WandaConfig

COMPRESSION = Registry("compression", required=("entry_point",))
for _config in (NoMethod, GPTQConfig, MagnitudeConfig, WandaConfig, SparseGPTConfig, GGUFLevelConfig, CheckpointConfig):
    COMPRESSION.register(_config)
