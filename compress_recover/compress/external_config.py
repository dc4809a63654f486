"""Config of a compressed checkpoint made elsewhere (a user's own), kept import-light."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..registry import ConfigError, MethodConfig
from ..runs import COMMIT_SHA

SOURCES = ("gguf", "local", "hub")


@dataclass(frozen=True)
class CheckpointConfig(MethodConfig):
    """A compressed version of the model made elsewhere: no compression runs; the import job
    checks it against the model it belongs to (architecture, widths, layers, vocabulary,
    token list), records its sha256, gives it the base model's tokenizer and writes it
    where a compression the pipeline made would be. Listed under its model
    (``models.<name>.compressions``), since it is the compressed version of that model only.

    Example::

        models:
          smollm2-135m:
            source: embedded
            compressions:
              - {method: external, name: my-q4km, source: gguf, path: /data/smollm2.Q4_K_M.gguf}
              - {method: external, name: my-gptq, source: local, path: /data/smollm2-gptq-4bit}
              - {method: external, source: hub, id: someone/SmolLM2-135M-Instruct-AWQ, revision: <commit sha>}

    ``source``: ``gguf`` (a GGUF file at any quant level: dequantized for the torch path,
    kept for the llama.cpp path), ``local`` (a safetensors folder: dense, GPTQ, AWQ or
    compressed-tensors, loaded through transformers' quantizer integrations), ``hub`` (the
    same from the hub, ``id`` at a pinned ``revision``).
    """

    method = "external"
    entry_point = "compress_recover.compress.external:compress"
    per_model = True
    source: str = "gguf"
    path: str | None = None
    id: str | None = None
    revision: str | None = None
    allow_floating_revision: bool = False

    def slug(self) -> str:
        if self.name:
            return self.name
        stem = Path(self.path).name.removesuffix(".gguf") if self.path else (self.id or "").split("/")[-1]
        return "ckpt-" + (re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "model")

    def gguf_file(self) -> bool:
        return self.source == "gguf"

    def source_files(self) -> list[str]:
        return [self.path] if self.source in ("gguf", "local") and self.path else []

    def check(self, key: str) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"{key}.source: {self.source!r} is not one of {list(SOURCES)}")

    def check_source(self, key: str) -> None:
        """What the entry points to exists (checked with the plan, before any job): the file or
        folder, or a hub id at a pinned revision."""
        if self.source in ("gguf", "local"):
            if not self.path:
                raise ConfigError(f"{key}.path: source '{self.source}' needs a path")
            path = Path(self.path)
            if self.source == "gguf" and not path.is_file():
                raise ConfigError(f"{key}.path: GGUF file {path} does not exist")
            if self.source == "local" and not (path / "config.json").is_file():
                raise ConfigError(f"{key}.path: {path} is not a checkpoint folder (no config.json)")
            if self.source == "local" and not list(path.glob("*.safetensors")):
                raise ConfigError(f"{key}.path: {path} has no *.safetensors weights; pickle checkpoints are refused")
        if self.source == "hub":
            if not (self.id and self.revision):
                raise ConfigError(f"{key}: source 'hub' needs 'id' and a pinned 'revision'")
            if not COMMIT_SHA.match(self.revision) and not self.allow_floating_revision:
                raise ConfigError(f"{key}.revision: {self.revision!r} is not a commit sha (40 hex digits); pin the "
                                  f"commit, or set {key}.allow_floating_revision: true")

    def check_shape(self, key: str, model: str, shape) -> None:
        """Refuse, before any job, a file or folder whose architecture, width, layers or
        vocabulary size differ from model ``model``'s (where its shape is known)."""
        if self.source == "hub" or not self.path:
            return  # checked by the import job, before any work
        path = Path(self.path)
        mine = {"model_type": shape.model_type, "hidden": shape.hidden, "layers": shape.layers, "vocab": shape.vocab}
        if self.source == "gguf":
            from .gguf_file import GGUF_ARCHITECTURE, header

            found = header(path)
            found = {"model_type": found["architecture"], "hidden": found["hidden_size"], "layers": found["layers"],
                     "vocab": found["vocab_size"]}
            mine["model_type"] = GGUF_ARCHITECTURE.get(shape.model_type, shape.model_type)
        else:
            from ..shape import ModelShape

            other = ModelShape.of_checkpoint(path)
            found = {"model_type": other.model_type, "hidden": other.hidden, "layers": other.layers,
                     "vocab": other.vocab}
        for field, value in found.items():
            if value is not None and mine[field] is not None and value != mine[field]:
                raise ConfigError(f"{key}.path: {path} has {field} {value!r}, model '{model}' has {mine[field]!r}: it "
                                  f"is not a compressed version of '{model}'")

    def merge_effect(self, details: dict) -> dict:
        fmt = details.get("format", "unknown")
        if fmt == "dense":
            return {"merge_breaks_sparsity": False, "note": "dense checkpoint: merging is lossless"}
        return {"merge_breaks_quantization": True, "note": f"merging into the {fmt} checkpoint would need requantization"}
