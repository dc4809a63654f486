"""Stage 4, recover: the registry of recovery methods.

``none`` evaluates the compressed model as it is. Each other method has a config
dataclass registered below and an entry point ``prepare(model, config, seed)`` that
returns the model with its trainable parameters attached; the shared training loop
(``compress_recover.recover.train``) spends the same budget on every method.
"""

from __future__ import annotations

from ..registry import NoMethod, Registry
from .idp_config import IDPConfig
from .lora_config import LoRAConfig
from .prompt_tuning_config import PromptTuningConfig

RECOVERY = Registry("recovery")
RECOVERY.register(NoMethod, None)
RECOVERY.register(LoRAConfig, "compress_recover.recover.lora:prepare")
RECOVERY.register(PromptTuningConfig, "compress_recover.recover.prompt_tuning:prepare")
RECOVERY.register(IDPConfig, "compress_recover.recover.idp:prepare")
