"""Loading a recovered model: a checkpoint and the adapter a recover rule wrote for it.

The adapter's ``manifest.json`` names its method; the method's registered adapter loader
puts it on the model. So evaluation, cost and analysis load every method the same way.
"""

from __future__ import annotations

from pathlib import Path

from ..failures import failure_of
from ..io import read_json, verify_folder
from ..modeling import load_model
from . import RECOVERY


class FailedAdapterError(ValueError):
    """An adapter folder records a training that diverged: it holds no weights to load."""


def _manifest(adapter_dir: str | Path) -> dict:
    manifest = Path(adapter_dir) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{adapter_dir}: no manifest.json; not an adapter folder written by a recover rule")
    return read_json(manifest)


def adapter_failure(adapter_dir: str | Path | None) -> str | None:
    """Why the training of ``adapter_dir`` failed (its manifest's ``failure``, when its
    ``status`` is failed), or None for a trained adapter or no adapter."""
    if adapter_dir is None:
        return None
    return failure_of(_manifest(adapter_dir))


def refuse_failed(adapter_dir: str | Path | None) -> None:
    """Raise FailedAdapterError, naming the folder and the reason, when ``adapter_dir``'s training failed."""
    failure = adapter_failure(adapter_dir)
    if failure is not None:
        raise FailedAdapterError(f"{adapter_dir}: its training failed ({failure}); there is no adapter to load")


def adapter_method(adapter_dir: str | Path) -> str:
    """The recovery method that wrote ``adapter_dir`` (from its manifest)."""
    method = _manifest(adapter_dir).get("method")
    if method not in RECOVERY or method == "none":
        raise ValueError(f"{Path(adapter_dir) / 'manifest.json'}: unknown recovery method {method!r}; "
                         f"known: {RECOVERY.names()}")
    return method


def load_adapter(model, adapter_dir: str | Path):
    """``model`` with the adapter saved in ``adapter_dir`` (its files verified against its
    manifest's hashes), in eval mode. Refuses (FailedAdapterError) a folder whose training failed."""
    refuse_failed(adapter_dir)
    verify_folder(adapter_dir)
    return RECOVERY[adapter_method(adapter_dir)].adapter_loader()(model, adapter_dir)


def load_recovered(checkpoint_dir: str | Path, adapter_dir: str | Path | None, *, device: str,
                   dtype: str = "float32", trust_remote_code: bool = False, weights: str = "kernel"):
    """The compressed model with its recovery adapter applied (none when ``adapter_dir`` is None);
    ``weights`` as in :func:`compress_recover.modeling.load_model`. Refuses a failed adapter
    before loading anything."""
    refuse_failed(adapter_dir)
    model, tokenizer = load_model(checkpoint_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                                  weights=weights)
    if adapter_dir is not None:
        model = load_adapter(model, adapter_dir)
    return model, tokenizer
