"""GGUF files: a checkpoint written as a float32 GGUF, llama.cpp's own quantizer, what a file
really holds, and a GGUF dequantized back into a safetensors checkpoint.

- :func:`write_f32_gguf` writes a Llama-family safetensors checkpoint as a float32 GGUF that
  llama.cpp loads (gguf's writer; Q and K rows permuted as llama.cpp's converter does). Its
  tokenizer fields are copied verbatim from the GGUF the base model came from (the embedded
  model, ``source: gguf``); a base from safetensors must have a byte-level BPE tokenizer
  with GPT-2's pre-tokenizer (written as ``pre: gpt-2``), else the job stops and says to
  convert with llama.cpp's ``convert_hf_to_gguf.py`` and give the file as ``source: gguf``.
- :func:`quantize` runs llama.cpp's ``llama_model_quantize`` (llama-cpp-python, built by
  ``make setup-gguf``): its own blocks and its own mixtures for the ``_S``/``_M``/``_L`` types.
- :func:`tensor_types` counts the types a file's tensors really hold: a K-quant needs rows
  that are multiples of 256, so on a model 576 wide most "Q6_K" tensors are Q8_0.
- :func:`dequantize_to_checkpoint` loads a GGUF through transformers (``GgufConfig(dequantize=True)``)
  and saves float32 safetensors, the weights-only simulation the torch path evaluates
  (llama.cpp's CPU matmul also quantizes the activations; the llama.cpp path,
  :mod:`compress_recover.evaluate.evaluate_llamacpp`, runs what a llama.cpp user runs).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

# llama.cpp's file types this pipeline offers (llama_ftype in llama.h), name -> value. The
# i-quants (IQ*) need an importance matrix and are not offered; F16/BF16/F32 are not compressions.
FILE_TYPES = {
    "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12,
    "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18,
}
LLAMA_CPP_INSTALL = ("llama-cpp-python is not installed in this environment: run `make setup-gguf` (builds "
                     "llama.cpp from source once, about 10-15 min on 2 cores, cached in the wheel folder)")
GGUF_NAME = "model.gguf"  # a compressed checkpoint's GGUF file, beside its dequantized safetensors
# A Hugging Face model_type -> the GGUF architecture llama.cpp's converter writes for it.
GGUF_ARCHITECTURE = {"mistral": "llama"}
# Decoder families whose tensors this writer maps (gguf's llama tensor names).
WRITABLE = ("llama",)


class GGUFError(RuntimeError):
    """A GGUF file cannot be written, read or quantized; the message names the file."""


def llama_cpp():
    """The llama_cpp module, or a GGUFError saying how to install it."""
    try:
        import llama_cpp as module
    except ImportError as err:
        raise GGUFError(LLAMA_CPP_INSTALL) from err
    return module


def llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:  # noqa: BLE001 - not installed
        return None


def _permute(weights, n_head: int):
    """llama.cpp's row order for a Q or K projection (its converter's ``permute``)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _copy_tokenizer_fields(writer, source: Path) -> None:
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(source)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def _tokenizer_fields(writer, checkpoint: Path) -> None:
    """Tokenizer fields from a byte-level BPE tokenizer.json (GPT-2's pre-tokenizer)."""
    tok_file = checkpoint / "tokenizer.json"
    if not tok_file.is_file():
        raise GGUFError(f"{checkpoint}: no tokenizer.json to write into the GGUF")
    spec = json.loads(tok_file.read_text())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    pres = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    if model.get("type") != "BPE" or [p.get("type") for p in pres] != ["ByteLevel"] or not pres[0].get("use_regex", True):
        raise GGUFError(f"{tok_file}: the GGUF writer takes byte-level BPE tokenizers with GPT-2's pre-tokenizer "
                        f"(found model {model.get('type')!r}, pre-tokenizer {[p.get('type') for p in pres]}); "
                        "convert the model with llama.cpp's convert_hf_to_gguf.py and give the file as "
                        "models.<name>.source: gguf")
    vocab = dict(model["vocab"])
    added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    vocab.update(added)
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, index in vocab.items():
        tokens[index] = token
    types = [3 if t in added else 1 for t in tokens]  # CONTROL for added special tokens, else NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    config = json.loads((checkpoint / "tokenizer_config.json").read_text()) if (
        checkpoint / "tokenizer_config.json").is_file() else {}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp: GPT-2's regex, as HF ByteLevel
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for name, add in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id),
                      ("unk_token", writer.add_unk_token_id), ("pad_token", writer.add_pad_token_id)):
        token = config.get(name)
        token = token.get("content") if isinstance(token, dict) else token
        if token in vocab:
            add(vocab[token])
    writer.add_add_bos_token(False)  # as lm-eval's HF scorer encodes: no BOS


