"""What a model's config says about its size, for limits that depend on the model at hand.

Read from a Hugging Face ``config.json`` (:meth:`ModelShape.from_config`), or known before
download for the embedded default (:data:`EMBEDDED`, SmolLM2-135M-Instruct as its GGUF
says). Method configs check their values against it (``MethodConfig.check_shape``): at plan
time where the model is on disk or embedded, else at the start of the job that reads the
checkpoint, naming the config key either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


# Decoder families whose layers sit at ``model.model.layers`` with Llama's projection names:
# what the methods that run their own forward pass or prune by layer, and the attention
# analysis, walk (tested on llama).
LLAMA_LIKE = ("llama", "mistral", "qwen2")
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    model_type: str | None = None
    hidden: int | None = None
    intermediate: int | None = None
    layers: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    max_positions: int | None = None
    vocab: int | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "ModelShape":
        """From a config.json's Llama-style fields (missing ones: None, not checked)."""
        def get(*names):
            for name in names:
                if isinstance(cfg.get(name), int):
                    return cfg[name]
            return None

        hidden, heads = get("hidden_size", "n_embd"), get("num_attention_heads", "n_head")
        head_dim = get("head_dim") or (hidden // heads if hidden and heads else None)
        return cls(model_type=cfg.get("model_type") if isinstance(cfg.get("model_type"), str) else None,
                   hidden=hidden, intermediate=get("intermediate_size", "n_inner"),
                   layers=get("num_hidden_layers", "n_layer"), heads=heads,
                   kv_heads=get("num_key_value_heads") or heads, head_dim=head_dim,
                   max_positions=get("max_position_embeddings", "n_positions"), vocab=get("vocab_size"))

    @classmethod
    def of_checkpoint(cls, folder: str | Path) -> "ModelShape":
        return cls.from_config(json.loads((Path(folder) / "config.json").read_text()))

    def linear_dims(self, module: str) -> tuple[int, int] | None:
        """(input, output) width of a decoder layer's linear ``module`` (Llama names), or None
        when the name or a width is unknown."""
        attn = self.heads * self.head_dim if self.heads and self.head_dim else None
        kv = self.kv_heads * self.head_dim if self.kv_heads and self.head_dim else None
        dims = {"q_proj": (self.hidden, attn), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                "o_proj": (attn, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}
        found = dims.get(module)
        return found if found and None not in found else None


# SmolLM2-135M-Instruct (the embedded default), as its GGUF's metadata says.
EMBEDDED = ModelShape(model_type="llama", hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64,
                      max_positions=8192, vocab=49152)


def known_shape(spec: dict) -> ModelShape | None:
    """A model's shape when knowable before download (embedded, local), else None."""
    if spec.get("source") == "embedded":
        return EMBEDDED
    if spec.get("source") == "local" and (Path(spec.get("path") or "") / "config.json").is_file():
        return ModelShape.of_checkpoint(spec["path"])
    return None


def llama_like(shape: ModelShape) -> bool:
    """Whether the model's decoder has Llama's layout (unknown: assumed, the job checks)."""
    return shape.model_type is None or shape.model_type in LLAMA_LIKE


def check_family(key: str, model: str, shape: ModelShape, method: str, what: str) -> None:
    """Refuse a method that walks a Llama-style decoder on a model of another family."""
    from .registry import ConfigError

    if not llama_like(shape):
        raise ConfigError(f"{key}: method '{method}' {what} a Llama-style decoder (model.model.layers; "
                          f"families {list(LLAMA_LIKE)}); model '{model}' is '{shape.model_type}'")


def check_targets(key: str, model: str, shape: ModelShape, target_modules) -> None:
    """A low-rank adapter's ``target_modules`` must name linear modules the model has, where
    its family tells them: a Llama-style decoder's layers have exactly :data:`LLAMA_TARGETS`
    (a name that matches none would adapt nothing, or, beside one that matches, silently less
    than asked); Llama's names on a model of another family are refused too. A model whose
    family is unknown before download is checked by the job (peft refuses a list that
    matches nothing)."""
    from .registry import ConfigError

    if shape.model_type in LLAMA_LIKE:
        unknown = [m for m in target_modules if m not in LLAMA_TARGETS]
        if unknown:
            raise ConfigError(f"{key}.target_modules: {unknown} name no linear module of model '{model}', a "
                              f"'{shape.model_type}' decoder whose layers' linear modules are {list(LLAMA_TARGETS)}; "
                              "name some of those")
    elif not llama_like(shape) and set(target_modules) <= set(LLAMA_TARGETS):
        raise ConfigError(f"{key}.target_modules: {list(target_modules)} are Llama's projection names; model "
                          f"'{model}' is '{shape.model_type}': name its own linear modules (peft's default for "
                          f"'{shape.model_type}' is in peft's per-model-type target module mapping)")


def check_rank(key: str, model: str, shape: ModelShape, rank: int, target_modules) -> None:
    """The target modules exist (:func:`check_targets`), and a low-rank adapter's ``rank``
    does not exceed the smaller width of any target layer: a larger one adds parameters that
    can only repeat what the layer's own rank allows."""
    from .registry import ConfigError

    check_targets(key, model, shape, target_modules)
    for module in target_modules:
        dims = shape.linear_dims(module)
        if dims and rank > min(dims):
            raise ConfigError(f"{key}.rank: {rank} exceeds model '{model}''s {module} ({dims[0]} -> {dims[1]}), "
                              f"whose rank is at most {min(dims)}; use rank <= {min(dims)}")


def check_context(key: str, model: str, shape: ModelShape, config, seq_len: int) -> None:
    """The positions a method puts before the input plus a training block must fit the
    model's context (``config``: a recovery MethodConfig; its ``prompt_positions``)."""
    from .registry import ConfigError

    field_name, positions = config.prompt_positions()
    if positions and shape.max_positions and positions + seq_len > shape.max_positions:
        raise ConfigError(f"{key}.{field_name}: {positions} prompt positions + {seq_len} tokens of a training block "
                          f"(recovery.budget.seq_len) exceed model '{model}''s context of {shape.max_positions} "
                          "positions")
