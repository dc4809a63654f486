"""Prompt tuning through peft; the (possibly GPTQ-quantized) model stays frozen."""

from __future__ import annotations

from .prompt_tuning_config import PromptTuningConfig


def prepare(model, config: PromptTuningConfig, seed: int):
    import torch
    from peft import PromptTuningConfig as PeftPromptTuningConfig
    from peft import PromptTuningInit, get_peft_model

    torch.manual_seed(seed)  # a random init draws the prompt here
    if config.init_text is not None:
        init = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": config.init_text,
                "tokenizer_name_or_path": model.name_or_path}
    else:
        init = {"prompt_tuning_init": PromptTuningInit.RANDOM}
    peft_config = PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens, **init)
    return get_peft_model(model, peft_config)
