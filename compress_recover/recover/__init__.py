"""Stage 4, recover: the registry of recovery methods.

Rule ``recover_<method>`` (one per registered method) runs
``workflow_scripts/recover.py`` -> :func:`compress_recover.recover.recover.run_recovery`.
:func:`compress_recover.recover.load.load_recovered` loads what it wrote, dispatching on
the adapter's manifest.

``none`` evaluates the compressed model as it is. Each other method is one unit: a config
dataclass in ``<method>_config.py`` (import-light) that names its entry points, ``prepare(model,
config, seed)`` (the model with its trainable parameters attached) and ``load(model,
adapter_dir)`` (a saved adapter put on a model), and states its side (``parameters`` or
``input``) and whether its adapter could be merged into the weights. The shared training
loop (:mod:`.train`) spends the same budget on every method.
"""

from __future__ import annotations

from ..registry import NoMethod, Registry
from .idp_config import IDPConfig
from .lora_config import LoRAConfig
from .prompt_tuning_config import PromptTuningConfig

RECOVERY = Registry("recovery", required=("entry_point", "adapter_loader", "side"))
for _config in (NoMethod, LoRAConfig, PromptTuningConfig, IDPConfig):
    RECOVERY.register(_config)
