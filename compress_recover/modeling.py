"""Loading a stage's checkpoint (plain or GPTQ) and, optionally, a PEFT adapter on top."""

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

    GPTQ checkpoints load through transformers' GPTQ integration (GPTQModel kernels:
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


def load_recovered(checkpoint_dir: str | Path, adapter_dir: str | Path | None, *, device: str,
                   dtype: str = "float32", trust_remote_code: bool = False):
    """The compressed model with the recovery method's adapter applied (if any):
    a PEFT adapter folder (LoRA, prompt tuning) or an IDP prompt pool."""
    model, tokenizer = load_model(checkpoint_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    if adapter_dir is not None:
        from .recover.idp import is_idp_dir, load_idp

        if is_idp_dir(adapter_dir):
            return load_idp(model, adapter_dir), tokenizer
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        model.eval()
    return model, tokenizer
