"""Pruning: magnitude (by hand: llm-compressor's magnitude modifier is a training-time
schedule, not a one-shot method), Wanda and SparseGPT (llm-compressor one-shot).

Every method prunes the linear layers of the decoder blocks and saves a dense
safetensors checkpoint (zeros stored explicitly) that every later stage loads with
plain transformers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .pruning_masks import magnitude_mask, sparsity_of
from .pruning_config import PruningConfig, SparseGPTConfig

log = logging.getLogger(__name__)


def target_linears(model) -> dict[str, "torch.nn.Linear"]:  # noqa: F821
    """The linear layers inside the decoder blocks, by qualified name."""
    import torch

    layers = model.model.layers
    return {f"model.layers.{i}.{name}": mod for i, block in enumerate(layers)
            for name, mod in block.named_modules() if isinstance(mod, torch.nn.Linear)}


def measured_sparsity(model) -> dict:
    per_layer = {name: round(sparsity_of(mod.weight), 6) for name, mod in target_linears(model).items()}
    zeros = sum(int((mod.weight == 0).sum()) for mod in target_linears(model).values())
    total = sum(mod.weight.numel() for mod in target_linears(model).values())
    all_params = sum(p.numel() for p in model.parameters())
    all_zeros = sum(int((p == 0).sum()) for p in model.parameters())
    return {"pruned_layers_sparsity": zeros / total, "model_sparsity": all_zeros / all_params,
            "per_layer": per_layer}


def _load(model_dir: str, device: str, dtype: str):
    from transformers import AutoModelForCausalLM

    from ..runtime import torch_dtype

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype(dtype), device_map=device,
                                                use_safetensors=True)


def _save(model, out_dir: Path, config: PruningConfig) -> dict:
    model.save_pretrained(str(out_dir), safe_serialization=True)
    stats = measured_sparsity(model)
    return {"target_sparsity": config.target_sparsity(), "n_m": config.n_m, **stats}


def prune_magnitude_(model, config: PruningConfig) -> None:
    import torch

    with torch.no_grad():
        for mod in target_linears(model).values():
            mod.weight.mul_(magnitude_mask(mod.weight, sparsity=config.sparsity, n_m=config.nm()).to(mod.weight))


def compress_magnitude(*, model_dir: str, out_dir: Path, config: PruningConfig, calibration, device: str,
                       seed: int, dtype: str = "float32"):
    model = _load(model_dir, device, dtype)
    prune_magnitude_(model, config)
    return model, _save(model, out_dir, config)


def _llmcompressor_modifier(config: PruningConfig, targets: list[str]):
    # Name the layers explicitly: a class target ("Linear") would also catch the LM
    # head, and through tied weights prune the embeddings.
    common = {"targets": targets}
    if config.n_m is not None:
        n, m = config.nm()
        # llm-compressor's "P:M" prunes P of every M; ours keeps N of every M.
        common.update(sparsity=1 - n / m, mask_structure=f"{m - n}:{m}")
    else:
        common.update(sparsity=config.sparsity, mask_structure="0:0")
    if isinstance(config, SparseGPTConfig):
        from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier

        return SparseGPTModifier(block_size=config.block_size, dampening_frac=config.dampening_frac, **common)
    from llmcompressor.modifiers.pruning import WandaPruningModifier

    return WandaPruningModifier(**common)


def compress_llmcompressor(*, model_dir: str, out_dir: Path, config: PruningConfig, calibration, device: str,
                           seed: int, dtype: str = "float32"):
    """Wanda or SparseGPT through llm-compressor's one-shot sequential pipeline."""
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot

    model = _load(model_dir, device, dtype)
    dataset = Dataset.from_dict({"input_ids": calibration.tolist(),
                                 "attention_mask": torch.ones_like(calibration).tolist()})
    log.info("%s: llm-compressor one-shot on %d blocks x %d tokens", config.slug(), *calibration.shape)
    oneshot(model=model, dataset=dataset, recipe=[_llmcompressor_modifier(config, list(target_linears(model)))],
            num_calibration_samples=int(calibration.shape[0]), max_seq_length=int(calibration.shape[1]),
            shuffle_calibration_samples=False, pipeline="sequential")
    return model, _save(model, out_dir, config)
