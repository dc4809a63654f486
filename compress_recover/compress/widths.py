"""Layer-width checks of compression settings, import-light (run before any job and in the job).

A quantization group size or N:M's M must divide the input width of every linear layer that
is compressed; each method's config says which of its keys are such divisors.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import ConfigError, MethodConfig


def checkpoint_widths(folder: str | Path) -> dict[str, int]:
    """Input widths of the linear layers of a Hugging Face checkpoint folder (its config.json)."""
    cfg = json.loads((Path(folder) / "config.json").read_text())
    widths = {k: cfg[k] for k in ("hidden_size", "intermediate_size") if isinstance(cfg.get(k), int)}
    if isinstance(cfg.get("head_dim"), int) and isinstance(cfg.get("num_attention_heads"), int):
        widths["num_attention_heads*head_dim"] = cfg["head_dim"] * cfg["num_attention_heads"]
    return widths


def check_divisors(model: str, widths: dict[str, int], method_config: MethodConfig, key: str) -> None:
    """Raise ConfigError naming ``key`` when a divisor of ``method_config`` does not divide ``widths``."""
    for field_name, divisor in method_config.divisors().items():
        bad = {k: w for k, w in widths.items() if w % divisor}
        if bad:
            raise ConfigError(f"{key}.{field_name}: {divisor} does not divide the layer widths {bad} "
                              f"of model '{model}'")
