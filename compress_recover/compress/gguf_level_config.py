"""Config of a GGUF quant level made by llama.cpp's own quantizer, kept import-light."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig
from .gguf_file import FILE_TYPES

LEVELS = tuple(FILE_TYPES)  # the levels offered (check() and the schema's enum)


@dataclass(frozen=True)
class GGUFLevelConfig(MethodConfig):
    """A llama.cpp quant level: the model written as a float32 GGUF, quantized by llama.cpp's
    ``llama_model_quantize`` (its blocks, its mixtures for the ``_S``/``_M``/``_L`` types), kept
    as ``model.gguf`` beside the dequantized float32 safetensors every other stage reads.

    Example (config.yaml, under ``compression.methods``)::

        - method: gguf_level
          type: Q4_K_M     # Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 Q3_K_L Q3_K_M Q3_K_S Q2_K

    A K-quant block spans 256 input columns: a tensor whose rows are not a multiple of 256
    falls back to another type (llama.cpp's choice). The manifest and the report list the
    types the file really holds.
    """

    method = "gguf_level"
    entry_point = "compress_recover.compress.gguf_level:compress"
    tools = ("llama_cpp",)
    type: str = "Q4_K_M"

    def slug(self) -> str:
        return self.name or f"gguf-{self.type.lower()}"

    def gguf_file(self) -> bool:
        return True

    def check(self, key: str) -> None:
        if self.type not in LEVELS:
            raise ConfigError(f"{key}.type: {self.type!r} is not a GGUF level llama.cpp makes without an importance "
                              f"matrix; choose one of {sorted(LEVELS)}")

    def check_shape(self, key: str, model: str, shape) -> None:
        if shape.model_type is not None and shape.model_type != "llama":
            raise ConfigError(f"{key}: method 'gguf_level' writes Llama-family models as GGUF; model '{model}' is "
                              f"'{shape.model_type}': convert it with llama.cpp's convert_hf_to_gguf.py and "
                              "quantize it there, then give each level as an external entry (models.<name>.compressions)")

    def merge_effect(self, details: dict) -> dict:
        return {"merge_breaks_quantization": True,
                "note": f"merging into the {self.type} GGUF would need requantization"}
