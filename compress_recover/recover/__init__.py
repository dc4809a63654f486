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
loop (:mod:`.train`) spends the same budget on every method. A method whose model chooses
one prompt of a pool per input also names the samples field it writes the choice to
(:func:`choice_field`; the contract is :mod:`compress_recover.prompt_choice`).

A method that trains nothing (``trained = False``: EoRA, few-shot prompting) has rule
``compute_<method>`` instead (``workflow_scripts/compute.py`` ->
:func:`compress_recover.recover.compute.run_compute`), which calls its entry point (the
adapter to save, or None, and what it did) and writes a manifest like a trained run's.
"""

from __future__ import annotations

from ..registry import NoMethod, Registry
from .eora_config import EoRAConfig
from .fewshot_config import FewShotConfig
from .idp_config import IDPConfig
from .lora_config import LoRAConfig
from .prompt_tuning_config import PromptTuningConfig

RECOVERY = Registry("recovery", required=("entry_point", "adapter_loader", "side"))
for _config in (NoMethod, LoRAConfig, PromptTuningConfig, IDPConfig, EoRAConfig, FewShotConfig):
    RECOVERY.register(_config)


def choice_field(method: str) -> str | None:
    """The samples field the registered recovery method ``method`` writes the prompt it chose
    per question to (its config class's ``choice_field``, with
    :func:`compress_recover.prompt_choice.forced_field` beside it); None for a method that
    does not choose one prompt of a pool per input, or an unknown one."""
    return RECOVERY[method].config_cls.choice_field if method in RECOVERY else None
