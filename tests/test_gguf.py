"""GGUF quant levels made by llama.cpp, compressed checkpoints made elsewhere as compressions,
and llama.cpp's runtime as a second evaluation path.

A tiny Llama 256 wide (MLP 512) so that K-quant blocks (256 columns) fit and the files hold
real K-quant tensors; the 64-wide tiny model of the other tests shows the fallbacks. Every
kind of checkpoint (GGUF, GPTQ, compressed-tensors) is made here from the tiny model, with
no network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compress_recover.compress.compress import run_compression
from compress_recover.compress.gguf_file import (GGUF_NAME, quantize, tensor_types, write_f32_gguf)
from compress_recover.config import build_plan
from compress_recover.registry import ConfigError
from compress_recover.runtime import Runtime

from conftest import _save_tiny, build_tiny_neox

QUESTIONS = [("Question: What is the capital of France?\nAnswer:", c) for c in (" Paris", " Berlin", " Rome")] + [
    ("The chemical symbol of iron is", c) for c in (" Fe", " Ir", " Au")]
RUNTIME = Runtime(device="cpu", threads=2)


def _tiny256(out: Path, seed: int = 0, vocab_extra: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    _save_tiny(LlamaForCausalLM, LlamaConfig, out, seed, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    (out / "manifest.json").write_text(json.dumps({"model": "tiny", "source": "local"}))
    return out


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory) -> Path:
    return _tiny256(tmp_path_factory.mktemp("tiny256") / "base")


@pytest.fixture(scope="module")
def f32_gguf(tiny256, tmp_path_factory) -> Path:
    return write_f32_gguf(tiny256, tmp_path_factory.mktemp("gguf") / "tiny.f32.gguf")


def _torch_scores(checkpoint: Path) -> list[float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    out = []
    for context, continuation in QUESTIONS:
        whole = tok(context + continuation, add_special_tokens=False).input_ids
        n = len(tok(context, add_special_tokens=False).input_ids)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0], -1)
        out.append(sum(logp[i - 1, whole[i]].item() for i in range(n, len(whole))))
    return out


def _llama_scores(gguf: Path, tokenizer_dir: Path):
    from transformers import AutoTokenizer

    from compress_recover.evaluate.evaluate_llamacpp import LlamaCppScorer

    scorer = LlamaCppScorer(gguf, AutoTokenizer.from_pretrained(tokenizer_dir), threads=2)
    scores = [scorer.score(c, x)[0] for c, x in QUESTIONS]
    mismatched = scorer.mismatched
    scorer.close()
    return scores, mismatched


@pytest.mark.slow
def test_the_float32_gguf_scores_as_the_checkpoint_in_llama_cpp(tiny256, f32_gguf):
    """The writer's GGUF (names, Q/K row order, tokenizer) is the same model: llama.cpp's
    log-likelihoods equal torch's to float32 rounding, and its tokens equal the tokenizer's."""
    scores, mismatched = _llama_scores(f32_gguf, tiny256)
    np.testing.assert_allclose(scores, _torch_scores(tiny256), atol=2e-3)
    assert mismatched == 0


@pytest.mark.slow
def test_k_quant_levels_hold_k_quant_tensors_where_rows_allow(f32_gguf, tiny_checkpoint, tmp_path):
    """256-wide rows: the K levels hold K-quant blocks (Q4_K_M mixes Q4_K and Q6_K, as
    llama.cpp's mixture does); 64-wide rows: no K-quant tensor at all (the fallback a
    report must list)."""
    q4km = tensor_types(quantize(f32_gguf, tmp_path / "q4km.gguf", "Q4_K_M"))["matrices"]
    assert q4km.get("Q4_K", 0) > 0 and q4km.get("Q6_K", 0) > 0
    q3km = tensor_types(quantize(f32_gguf, tmp_path / "q3km.gguf", "Q3_K_M"))["matrices"]
    assert q3km.get("Q3_K", 0) > 0
    narrow = write_f32_gguf(tiny_checkpoint, tmp_path / "narrow.f32.gguf")
    q6k = tensor_types(quantize(narrow, tmp_path / "narrow.q6k.gguf", "Q6_K"))["matrices"]
    assert not any(t.endswith("_K") for t in q6k), q6k


@pytest.mark.slow
def test_llama_cpp_path_agrees_with_the_torch_path_at_q8_0(tiny256, tmp_path):
    """The gguf_level compression at Q8_0: its dequantized checkpoint (torch path) and its
    GGUF in llama.cpp (which also quantizes the activations to 8 bits) give each choice a
    log-likelihood within 0.05 nats; at float32 they agree to 2e-3 (test above)."""
    out = tmp_path / "q8"
    manifest = run_compression(model_dir=str(tiny256), out_dir=str(out), method_config={"method": "gguf_level",
                               "type": "Q8_0"}, key="compression.methods[1]", text_dir="", calibration_samples=0,
                               calibration_seq_len=8, runtime=RUNTIME)
    assert manifest["details"]["tensor_types"] == {"Q8_0": 16}
    assert manifest["disk_bytes"] == (out / GGUF_NAME).stat().st_size
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and not config.get("quantization_config")
    scores, mismatched = _llama_scores(out / GGUF_NAME, out)
    torch_scores = _torch_scores(out)
    np.testing.assert_allclose(scores, torch_scores, atol=0.05)
    assert mismatched == 0
    # and the level moved the model: not the float32 scores
    assert not np.allclose(torch_scores, _torch_scores(tiny256), atol=1e-5)


def _gptq_folder(tiny256: Path, text_dir: Path, out: Path) -> Path:
    from compress_recover.compress.compress import copy_tokenizer
    from compress_recover.compress.gptq import compress
    from compress_recover.compress.gptq_config import GPTQConfig
    from transformers import AutoTokenizer

    from compress_recover.tokens import calibration_blocks

    calibration = calibration_blocks(AutoTokenizer.from_pretrained(tiny256), text_dir / "train.jsonl", samples=4,
                                     seq_len=32, seed=0)
    compress(model_dir=str(tiny256), out_dir=out, config=GPTQConfig(bits=4, group_size=32), calibration=calibration,
             device="cpu", seed=0)
    copy_tokenizer(tiny256, out)
    return out


def _compressed_tensors_folder(tiny256: Path, out: Path) -> Path:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny256, dtype=torch.float32)
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="W8A16", ignore=["lm_head"]))
    model.save_pretrained(out, save_compressed=True)
    return out


def _import(tiny256: Path, entry: dict, out: Path) -> dict:
    return run_compression(model_dir=str(tiny256), out_dir=str(out), method_config=entry,
                           key="models.tiny.compressions[0]", text_dir="", calibration_samples=0,
                           calibration_seq_len=8, runtime=RUNTIME)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gguf", "gptq", "compressed-tensors"])
def test_each_kind_of_checkpoint_imports_as_a_compression(kind, tiny256, f32_gguf, text_dir, tmp_path):
    """A GGUF at a K level, a GPTQ folder and a compressed-tensors folder, each made here from
    the tiny model, import as that model's compression: its format and source hash in the
    manifest, the base's tokenizer, and the weights the file holds (the imported checkpoint
    scores as its source does)."""
    from compress_recover.modeling import load_model

    if kind == "gguf":
        source = quantize(f32_gguf, tmp_path / "user.Q4_K_M.gguf", "Q4_K_M")
        entry = {"method": "external", "source": "gguf", "path": str(source)}
    elif kind == "gptq":
        source = _gptq_folder(tiny256, text_dir, tmp_path / "user-gptq")
        entry = {"method": "external", "source": "local", "path": str(source)}
    else:
        source = _compressed_tensors_folder(tiny256, tmp_path / "user-ct")
        entry = {"method": "external", "source": "local", "path": str(source)}
    out = tmp_path / "imported"
    manifest = _import(tiny256, entry, out)
    details = manifest["details"]
    assert details["format"] == {"gguf": "gguf", "gptq": "gptq", "compressed-tensors": "compressed-tensors"}[kind]
    assert details["source_sha256"]
    assert (out / "tokenizer.json").read_bytes() == (tiny256 / "tokenizer.json").read_bytes()
    model, _ = load_model(out, device="cpu", weights="dense")
    ids = torch.tensor([[5, 17, 42, 99, 120]])
    if kind == "gguf":
        assert details["tensor_types"].get("Q4_K", 0) > 0
        reference, _ = _llama_scores(out / GGUF_NAME, out)
        np.testing.assert_allclose(reference, _torch_scores(out), atol=0.1)
    else:
        from transformers import AutoModelForCausalLM

        original = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        with torch.no_grad():
            torch.testing.assert_close(model(ids).logits, original(ids).logits, rtol=0, atol=2e-2)


def _config(base: Path, compressions: list[dict], methods: list[dict] | None = None) -> dict:
    return {"seed": 0, "device": "cpu", "dtype": "float32", "trust_remote_code": False,
            "models": {"tiny": {"source": "local", "path": str(base), "compressions": compressions}},
            "data": {"knowledge_tasks": ["capitals", "currencies"], "perplexity": False, "lm_eval_tasks": [],
                     "task_dirs": [], "text": {"corpus": "gensim_lee", "heldout_fraction": 0.1}},
            "compression": {"methods": methods or [{"method": "none"}]},
            "recovery": {"budget": {"seq_len": 32}, "recover_base": False,
                         "methods": [{"method": "none"}, {"method": "lora", "rank": 2}]},
            "report": {}, "evaluation": {"llamacpp": True}}


@pytest.mark.slow
def test_a_models_own_compressions_run_only_on_it_and_recover_false_runs_no_recovery(tiny256, f32_gguf, tmp_path):
    gguf = quantize(f32_gguf, tmp_path / "mine.Q8_0.gguf", "Q8_0")
    config = _config(tiny256, [{"method": "external", "name": "mine", "source": "gguf", "path": str(gguf),
                                "recover": False}],
                     [{"method": "none"}, {"method": "gguf_level", "type": "Q4_K_M"}])
    config["models"]["other"] = {"source": "local", "path": str(tiny256)}
    plan = build_plan(config)
    cells = plan.cells()
    assert ("tiny", "mine", "none") in cells and not [c for c in cells if c[1] == "mine" and c[2] != "none"]
    assert not [c for c in cells if c[0] == "other" and c[1] == "mine"]
    assert ("other", "gguf-q4_k_m", "lora.seed0") in cells
    assert sorted(plan.gguf_cells()) == [("other", "gguf-q4_k_m"), ("tiny", "gguf-q4_k_m"), ("tiny", "mine")]


@pytest.mark.parametrize("case", ["missing file", "other width", "other vocabulary", "other architecture",
                                  "in compression.methods"])
def test_a_checkpoint_that_is_not_the_models_compression_is_refused_naming_the_key(case, tiny256, f32_gguf,
                                                                                   tmp_path):
    """Refused with the plan, before any job: the key names the entry."""
    key = "models.tiny.compressions[0]"
    if case == "missing file":
        entry, match = {"method": "external", "source": "gguf", "path": str(tmp_path / "none.gguf")}, key + ".path"
    elif case == "other width":
        from conftest import build_tiny_llama

        narrow = write_f32_gguf(build_tiny_llama(tmp_path / "narrow"), tmp_path / "narrow.gguf")
        entry, match = {"method": "external", "source": "gguf", "path": str(narrow)}, key + r".path: .*hidden"
    elif case == "other vocabulary":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(tiny256)
        model.resize_token_embeddings(600)
        bigger = tmp_path / "bigger"
        model.save_pretrained(bigger)
        shutil.copy(tiny256 / "tokenizer.json", bigger)
        entry, match = {"method": "external", "source": "local", "path": str(bigger)}, key + r".path: .*vocab"
    elif case == "other architecture":
        neox = build_tiny_neox(tmp_path / "neox")
        entry, match = {"method": "external", "source": "local", "path": str(neox)}, key + r".path: .*model_type"
    else:
        config = _config(tiny256, [], [{"method": "none"}, {"method": "external", "source": "gguf",
                                                              "path": str(f32_gguf)}])
        with pytest.raises(ConfigError, match=r"compression.methods\[1\]: .*models.<name>.compressions"):
            build_plan(config)
        return
    with pytest.raises(ConfigError, match=match.replace("[", r"\[").replace("]", r"\]")
                       if case == "missing file" else match.replace("[0]", r"\[0\]")):
        build_plan(_config(tiny256, [entry]))


def test_a_gguf_whose_tokens_differ_is_refused_by_the_import(tiny256, f32_gguf, tmp_path):
    """The same sizes but another token list (a tokenizer of the same length, reordered):
    the header passes, the token-by-token check refuses it, naming the key."""
    base = tmp_path / "base"
    shutil.copytree(tiny256, base)
    spec = json.loads((base / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (base / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=r"models.tiny.compressions\[0\].path: .*vocabulary differs"):
        _import(base, {"method": "external", "source": "gguf", "path": str(f32_gguf)}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _samples(path: Path, rows: list[tuple[int, list[float]]]) -> str:
    """A samples file: per question (target, log-likelihood of each choice)."""
    with path.open("w") as fh:
        for i, (target, lls) in enumerate(rows):
            top = int(np.argmax(lls))
            fh.write(json.dumps({"task": "capitals", "doc_id": i, "target": target, "doc": {"id": f"q{i}"},
                                 "filtered_resps": [[x, False] for x in lls], "acc": float(top == target)}) + "\n")
    return str(path)


def test_levels_count_flips_both_ways_and_find_the_lost_questions_by_kl(tmp_path):
    """A known truth: of 40 questions the model gets 30 right; the level loses 6 (moved far,
    KL large), gains 2, and moves the kept ones a little. The llama.cpp path differs from the
    torch path on exactly 3 questions."""
    import pandas as pd

    from compress_recover.aggregate.levels import auc, run_levels

    rng = np.random.default_rng(0)
    base, level, other = [], [], []
    for i in range(40):
        right = i < 30
        b = [2.0, 0.0, -1.0] if right else [0.0, 2.0, -1.0]
        if i < 6:  # lost: the level moves far to a wrong choice
            m = [0.0, 3.0, -1.0]
        elif 30 <= i < 32:  # gained
            m = [2.0, 0.0, -1.0]
        else:  # kept (or still wrong): a small move
            m = [x + rng.normal(0, 0.05) for x in b]
        o = list(m)
        if i in (10, 11, 12):  # llama.cpp flips these
            o = [o[0] - 5, o[1], o[2]]
        base.append((0, b))
        level.append((0, m))
        other.append((0, o))
    cells = [{"model": "m", "compression": "q", "task": "capitals", "checkpoint": "",
              "samples": _samples(tmp_path / "q.jsonl", level), "base_samples": _samples(tmp_path / "b.jsonl", base),
              "llamacpp_samples": _samples(tmp_path / "o.jsonl", other)}]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"disk_bytes": 10, "details": {"gguf_type": "Q4_K_M", "tensor_types_text": "x"}}))
    run_levels(cells=cells, manifests={("m", "q"): str(manifest)}, llamacpp_results={}, out_dir=str(tmp_path / "out"),
               split=None)
    levels = pd.read_csv(tmp_path / "out" / "levels.csv").iloc[0]
    assert (levels.lost, levels.gained, levels.questions) == (6, 2, 40)
    assert levels.accuracy_base == 30 / 40 and levels.accuracy == 26 / 40
    assert levels.kl_auc_lost == 1.0 and levels.n_lost == 6
    assert levels.path_flips == 3 and levels.path_same_top == 37 / 40
    assert auc([1.0, 2.0], [0.5, 3.0]) == 0.5 and auc([3.0], [1.0, 2.0]) == 1.0


def test_the_explorer_puts_a_models_levels_side_by_side():
    """One view per model of its compressions evaluated as they are (a ladder): a question
    lost at Q3_K_M and kept at Q8_0 is 'lost' with Q3_K_M as where; a compression with a
    remedy keeps its own view and is not a level."""
    import pandas as pd

    from compress_recover.aggregate.explorer import ladder_views

    rows = []
    truth = {"q1": {"none": 1, "q8": 1, "q3": 0}, "q2": {"none": 1, "q8": 1, "q3": 1}, "q3": {"none": 0, "q8": 0, "q3": 1}}
    for doc, right in truth.items():
        for comp, r in right.items():
            rows.append({"model": "m", "compression": comp, "recovery": "none", "task": "t", "doc_id": doc, "right": r})
        rows.append({"model": "m", "compression": "gptq", "recovery": "none", "task": "t", "doc_id": doc, "right": 0})
        rows.append({"model": "m", "compression": "gptq", "recovery": "lora", "task": "t", "doc_id": doc, "right": 1})
    statuses = {}
    (view,) = ladder_views(pd.DataFrame(rows), statuses)
    assert view["key"] == "m/:levels" and view["recoveries"] == ["q8", "q3"]
    assert view["columns"] == ["m/none/none", "m/q8/none", "m/q3/none"]
    assert statuses[("m", "t", "q1")]["m/:levels"] == ["lost", [], ["q3"]]
    assert statuses[("m", "t", "q2")]["m/:levels"] == ["kept", [], []]
    assert statuses[("m", "t", "q3")]["m/:levels"] == ["gained", ["q3"], []]


@pytest.mark.slow
def test_the_llama_cpp_path_with_demonstrations_is_refused_naming_both_keys(tiny256):
    """The llama.cpp path scores zero-shot: beside a few-shot torch path its flips would mix
    the demonstrations with the runtime."""
    config = _config(tiny256, [], [{"method": "none"}, {"method": "gguf_level", "type": "Q8_0"}])
    config["evaluation"]["num_fewshot"] = 2
    with pytest.raises(ConfigError, match=r"evaluation.llamacpp: .*evaluation.num_fewshot"):
        build_plan(config)
    config["evaluation"]["llamacpp"] = False
    build_plan(config)


def test_the_writer_refuses_rope_scaling_it_cannot_carry(tiny256, tmp_path):
    from compress_recover.compress.gguf_file import GGUFError

    scaled = tmp_path / "scaled"
    shutil.copytree(tiny256, scaled)
    cfg = json.loads((scaled / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    (scaled / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GGUFError, match="RoPE scaling 'linear'"):
        write_f32_gguf(scaled, tmp_path / "scaled.gguf")


def test_a_mistral_models_gguf_is_llama_to_llama_cpp(f32_gguf):
    """llama.cpp's converter writes Mistral as architecture llama: not a mismatch."""
    from compress_recover.compress.external_config import CheckpointConfig
    from compress_recover.shape import ModelShape

    shape = ModelShape(model_type="mistral", hidden=256, layers=2, vocab=None)
    CheckpointConfig(source="gguf", path=str(f32_gguf)).check_shape("models.m.compressions[0]", "m", shape)
    with pytest.raises(ConfigError, match=r"model_type 'llama', model 'm' has 'qwen2'"):
        CheckpointConfig(source="gguf", path=str(f32_gguf)).check_shape(
            "models.m.compressions[0]", "m", ModelShape(model_type="qwen2", hidden=256, layers=2))
