"""Loading a checkpoint folder written by this pipeline (plain or quantized).

Adapters on top of it are the recover stage's business: :mod:`compress_recover.recover.load`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .runtime import torch_dtype


def is_quantized(checkpoint_dir: str | Path) -> bool:
    cfg = json.loads((Path(checkpoint_dir) / "config.json").read_text())
    return bool(cfg.get("quantization_config"))


log = logging.getLogger(__name__)

WEIGHTS = ("kernel", "dense")


def dense_on_cpu(device: str) -> str:
    """How training and scoring run quantized weights: dense on CPU, where GPTQModel's CPU
    kernels dequantize on every call (or compute in bfloat16), the kernel elsewhere."""
    return "dense" if str(device).startswith("cpu") else "kernel"


def _is_quantized_layer(module) -> bool:
    """A layer that stores quantized weights and dequantizes them itself (GPTQModel's kernels)."""
    import torch

    return not isinstance(module, torch.nn.Linear) and callable(getattr(module, "dequantize_weight", None))


def densify(model) -> int:
    """Replace every quantized linear layer that dequantizes itself (``dequantize_weight``, as
    GPTQModel's kernels do) by an ``nn.Linear`` holding exactly its dequantized weights, in
    the dtype the layer computes in. Dequantized once, here; returns the layers replaced."""
    import torch

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not _is_quantized_layer(child):
                continue
            rounds = max(1, child.g_idx.shape[0] // child.in_features) if getattr(child, "g_idx", None) is not None \
                else 1
            with torch.no_grad():
                weight = child.dequantize_weight(num_itr=rounds).t()
            if tuple(weight.shape) != (child.out_features, child.in_features):
                raise RuntimeError(f"{name}: dequantized weight of shape {tuple(weight.shape)} for a "
                                   f"{child.in_features} -> {child.out_features} layer")
            dense = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                    device=weight.device, dtype=dtype)
            with torch.no_grad():
                dense.weight.copy_(weight.to(dtype))
                if child.bias is not None:
                    dense.bias.copy_(child.bias.to(dtype))
            dense.requires_grad_(False)
            setattr(parent, name, dense)
            replaced += 1
    return replaced


def load_model(checkpoint_dir: str | Path, *, device: str, dtype: str = "float32",
               trust_remote_code: bool = False, weights: str = "kernel"):
    """A causal LM from a safetensors checkpoint folder written by this pipeline.

    Quantized checkpoints (a ``quantization_config`` in config.json, e.g. the AutoGPTQ format) load
    through transformers' quantizer integration (GPTQModel kernels for AutoGPTQ:
    torch on CPU, the fastest available on CUDA). ``weights="dense"`` then replaces the
    quantized layers by dense ones holding exactly their dequantized values (:func:`densify`):
    the same function, computed the way the unquantized model is.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights: {weights!r} is not one of {WEIGHTS}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .io import verify_folder

    verify_folder(checkpoint_dir)  # the weights are the ones the download or compress job wrote
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint_dir, dtype=torch_dtype(dtype), device_map=device, use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    model.eval()
    if weights == "dense" and is_quantized(checkpoint_dir):
        log.info("%s: %d quantized layers run as dense dequantized weights", checkpoint_dir, densify(model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def quantized_kernels(model) -> list[str]:
    """Class names of the quantized layers ``model`` runs (empty for a dense model)."""
    return sorted({type(m).__name__ for m in model.modules() if _is_quantized_layer(m)})
