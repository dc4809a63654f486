"""Config of GPTQ (Frantar et al. 2022, https://arxiv.org/abs/2210.17323), kept import-light."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig

GPTQ_BITS = (2, 3, 4, 8)


@dataclass(frozen=True)
class GPTQConfig(MethodConfig):
    """GPTQ weight-only quantization through GPTQModel, saved in the AutoGPTQ format.

    Example (config.yaml, under ``compression.methods``)::

        - method: gptq
          bits: 4          # 2, 3, 4 or 8
          group_size: 64   # must divide every linear layer's input width; -1 = per channel
          desc_act: false  # act-order
          sym: true
          damp_percent: 0.05
          true_sequential: true  # quantize a block's linears in order, each on the outputs of
                                 # the ones already quantized (false: all on the block's inputs; faster)
    """

    method = "gptq"
    entry_point = "compress_recover.compress.gptq:compress"
    uses_calibration = True
    reference_job_s = 81.0  # compress_recover.estimate's reference machine
    bits: int = 4
    group_size: int = 64
    desc_act: bool = False
    sym: bool = True
    damp_percent: float = 0.05
    true_sequential: bool = True

    def slug(self) -> str:
        if self.name:
            return self.name
        slug = f"gptq-w{self.bits}g{self.group_size if self.group_size > 0 else 'c'}"
        if self.desc_act:
            slug += "-act"
        if not self.sym:
            slug += "-asym"
        if not self.true_sequential:
            slug += "-par"
        return slug

    def divisors(self) -> dict[str, int]:
        return {"group_size": self.group_size} if self.group_size > 0 else {}

    def merge_effect(self, details: dict) -> dict:
        return {"merge_breaks_quantization": True,
                "note": f"merging into {self.bits}-bit GPTQ weights would need requantization"}

    def check(self, key: str) -> None:
        if self.bits not in GPTQ_BITS:
            raise ConfigError(f"{key}.bits: {self.bits} is not supported; choose one of {list(GPTQ_BITS)}")
        if self.group_size != -1 and self.group_size < 8:
            raise ConfigError(f"{key}.group_size: {self.group_size} must be -1 (per channel) or >= 8")
        if not 0 < self.damp_percent < 1:
            raise ConfigError(f"{key}.damp_percent: {self.damp_percent} must be in (0, 1)")
