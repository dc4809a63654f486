"""Config of prompt tuning (Lester et al. 2021, https://arxiv.org/abs/2104.08691), kept import-light."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig


@dataclass(frozen=True)
class PromptTuningConfig(MethodConfig):
    """Soft prompt tuning through peft: ``num_virtual_tokens`` trained input embeddings
    placed before every input; the model itself stays frozen. Saved in PEFT format.

    Initialisation: ``init_text: null`` (the default) starts the prompt from the
    embeddings of ``num_virtual_tokens`` vocabulary tokens drawn uniformly at random with
    the run's seed, exactly as IDP draws its pool (one helper,
    :func:`compress_recover.recover.soft_prompts.vocab_prompts`): both input-side methods
    start from the same distribution, and a prompt of the same length from the same
    embeddings. ``init_text`` starts it from that text's token embeddings instead.

    Example (config.yaml, under ``recovery.methods``)::

        - method: prompt_tuning
          num_virtual_tokens: 20
          init_text: null   # e.g. "Answer the question with a fact." (null: random vocabulary tokens)
          lr: 3.0e-2
    """

    method = "prompt_tuning"
    entry_point = "compress_recover.recover.prompt_tuning:prepare"
    adapter_loader = "compress_recover.recover.peft_adapter:load"
    side = "input"  # prompts at the input
    num_virtual_tokens: int = 20
    init_text: str | None = None
    lr: float = 3.0e-2
    weight_decay: float = 0.0

    def prompt_positions(self) -> tuple[str, int]:
        return ("num_virtual_tokens", self.num_virtual_tokens)

    def check(self, key: str) -> None:
        if self.num_virtual_tokens < 1:
            raise ConfigError(f"{key}.num_virtual_tokens: {self.num_virtual_tokens} must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"{key}.lr: {self.lr} must be > 0")
        if self.init_text is not None and not self.init_text.strip():
            raise ConfigError(f"{key}.init_text: give a non-empty text or null")