def write_f32_gguf(checkpoint: str | Path, out_path: str | Path, tokenizer_gguf: str | Path | None = None) -> Path:
    """Write the safetensors checkpoint folder ``checkpoint`` (a Llama-family decoder) as a
    float32 GGUF at ``out_path``. ``tokenizer_gguf``: the GGUF the model came from, whose
    tokenizer fields are copied verbatim (else built from tokenizer.json)."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    checkpoint, out_path = Path(checkpoint), Path(out_path)
    cfg = json.loads((checkpoint / "config.json").read_text())
    if cfg.get("model_type") not in WRITABLE:
        raise GGUFError(f"{checkpoint}: model_type {cfg.get('model_type')!r}: the GGUF writer maps {list(WRITABLE)} "
                        "decoders; convert the model with llama.cpp's convert_hf_to_gguf.py and give the file as "
                        "models.<name>.source: gguf")
    if cfg.get("quantization_config"):
        raise GGUFError(f"{checkpoint}: a quantized checkpoint; a GGUF quant level is made from the uncompressed model")
    scaling = cfg.get("rope_scaling") or {}
    rope_type = scaling.get("rope_type") or scaling.get("type") or (cfg.get("rope_parameters") or {}).get("rope_type")
    if rope_type not in (None, "default"):
        raise GGUFError(f"{checkpoint}: RoPE scaling {rope_type!r}, which this writer does not carry into the GGUF "
                        "(llama.cpp would run unscaled positions); convert the model with llama.cpp's "
                        "convert_hf_to_gguf.py and give the quantized files as checkpoints made elsewhere "
                        "(models.<name>.compressions)")
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    head_dim = cfg.get("head_dim") or hidden // heads
    writer = gguf.GGUFWriter(out_path, arch="llama")
    writer.add_name(cfg.get("_name_or_path") or checkpoint.name)
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta")
                                    or 10000.0))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if tokenizer_gguf is not None:
        _copy_tokenizer_fields(writer, Path(tokenizer_gguf))
    else:
        _tokenizer_fields(writer, checkpoint)
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, layers)
    tensors = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                tensors[key] = f.get_tensor(key).float().numpy()
    tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in tensors
    for key, value in tensors.items():
        if key == "lm_head.weight" and tied:
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFError(f"{checkpoint}: tensor {key!r} has no llama GGUF name")
        if key.endswith("q_proj.weight"):
            value = _permute(value, heads)
        elif key.endswith("k_proj.weight"):
            value = _permute(value, kv_heads)
        writer.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def quantize(source: str | Path, out_path: str | Path, file_type: str, threads: int = 1) -> Path:
    """llama.cpp's quantizer (``llama_model_quantize``): ``source`` (a GGUF) to ``file_type``
    (a :data:`FILE_TYPES` name), with llama.cpp's own per-tensor mixture."""
    if file_type not in FILE_TYPES:
        raise GGUFError(f"GGUF type {file_type!r} is not one of {sorted(FILE_TYPES)}")
    lib = llama_cpp()
    params = lib.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[file_type]
    params.nthread = threads
    params.allow_requantize = True
    code = lib.llama_model_quantize(str(source).encode(), str(out_path).encode(), params)
    if code != 0 or not Path(out_path).is_file():
        raise GGUFError(f"llama.cpp could not quantize {source} to {file_type} (llama_model_quantize returned {code})")
    return Path(out_path)


def tensor_types(path: str | Path) -> dict[str, dict[str, int]]:
    """What a GGUF holds, read from its tensor headers: ``matrices`` (tensors of 2 or more
    dimensions: the weights a level quantizes) and ``all`` (norms too), type -> count."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    matrices = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2)
    every = Counter(t.tensor_type.name for t in reader.tensors)
    return {"matrices": dict(sorted(matrices.items())), "all": dict(sorted(every.items()))}


def describe_types(types: dict[str, int]) -> str:
    """``"181 Q8_0 + 30 Q6_K"``: a level's matrices by type, most frequent first."""
    return " + ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))


def header(path: str | Path) -> dict:
    """A GGUF's architecture, vocabulary size, layer count and width, read from its metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def value(key):
        field = reader.get_field(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    vocab = value(f"{arch}.vocab_size") or (len(tokens.data) if tokens is not None else None)
    return {"architecture": arch, "vocab_size": vocab, "layers": value(f"{arch}.block_count"),
            "hidden_size": value(f"{arch}.embedding_length")}


def gguf_tokens(path: str | Path) -> list[str] | None:
    """A GGUF's token list (None when it has none)."""
    from gguf import GGUFReader

    field = GGUFReader(path).get_field("tokenizer.ggml.tokens")
    return None if field is None else list(field.contents())


def dequantize_into(gguf_path: str | Path, base_dir: str | Path, out_dir: str | Path, dtype: str = "float32"):
    """The GGUF's weights dequantized (transformers, ``GgufConfig(dequantize=True)``) into the
    base checkpoint's own model and config, saved as safetensors in ``out_dir``: the same
    architecture and config as the base, the GGUF's values. Returns the model."""
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    from ..runtime import torch_dtype

    gguf_path = Path(gguf_path)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     quantization_config=GgufConfig(dequantize=True),
                                                     dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch_dtype(dtype), use_safetensors=True)
    found, own = quantized.state_dict(), model.state_dict()
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(k for k in own if k not in found and k not in tied)
    wrong = sorted(k for k in own if k in found and tuple(found[k].shape) != tuple(own[k].shape))
    if missing or wrong:
        raise GGUFError(f"{gguf_path}: its tensors do not fit the base model in {base_dir} (missing: {missing[:5]}, "
                        f"other shapes: {wrong[:5]})")
    with torch.no_grad():
        for key, value in own.items():
            if key in found:
                value.copy_(found[key].to(value.dtype))
    del quantized
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return model


def gguf_details(path: Path, requested: str | None) -> dict:
    """What a GGUF file is, for the manifest: its declared file type, the types its matrices
    really hold, its size and sha256."""
    from ..download.download import gguf_file_type
    from ..io import sha256_file

    types, declared = tensor_types(path), gguf_file_type(path)
    return {"gguf_file": GGUF_NAME, "gguf_type": requested or declared, "declared_type": declared, "tensor_types": types["matrices"],
            "tensor_types_all": types["all"], "tensor_types_text": describe_types(types["matrices"]),
            "gguf_bytes": path.stat().st_size, "gguf_sha256": sha256_file(path),
            "llama_cpp_python": llama_cpp_version()}
