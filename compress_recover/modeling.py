"""Loading a checkpoint folder written by this pipeline (plain or quantized).

Adapters on top of it are the recover stage's business: :mod:`compress_recover.recover.load`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .runtime import torch_dtype


def is_quantized(checkpoint_dir: str | Path) -> bool:
    cfg = json.loads((Path(checkpoint_dir) / "config.json").read_text())
    return bool(cfg.get("quantization_config"))


def load_model(checkpoint_dir: str | Path, *, device: str, dtype: str = "float32",
               trust_remote_code: bool = False):
    """A causal LM from a safetensors checkpoint folder written by this pipeline.

    Quantized checkpoints (a ``quantization_config`` in config.json, e.g. the AutoGPTQ format) load
    through transformers' quantizer integration (GPTQModel kernels for AutoGPTQ:
    torch on CPU, the fastest available on CUDA).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint_dir, dtype=torch_dtype(dtype), device_map=device, use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
