"""Shared-prefix scoring gives stock HFLM's log-likelihoods, for every kind of model we evaluate."""

from __future__ import annotations

import pytest
import torch

from compress_recover.data.knowledge_task import build_knowledge_task
from compress_recover.data.perplexity_task import build_perplexity_task
from compress_recover.evaluate.prefix_lm import PrefixScoringLM, common_prefix_length, context_batches
from compress_recover.runtime import Runtime
from conftest import RECOVERY_EXAMPLES

CPU = Runtime(device="cpu", seed=0, threads=1)
TOLERANCE = 1e-4


def test_contexts_are_batched_by_shared_prefix_and_length():
    assert common_prefix_length([(1, 2, 7, 7), (1, 2, 9)]) == 2
    assert common_prefix_length([(1, 2, 9), (1, 2, 9)]) == 2  # the last token of a context always runs
    assert common_prefix_length([(1, 5), (3, 4)]) == 0 and common_prefix_length([(4,)]) == 0
    # two templates, questions of two lengths each, interleaved in sorted order
    a = [(7, 7, 7, 1, s) for s in range(10, 16)] + [(7, 7, 7, 1, s, s) for s in range(20, 26)]
    b = [(7, 7, 8, 2, s) for s in range(10, 16)] + [(7, 7, 8, 2, s, s) for s in range(20, 26)]
    contexts = {c: [i] for i, c in enumerate(a + b)}
    batches = context_batches(contexts, 6)
    assert sorted(c for batch in batches for c in batch) == sorted(contexts)
    assert all(len(batch) <= 6 for batch in batches)
    # each batch holds one template, and questions of one length: nothing shared is run twice
    # per batch, nothing padded
    assert all(common_prefix_length(batch) >= 4 and len(set(map(len, batch))) == 1 for batch in batches)
    # contexts that part one at a time (a chain) are batched without deep recursion
    chain = {(0,) * k + (1,): [k] for k in range(1, 1100)}  # deeper than Python's recursion limit
    batches = context_batches(chain, 32)
    assert sorted(c for batch in batches for c in batch) == sorted(chain) and max(map(len, batches)) <= 32


@pytest.fixture(scope="module")
def requests(tiny_checkpoint, text_dir, tmp_path_factory):
    """lm-eval's own requests: two knowledge tasks (multiple choice) and held-out perplexity."""
    from lm_eval.tasks import TaskManager, get_task_dict

    root = tmp_path_factory.mktemp("tasks")
    for task in ("capitals", "element_symbol"):
        build_knowledge_task(task=task, out_dir=str(root / task), num_choices=4, seed=0, max_questions=25)
    build_perplexity_task(text_dir=str(text_dir), out_dir=str(root / "heldout_ppl"))
    out = {}
    for task in ("capitals", "element_symbol", "heldout_ppl"):
        (obj,) = get_task_dict([task], TaskManager(include_path=str(root / task), include_defaults=False)).values()
        obj.build_all_requests(rank=0, world_size=1)
        out[task] = obj.instances
    return out


@pytest.fixture(scope="module")
def models(tiny_checkpoint, text_dir, tmp_path_factory):
    """Model variants by name: plain, GPTQ (the quantized kernel), and every recovery method."""
    from compress_recover.compress.compress import run_compression
    from compress_recover.recover.recover import run_recovery

    root = tmp_path_factory.mktemp("variants")
    gptq = root / "gptq"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(gptq), method_config={"method": "gptq", "bits": 4,
                    "group_size": 32}, key="k", text_dir=str(text_dir), calibration_samples=4,
                    calibration_seq_len=32, runtime=CPU)
    variants = {"plain": (tiny_checkpoint, None), "gptq": (gptq, None)}
    for method, raw in RECOVERY_EXAMPLES.items():
        run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(root / method), method_config=raw, key="k",
                     text_dir=str(text_dir), steps=3, batch_size=2, seq_len=16, runtime=CPU)
        variants[method] = (tiny_checkpoint, root / method)
    return variants


def _lm(cls, checkpoint, adapter, batch_size):
    from compress_recover.recover.load import load_recovered

    model, tokenizer = load_recovered(checkpoint, adapter, device="cpu")
    return cls(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")


def _cacheable(models):
    """The variants whose logits at a position depend only on the tokens before it."""
    from compress_recover.recover.load import load_recovered

    return [v for v, (c, a) in models.items()
            if not getattr(load_recovered(c, a, device="cpu")[0], "needs_padding_mask", False)]


def test_every_variant_but_the_whole_input_readers_is_scored_with_shared_prefixes(models, requests):
    """The evaluate job scores a model that reads every input token with stock HFLM and its
    padding mask; shared-prefix scoring refuses such a model rather than score it wrong."""
    from lm_eval.models.huggingface import HFLM

    from compress_recover.evaluate.evaluate import scoring_lm
    from compress_recover.recover.load import load_recovered

    cacheable = _cacheable(models)
    assert {"plain", "gptq", "lora", "prompt_tuning"} <= set(cacheable)
    for variant, (checkpoint, adapter) in models.items():
        model, tokenizer = load_recovered(checkpoint, adapter, device="cpu")
        with scoring_lm(model, tokenizer=tokenizer, batch_size=4, device="cpu") as lm:
            assert isinstance(lm, PrefixScoringLM) == (variant in cacheable), variant
            assert isinstance(lm, HFLM)
        if variant not in cacheable:
            ours = PrefixScoringLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
            with pytest.raises(TypeError, match="needs_padding_mask"):
                ours.loglikelihood(requests["capitals"][:4])


@pytest.mark.parametrize("variant", ["plain", "gptq", "lora", "prompt_tuning"])
def test_shared_prefix_log_likelihoods_equal_stock_hflm(variant, models, requests):
    from lm_eval.models.huggingface import HFLM

    torch.manual_seed(0)
    checkpoint, adapter = models[variant]
    stock, ours = _lm(HFLM, checkpoint, adapter, 8), _lm(PrefixScoringLM, checkpoint, adapter, 8)
    for task in ("capitals", "element_symbol"):
        instances = requests[task]
        expected, got = stock.loglikelihood(instances), ours.loglikelihood(instances)
        assert len(got) == len(instances) > 50
        assert [g for _, g in got] == [g for _, g in expected]
        assert max(abs(a - b) for (a, _), (b, _) in zip(got, expected, strict=True)) < TOLERANCE
        # the choices are told apart: not all equal, so the comparison has teeth
        assert len({round(a, 3) for a, _ in got}) > len(instances) // 2


@pytest.mark.parametrize("variant", ["plain", "prompt_tuning"])
def test_shared_prefix_rolling_log_likelihoods_equal_stock_hflm(variant, models, requests):
    from lm_eval.models.huggingface import HFLM

    checkpoint, adapter = models[variant]
    stock, ours = _lm(HFLM, checkpoint, adapter, 1), _lm(PrefixScoringLM, checkpoint, adapter, 1)
    instances = requests["heldout_ppl"][:4]
    expected, got = stock.loglikelihood_rolling(instances), ours.loglikelihood_rolling(instances)
    assert len(got) == len(instances) and all(v < 0 for v in got)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < TOLERANCE * 10  # sums over many tokens
