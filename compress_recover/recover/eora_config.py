"""Config of EoRA (Liu et al. 2024, "EoRA: Training-free Compensation for Compressed LLM with
Eigenspace Low-Rank Approximation", https://arxiv.org/abs/2410.21271), kept import-light."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import ConfigError, MethodConfig
from .lora_config import LoRAConfig


@dataclass(frozen=True)
class EoRAConfig(MethodConfig):
    """A training-free low-rank correction of the compression error, saved as a PEFT LoRA
    adapter: per target layer, the residual W - W_compressed projected into the eigenspace
    of the calibration inputs' covariance and truncated to ``rank`` (GPTQModel's
    ``eora_compute_lora``). Calibration: the blocks the compression calibrated on (its
    manifest's samples, length and seed); for a compression that used none,
    ``calibration_samples`` blocks of ``calibration_seq_len`` tokens with the run's seed. ``rank`` and
    ``target_modules`` default to LoRA's, so both add the same number of parameters.

    Example (config.yaml, under ``recovery.methods``)::

        - method: eora
          rank: 8
    """

    method = "eora"
    entry_point = "compress_recover.recover.eora:run"
    adapter_loader = "compress_recover.recover.peft_adapter:load"
    side = "parameters"  # new weights inside the model
    mergeable = True  # B @ A could be added to the weights (see the compression's merge_effect)
    trained = False
    needs = ("uncompressed",)
    seeded = False  # deterministic given the compression's calibration data
    runs_on_base = False  # the uncompressed model has no residual: EoRA on it is the model itself
    reference_job_s = 69.0  # compute_eora, 67-71 s on compress_recover.estimate's reference machine
    rank: int = LoRAConfig.rank
    target_modules: list[str] = field(default_factory=lambda: list(LoRAConfig().target_modules))
    # Only for a compression that calibrated on nothing (magnitude pruning): the calibration
    # blocks to take from the training text (compression.calibration's defaults), seeded.
    calibration_samples: int = 32
    calibration_seq_len: int = 256

    def check(self, key: str) -> None:
        if self.rank < 1:
            raise ConfigError(f"{key}.rank: {self.rank} must be >= 1")
        if not self.target_modules:
            raise ConfigError(f"{key}.target_modules: name at least one module")
        for name in ("calibration_samples", "calibration_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}: {getattr(self, name)} must be >= 1")

    def check_shape(self, key: str, model: str, shape) -> None:
        from ..shape import check_rank

        check_rank(key, model, shape, self.rank, self.target_modules)
