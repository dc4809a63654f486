"""LoRA through peft; works on plain and on GPTQ checkpoints (peft's GPTQ LoRA layer)."""

from __future__ import annotations

from .lora_config import LoRAConfig


def prepare(model, config: LoRAConfig, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # LoRA's A matrices are drawn at random
    peft_config = LoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM",
        layers_to_transform=list(config.layers) if config.layers else None,
    )
    return get_peft_model(model, peft_config)
