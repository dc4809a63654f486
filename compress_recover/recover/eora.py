"""EoRA: a training-free low-rank correction of the compression error, saved as a PEFT
LoRA adapter (loaded and scored like LoRA's, :mod:`.peft_adapter`).

The maths is GPTQModel's (``gptqmodel.eora.eora``): ``eora_process_input`` turns each
calibration batch's inputs of a layer into its covariance contribution, the contributions
are accumulated as GPTQModel's EoRA processor does, and ``eora_compute_lora`` projects the
residual W - W_compressed into that covariance's eigenspace, truncates it to ``rank`` and
returns (A, B) with B @ A ~ W - W_compressed where the calibration inputs lie. What is
ours: collecting the inputs with forward hooks on the compressed model (one pass over the
calibration blocks, every target layer at once; GPTQModel instead walks the layers in
order with the earlier corrections applied), the residual for any compressed checkpoint
(GPTQ's dequantized weights or a pruned dense one) and the PEFT packaging. The compressed
checkpoint is never changed: on a pruned model the adapter stays unmerged, so the
checkpoint keeps its sparsity (merging would fill the zeros; the manifest's merge note says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..registry import ConfigError
from .eora_config import EoRAConfig

log = logging.getLogger(__name__)


def target_layers(model, config: EoRAConfig, key: str = "recovery.methods") -> dict:
    """name -> nn.Linear of every layer of ``model`` whose last name part is one of
    ``config.target_modules``; refuses a target that matches nothing and a rank above a
    layer's smaller dimension (naming ``key``)."""
    import torch

    layers = {n: m for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in config.target_modules}
    found = {n.rsplit(".", 1)[-1] for n in layers}
    missing = sorted(set(config.target_modules) - found)
    if missing:
        raise ConfigError(f"{key}.target_modules: {missing} match no linear layer of the model")
    smallest = min(min(m.weight.shape) for m in layers.values())
    if config.rank > smallest:
        raise ConfigError(f"{key}.rank: {config.rank} exceeds the smallest target layer dimension {smallest}")
    return layers


def covariances(model, layers: dict, blocks, device: str) -> dict:
    """Per layer of ``layers``, the covariance of its inputs over the calibration ``blocks``
    ((n, seq_len) token ids, one forward pass per block), accumulated with GPTQModel's
    ``eora_process_input`` and its running scale (as ``EoraProcessor`` does)."""
    import torch
    from gptqmodel.eora.eora import eora_process_input

    n = int(blocks.shape[0])
    totals: dict = {}

    def hook(name):
        def record(module, inputs, output):
            _, contribution, scale = eora_process_input(input=inputs, name=name, sample_size=n,
                                                        device=module.weight.device)
            if name in totals:
                totals[name].mul_(scale).add_(contribution)
            else:
                totals[name] = contribution
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    try:
        with torch.no_grad():
            for block in blocks:
                model(input_ids=block.unsqueeze(0).to(device))
    finally:
        for h in handles:
            h.remove()
    return totals


def output_error(delta, covariance) -> float:
    """||delta X||_F^2 over the calibration inputs X, from their covariance: trace(delta C delta^T)."""
    return float((delta @ covariance * delta).sum())


def eora_factors(residuals: dict, covs: dict, rank: int, device: str) -> tuple[dict, dict]:
    """name -> (A, B) from GPTQModel's ``eora_compute_lora`` for each residual (float32),
    and per layer the calibration output error before and after the correction."""
    import torch
    from gptqmodel.eora.eora import eora_compute_lora

    factors, errors = {}, {}
    for name, delta in residuals.items():
        cov = covs[name]
        a, b = eora_compute_lora(w_wq_delta=delta.clone(), name=name, eigen_scaling_diag_matrix=cov.clone(),
                                 rank=rank, dtype=torch.float32, device=torch.device(device))
        factors[name] = (a, b)
        errors[name] = {"before": output_error(delta, cov), "after": output_error(delta - b @ a, cov)}
    return factors, errors


def to_peft(model, factors: dict, config: EoRAConfig):
    """``model`` with a PEFT LoRA adapter whose (A, B) are ``factors`` (scale 1: alpha = rank)."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_config = LoraConfig(r=config.rank, lora_alpha=config.rank, lora_dropout=0.0,
                             target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, peft_config)
    with torch.no_grad():
        for name, (a, b) in factors.items():
            layer = peft_model.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    return peft_model


def compute(*, base_model, compressed_model, calibration, config: EoRAConfig, device: str, key: str):
    """The EoRA adapter of ``compressed_model`` (dense weights: GPTQ dequantized, or pruned)
    against ``base_model`` on the ``calibration`` blocks, as a PEFT model, and what it did
    (per-layer calibration output error before and after, summed)."""
    layers = target_layers(compressed_model, config, key)
    base = dict(base_model.named_modules())
    residuals = {}
    for name, layer in layers.items():
        if name not in base or base[name].weight.shape != layer.weight.shape:
            raise ValueError(f"{key}: layer {name} of the compressed model has no counterpart of the same shape "
                             "in the uncompressed model")
        residuals[name] = (base[name].weight.detach().float() - layer.weight.detach().float()).to(device)
    covs = covariances(compressed_model, layers, calibration, device)
    factors, errors = eora_factors(residuals, covs, config.rank, device)
    before = sum(e["before"] for e in errors.values())
    after = sum(e["after"] for e in errors.values())
    log.info("EoRA rank %d on %d layers: calibration output error %.4g -> %.4g (x%.3f)", config.rank,
             len(layers), before, after, after / before if before else float("nan"))
    details = {"layers": len(layers), "calibration_output_error": {"before": before, "after": after},
               "calibration_output_error_ratio": after / before if before else None}
    return to_peft(compressed_model, factors, config), details


def run(*, config: EoRAConfig, key: str, checkpoint_dir: str, base_dir: str, text_dir: str, runtime, **_):
    """The entry point: the compressed checkpoint and the uncompressed one, both with dense
    weights, the calibration blocks the compression used (its manifest's samples, length and
    seed; for a compression that used none, the config's ``calibration_samples`` and
    ``calibration_seq_len`` with the run's seed), and :func:`compute`. Returns (PEFT model, details)."""
    from ..io import read_json, shortfall
    from ..modeling import load_model
    from ..tokens import calibration_blocks

    load = {"device": runtime.device, "dtype": "float32", "trust_remote_code": runtime.trust_remote_code,
            "weights": "dense"}
    compressed, tokenizer = load_model(checkpoint_dir, **load)
    base, _ = load_model(base_dir, **load)
    manifest = read_json(Path(checkpoint_dir) / "manifest.json")
    used = manifest.get("calibration") or {}
    settings = ({k: used[k] for k in ("samples", "seq_len", "seed")} if used.get("tokens")
                else {"samples": config.calibration_samples, "seq_len": config.calibration_seq_len,
                      "seed": runtime.seed})
    blocks = calibration_blocks(tokenizer, Path(text_dir) / "train.jsonl", **settings)
    model, details = compute(base_model=base, compressed_model=compressed, calibration=blocks, config=config,
                             device=runtime.device, key=key)
    short = [] if blocks.shape[0] >= settings["samples"] else [shortfall(
        f"{key}.calibration_samples" if not used.get("tokens") else "compression.calibration.samples",
        "calibration blocks", settings["samples"], int(blocks.shape[0]))]
    return model, {**details, "calibration": {**settings, "tokens": int(blocks.numel()),
                                              "from": "the compression's" if used.get("tokens")
                                              else "the config's (the compression used none)"},
                   "shortfalls": short}
