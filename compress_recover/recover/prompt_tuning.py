"""Prompt tuning through peft; the (possibly GPTQ-quantized) model stays frozen."""

from __future__ import annotations

from .prompt_tuning_config import PromptTuningConfig
from .soft_prompts import vocab_prompts


def prepare(model, config: PromptTuningConfig, seed: int):
    """The model with a peft soft prompt of ``config.num_virtual_tokens`` tokens.

    Initialisation: with ``init_text``, the embeddings of that text's tokens (peft's TEXT
    init); without, embeddings of random vocabulary tokens (peft's SAMPLE_VOCAB init, so
    the saved adapter config says so) whose ids :func:`vocab_prompts` draws from ``seed``:
    the same draw IDP makes for its pool, so prompt tuning and IDP start from the same
    distribution, and a prompt of the same length from the very same embeddings. (peft's
    own SAMPLE_VOCAB draw comes from the global RNG after its embedding layer's random
    init has consumed some of it, so it could not match IDP's; its draw is replaced.)
    """
    import torch
    from peft import PromptTuningConfig as PeftPromptTuningConfig
    from peft import PromptTuningInit, get_peft_model

    torch.manual_seed(seed)
    if config.init_text is not None:
        init = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": config.init_text,
                "tokenizer_name_or_path": model.name_or_path}
        start = None
    else:
        init = {"prompt_tuning_init": PromptTuningInit.SAMPLE_VOCAB}
        start = vocab_prompts(model.get_input_embeddings().weight, (config.num_virtual_tokens,), seed)
    peft_config = PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens, **init)
    peft_model = get_peft_model(model, peft_config)
    if start is not None:
        prompt = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
        with torch.no_grad():
            prompt.copy_(start.to(device=prompt.device, dtype=prompt.dtype))
    return peft_model
