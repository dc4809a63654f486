"""Config of LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685), kept import-light."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import ConfigError, MethodConfig


@dataclass(frozen=True)
class LoRAConfig(MethodConfig):
    """Low-rank adapters through peft, trained on the general text, saved in PEFT format.

    Example (config.yaml, under ``recovery.methods``)::

        - method: lora
          rank: 8
          alpha: 16
          dropout: 0.0
          target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]
          lr: 2.0e-4

    ``layers`` (optional): the decoder layers to adapt (peft's ``layers_to_transform``;
    default every layer). With it a LoRA can be sized to another method's capacity: rank 1
    on ``q_proj`` of 10 layers of SmolLM2-135M (width 576) adds 10 x (576 + 576) = 11,520
    parameters, prompt tuning's 20 x 576 (docs/methods.md, "Matched capacity").
    """

    method = "lora"
    entry_point = "compress_recover.recover.lora:prepare"
    adapter_loader = "compress_recover.recover.peft_adapter:load"
    side = "parameters"  # new weights inside the model
    mergeable = True  # B @ A can be added to the weights (see the compression's merge_effect)
    rank: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    lr: float = 2.0e-4
    weight_decay: float = 0.0
    layers: list[int] | None = None

    def check(self, key: str) -> None:
        if self.rank < 1:
            raise ConfigError(f"{key}.rank: {self.rank} must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{key}.dropout: {self.dropout} must be in [0, 1)")
        if self.lr <= 0:
            raise ConfigError(f"{key}.lr: {self.lr} must be > 0")
        if not self.target_modules:
            raise ConfigError(f"{key}.target_modules: name at least one module")
        if self.layers is not None and (not self.layers or min(self.layers) < 0
                                        or len(set(self.layers)) != len(self.layers)):
            raise ConfigError(f"{key}.layers: {self.layers} must name distinct decoder layers >= 0 (or leave it out "
                              "for every layer)")

    def trainable_parameters(self, shape) -> int:
        """rank x (in + out) of every target module in every adapted layer (a module whose
        width the shape does not know counts as width x width)."""
        width = int(shape.hidden or 0)
        per_layer = sum(sum(shape.linear_dims(m) or (width, width)) for m in self.target_modules)
        return per_layer * self.rank * (len(self.layers) if self.layers else int(shape.layers or 0))

    def check_shape(self, key: str, model: str, shape) -> None:
        from ..shape import check_rank

        check_rank(key, model, shape, self.rank, self.target_modules)
        if self.layers and shape.layers is not None and max(self.layers) >= shape.layers:
            raise ConfigError(f"{key}.layers: layer {max(self.layers)} does not exist in model '{model}', whose "
                              f"layers are 0-{shape.layers - 1}")
