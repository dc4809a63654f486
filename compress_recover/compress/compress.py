"""Rule ``compress_<method>``: one compression job (calibration data, the method, the manifest)."""

from __future__ import annotations

import inspect
import logging
import shutil
import time
from pathlib import Path

from ..io import atomic_dir, dir_size, read_json, shortfall, write_manifest
from ..runtime import Runtime, library_versions
from ..shape import ModelShape
from ..tokens import calibration_blocks
from . import COMPRESSION
from .widths import check_divisors, checkpoint_widths

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def copy_tokenizer(model_dir: str | Path, out_dir: Path) -> None:
    """Give a compressed checkpoint the base model's tokenizer files it lacks."""
    for name in TOKENIZER_FILES:
        if (Path(model_dir) / name).exists() and not (out_dir / name).exists():
            shutil.copy2(Path(model_dir) / name, out_dir / name)


def run_compression(*, model_dir: str, out_dir: str, method_config: dict, key: str, text_dir: str,
                    calibration_samples: int, calibration_seq_len: int, runtime: Runtime) -> dict:
    """Compress the checkpoint in ``model_dir`` with ``method_config`` into ``out_dir``.

    ``key`` is the config key of the method entry, used in error messages.
    """
    config = COMPRESSION.parse(method_config, key)
    check_divisors(model_dir, checkpoint_widths(model_dir), config, key)
    config.check_shape(key, str(model_dir), ModelShape.of_checkpoint(model_dir))
    entry = COMPRESSION[config.method].load()
    runtime = runtime.start(storage=True)  # dtype auto: the shared checkpoint stays float32
    device, seed = runtime.device, runtime.seed
    calibration = None
    if config.uses_calibration:
        from transformers import AutoTokenizer

        calibration = calibration_blocks(AutoTokenizer.from_pretrained(model_dir), Path(text_dir) / "train.jsonl",
                                         samples=calibration_samples, seq_len=calibration_seq_len, seed=seed)
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        extra = {"key": key} if "key" in inspect.signature(entry).parameters else {}  # errors that name the key
        _, details = entry(model_dir=model_dir, out_dir=tmp, config=config, calibration=calibration,
                           device=device, seed=seed, dtype=runtime.dtype, **extra)
        copy_tokenizer(model_dir, tmp)
        base = read_json(Path(model_dir) / "manifest.json")
        manifest = {
            "method": config.method,
            "name": config.slug(),
            "params": config.params(),
            "details": details,
            "merge_effect": config.merge_effect(details),
            "base_model": base.get("model"),
            "base_parameters": base.get("parameters"),
            "base_disk_bytes": dir_size(model_dir),
            # a GGUF quant level's size is its file's (the folder also holds its dequantized weights)
            "disk_bytes": details.get("gguf_bytes") or dir_size(tmp),
            "folder_bytes": dir_size(tmp),
            "calibration": ({"samples": int(calibration.shape[0]), "seq_len": int(calibration.shape[1]),
                             "tokens": int(calibration.numel()), "seed": seed}
                            if calibration is not None else {"tokens": 0, "note": "method uses no calibration data"}),
            "shortfalls": ([shortfall("compression.calibration.samples", "calibration blocks", calibration_samples,
                                      int(calibration.shape[0]))]
                           if calibration is not None and calibration.shape[0] < calibration_samples else []),
            "device": device,
            "dtype": runtime.dtype,
            "threads": runtime.threads,
            "wall_time_s": round(time.perf_counter() - start, 2),
            "library_versions": library_versions(),
        }
        manifest = write_manifest(tmp, manifest)
    log.info("compressed with %s in %.1f s: %d -> %d bytes", config.slug(), manifest["wall_time_s"],
             manifest["base_disk_bytes"], manifest["disk_bytes"])
    return manifest
