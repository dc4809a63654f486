"""Config of Inference-time Dynamic Prompting (IDP), kept import-light."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig

ROUTINGS = ("hard", "shard", "soft")


@dataclass(frozen=True)
class IDPConfig(MethodConfig):
    """A pool of short soft prompts; per input, the one the input attends to most is kept.

    Example (config.yaml, under ``recovery.methods``)::

        - method: idp
          pool_size: 4            # m prompts
          num_virtual_tokens: 5   # n tokens each
          selection_layers: 1     # leading layers that see the whole pool and score it
          routing: hard           # hard | shard | soft (how training picks prompts)
          lr: 3.0e-2

    ``routing``: ``hard`` trains with the inference rule (argmax; only the selected
    prompt gets gradients); ``shard`` trains prompt i on the blocks with index = i mod m;
    ``soft`` trains a softmax(scores / temperature) mixture of the pool. Inference is
    always the argmax rule. Pool size 1 is plain prompt tuning.
    """

    method = "idp"
    entry_point = "compress_recover.recover.idp:prepare"
    adapter_loader = "compress_recover.recover.idp:load_idp"
    side = "input"  # prompts at the input
    choice_field = "idp_prompt"  # the samples field the prompt chosen per question is written to
    pool_size: int = 4
    num_virtual_tokens: int = 5
    selection_layers: int = 1
    routing: str = "hard"
    temperature: float = 1.0
    lr: float = 3.0e-2
    weight_decay: float = 0.0

    def prompt_positions(self) -> tuple[str, int]:
        """In the selection layers the whole pool stands before the input."""
        return ("num_virtual_tokens", self.pool_size * self.num_virtual_tokens)

    def check(self, key: str) -> None:
        for name in ("pool_size", "num_virtual_tokens", "selection_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}: {getattr(self, name)} must be >= 1")
        if self.routing not in ROUTINGS:
            raise ConfigError(f"{key}.routing: {self.routing!r} is not one of {list(ROUTINGS)}")
        if self.temperature <= 0:
            raise ConfigError(f"{key}.temperature: {self.temperature} must be > 0")
        if self.lr <= 0:
            raise ConfigError(f"{key}.lr: {self.lr} must be > 0")
