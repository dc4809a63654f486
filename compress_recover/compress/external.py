"""A compressed checkpoint made elsewhere, imported as a compression (config:
:mod:`.external_config`).

Nothing is compressed. The job checks the checkpoint against the model it belongs to and
refuses, naming the config key, one that is not the compressed version of it:

- architecture (model_type / GGUF architecture), width, layers and vocabulary size equal
  the base's; a GGUF's token list equals the base tokenizer's, token by token;
- weights are safetensors or GGUF (no pickle); its sha256 is recorded.

It then writes the pipeline's checkpoint folder: a GGUF dequantized into the base's own
config (the torch path) and kept as ``model.gguf`` (the llama.cpp path); a safetensors
folder (dense, GPTQ, AWQ, compressed-tensors) copied as it is, loaded once through
transformers to prove it runs. The tokenizer is always the base model's: a checkpoint's
own tokenizer (a GGUF's especially, lm-eval #2887) is not what the base was evaluated with.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..io import sha256_file
from ..registry import ConfigError
from . import gguf_file
from .external_config import CheckpointConfig
from .gguf_file import GGUF_NAME, gguf_details

log = logging.getLogger(__name__)

# config.json fields that must equal the base's for a checkpoint to be its compressed version
SAME = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
GGUF_SAME = {"hidden_size": "hidden_size", "layers": "num_hidden_layers", "vocab_size": "vocab_size"}
# files of a checkpoint folder that are not copied: its own tokenizer (the base's is used)
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja"}


def _base_config(model_dir: str | Path) -> dict:
    return json.loads((Path(model_dir) / "config.json").read_text())


def check_gguf_header(key: str, path: Path, base: dict) -> dict:
    """Refuse a GGUF whose architecture, width, layers or vocabulary size differ from the
    base's config.json (``base``); errors name ``key``."""
    found = gguf_file.header(path)
    if found["architecture"] != gguf_file.GGUF_ARCHITECTURE.get(base.get("model_type"), base.get("model_type")):
        raise ConfigError(f"{key}.path: {path} is a '{found['architecture']}' model, the base is "
                          f"'{base.get('model_type')}': not a compressed version of it")
    for field, base_field in GGUF_SAME.items():
        if found[field] is not None and base.get(base_field) is not None and int(found[field]) != int(base[base_field]):
            raise ConfigError(f"{key}.path: {path} has {field} {found[field]}, the base has {base[base_field]}: not "
                              "a compressed version of it")
    return found


def check_folder_config(key: str, folder: Path, base: dict) -> dict:
    """Refuse a checkpoint folder whose config.json differs from the base's in :data:`SAME`."""
    cfg = json.loads((folder / "config.json").read_text())
    for field in SAME:
        if cfg.get(field) != base.get(field):
            raise ConfigError(f"{key}: {folder}/config.json has {field} {cfg.get(field)!r}, the base has "
                              f"{base.get(field)!r}: not a compressed version of it")
    return cfg


def check_tokens(key: str, path: Path, model_dir: str | Path) -> None:
    """A GGUF's token list must be the base tokenizer's, token by token."""
    from transformers import AutoTokenizer

    tokens = gguf_file.gguf_tokens(path)
    if tokens is None:
        raise ConfigError(f"{key}.path: {path} has no token list (tokenizer.ggml.tokens)")
    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    base = [None] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        base[index] = token
    differ = [i for i, (a, b) in enumerate(zip(tokens, base)) if b is not None and a != b]
    if differ or len(tokens) < len(vocab):
        first = differ[0] if differ else len(tokens)
        raise ConfigError(f"{key}.path: {path}'s vocabulary differs from the base tokenizer's ({len(differ)} of "
                          f"{len(tokens)} tokens differ; first at id {first}): not a compressed version of it")


def _folder(config: CheckpointConfig, scratch: Path, key: str) -> Path:
    if config.source == "local":
        return Path(config.path)
    from ..download.download import fetch_hub_snapshot

    # A failure says what to do: gated (accept the licence, log in), no such id or revision, unreachable.
    return fetch_hub_snapshot(what=key, key=key, repo=config.id, revision=config.revision,
                              cache_dir=str(scratch / "hub"), allow_patterns=["*.json", "*.safetensors"])


def compress(*, model_dir: str, out_dir: Path, config: CheckpointConfig, calibration, device: str,
             seed: int, dtype: str = "float32", key: str = "external"):
    """Check the checkpoint of ``config`` against the base in ``model_dir`` and write it to
    ``out_dir`` as the pipeline's compressed checkpoint."""
    import tempfile

    out_dir = Path(out_dir)
    base = _base_config(model_dir)
    if config.source == "gguf":
        path = Path(config.path)
        check_gguf_header(key, path, base)
        check_tokens(key, path, model_dir)
        shutil.copy2(path, out_dir / GGUF_NAME)
        details = {"source": "gguf", "path": str(path.resolve()), "format": "gguf",
                   **gguf_details(out_dir / GGUF_NAME, None)}
        details["source_sha256"] = details["gguf_sha256"]
        model = gguf_file.dequantize_into(out_dir / GGUF_NAME, model_dir, out_dir, dtype)
        return model, details
    with tempfile.TemporaryDirectory(prefix="checkpoint-") as scratch:
        folder = _folder(config, Path(scratch), key)
        cfg = check_folder_config(key, folder, base)
        weights = sorted(folder.glob("*.safetensors"))
        if not weights:
            raise ConfigError(f"{key}: {folder} has no *.safetensors weights; pickle checkpoints are refused")
        for f in folder.iterdir():
            if f.is_file() and f.name not in TOKENIZER_FILES and f.suffix in (".safetensors", ".json"):
                shutil.copy2(f, out_dir / f.name)
        quant = cfg.get("quantization_config") or {}
        details = {"source": config.source, "path": str(folder.resolve()) if config.source == "local" else None,
                   "id": config.id, "revision": config.revision,
                   "format": quant.get("quant_method", "dense") if quant else "dense",
                   "quantization_config": quant or None,
                   "source_sha256": {w.name: sha256_file(w) for w in weights}}
    from ..modeling import dense_on_cpu, load_model
    from .compress import copy_tokenizer

    copy_tokenizer(model_dir, out_dir)  # the base's tokenizer, before loading
    model, tokenizer = load_model(out_dir, device=device, dtype=dtype, weights=dense_on_cpu(device))
    _check_runs(key, model, tokenizer)
    return model, details


def _check_runs(key: str, model, tokenizer) -> None:
    """One forward pass: the imported checkpoint loads and gives finite logits."""
    import torch

    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids.to(model.device)
    with torch.no_grad():
        logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise ConfigError(f"{key}: the checkpoint loads but gives non-finite logits")
