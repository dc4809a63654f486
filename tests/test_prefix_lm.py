"""Shared-prefix scoring gives stock HFLM's log-likelihoods, for every kind of model we evaluate."""

from __future__ import annotations

import pytest
import torch

from compress_recover.data.knowledge_task import build_knowledge_task
from compress_recover.data.perplexity_task import build_perplexity_task
from compress_recover.evaluate.prefix_lm import (PrefixScoringLM, common_prefix_length, context_batches,
                                                  contiguous_head_input)
from compress_recover.runtime import Runtime
from conftest import RECOVERY_EXAMPLES

CPU = Runtime(device="cpu", seed=0, threads=1)
TOLERANCE = 1e-4


@pytest.mark.slow
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


@pytest.mark.slow
def test_every_variant_is_scored_with_shared_prefixes(models):
    """The evaluate job scores every model, IDP included, with shared-prefix scoring."""
    from compress_recover.evaluate.evaluate import scoring_lm
    from compress_recover.recover.load import load_recovered

    assert set(models) == {"plain", "gptq", *RECOVERY_EXAMPLES}
    for checkpoint, adapter in models.values():
        model, tokenizer = load_recovered(checkpoint, adapter, device="cpu")
        assert isinstance(scoring_lm(model, tokenizer=tokenizer, batch_size=4, device="cpu"), PrefixScoringLM)


def _idp_reference(idp, ctx: list[int], cont: list[int], prompt: int | None = None) -> tuple[float, int]:
    """(log-likelihood of ``cont`` after ``ctx``, prompt): the prompt chosen from the context
    alone (or forced), then one full forward pass of context + continuation with it forced."""
    n = idp.prompts.shape[1]
    with torch.no_grad():
        if prompt is None:
            prompt = int(idp(input_ids=torch.tensor([ctx])).selected[0])
        logits = idp(input_ids=torch.tensor([ctx + cont]), selected=torch.tensor([prompt])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    total = sum(float(logp[n + len(ctx) + k - 1, tok]) for k, tok in enumerate(cont))
    return total, prompt


def _tokens(lm, instance):
    """(context, continuation) token ids as lm-eval encodes the request."""
    return lm._encode_pair(*instance.args)


def _assert_causal(lm, idp, instances) -> list[tuple]:
    """Each choice's score equals one forward pass under the prompt its context alone chose,
    recorded as chosen, one prompt per question; returns (context, continuation, value,
    prompt, record) per instance."""
    checked, chosen_by_context = [], {}
    for instance, (value, _) in zip(instances, lm.loglikelihood(instances), strict=True):
        ctx, cont = _tokens(lm, instance)
        expected, prompt = _idp_reference(idp, ctx, cont)
        assert abs(value - expected) < TOLERANCE
        record = lm.choices[instance.args]
        assert record["prompt"] == prompt
        chosen_by_context.setdefault(instance.args[0], set()).add(prompt)
        checked.append((ctx, cont, value, prompt, record))
    assert all(len(p) == 1 for p in chosen_by_context.values())  # one prompt per question
    return checked


@pytest.mark.parametrize("ablation", [False, True])
def test_idp_scores_each_choice_under_the_prompt_its_context_chose(models, requests, ablation):
    """Causal IDP: the prompt comes from the context alone (never a choice's tokens), is the
    same for every choice of a question, and the score equals one forward pass with it."""
    checkpoint, adapter = models["idp"]
    lm = _lm(PrefixScoringLM, checkpoint, adapter, 8)
    lm.pool_ablation = ablation
    idp = lm.model
    pool = idp.prompts.shape[0]
    for ctx, cont, value, prompt, record in _assert_causal(lm, idp, requests["capitals"][:40]):
        if ablation:
            assert len(record["loglikelihoods"]) == pool
            assert record["loglikelihoods"][prompt] == pytest.approx(value, abs=1e-6)
            for forced in range(pool):
                assert abs(record["loglikelihoods"][forced] - _idp_reference(idp, ctx, cont, forced)[0]) < TOLERANCE
        else:
            assert record["loglikelihoods"] is None


def test_idp_choice_score_ignores_the_other_choices(models, requests):
    """Changing one choice's tokens changes no other choice's score."""
    from lm_eval.api.instance import Instance

    checkpoint, adapter = models["idp"]
    lm = _lm(PrefixScoringLM, checkpoint, adapter, 8)
    first = requests["capitals"][:4]  # one question's four choices
    assert len({i.args[0] for i in first}) == 1
    altered = [*first[:3], Instance("loglikelihood", first[3].doc, (first[3].args[0], " Atlantis Zzyzx"), 3)]
    a, b = lm.loglikelihood(first), lm.loglikelihood(altered)
    assert a[:3] == b[:3] and a[3] != b[3]


def test_idp_scoring_chooses_the_prompt_generation_chooses(models, requests):
    checkpoint, adapter = models["idp"]
    lm = _lm(PrefixScoringLM, checkpoint, adapter, 8)
    idp = lm.model
    instances = requests["capitals"][:40:4]
    lm.loglikelihood(instances)
    seen = []
    hook = idp.register_forward_hook(lambda mod, args, out: seen.append(out.selected))
    try:
        for instance in instances:
            ctx, _ = _tokens(lm, instance)
            idp.generate(torch.tensor([ctx]), max_new_tokens=2, eos_token_id=[])
    finally:
        hook.remove()
    assert [int(s[0]) for s in seen] == [lm.choices[i.args]["prompt"] for i in instances]


def test_idp_rolling_chooses_from_each_window_context(models, requests):
    """Perplexity: lm-eval's rolling windows are (context, continuation) requests; the prompt
    is chosen from each window's context (the first window's is the start-of-text token)."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    checkpoint, adapter = models["idp"]
    lm = _lm(PrefixScoringLM, checkpoint, adapter, 1)
    instances = requests["heldout_ppl"][:2]
    got = lm.loglikelihood_rolling(instances)
    for instance, value in zip(instances, got, strict=True):
        tokens = lm.tok_encode(instance.args[0])
        windows = map(make_disjoint_window, get_rolling_token_windows(
            token_list=tokens, prefix_token=lm.prefix_token_id, max_seq_len=lm.max_length, context_len=1))
        expected = sum(_idp_reference(lm.model, list(ctx), list(cont))[0] for ctx, cont in windows)
        assert abs(value - expected) < TOLERANCE * 10


def test_annotated_samples_carry_the_choice_and_the_ablation():
    from compress_recover.evaluate.evaluate import annotate_choices

    samples = {"t": [{"doc_id": 0, "arguments": [["Q?", " a"], ["Q?", " b"]]}, {"doc_id": 1, "arguments": [["R?", " c"]]}]}
    choices = {("Q?", " a"): {"prompt": 1, "loglikelihoods": [-1.0, -2.0]},
               ("Q?", " b"): {"prompt": 1, "loglikelihoods": [-3.0, -4.0]}}
    assert annotate_choices(samples, choices, "idp_prompt") == 1
    row = samples["t"][0]
    assert row["idp_prompt"] == 1 and row["idp_prompt_loglikelihoods"] == [[-1.0, -3.0], [-2.0, -4.0]]
    assert "idp_prompt" not in samples["t"][1]
    choices[("Q?", " b")]["prompt"] = 0
    with pytest.raises(RuntimeError, match="different prompts"):
        annotate_choices(samples, choices, "idp_prompt")


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


@pytest.mark.parametrize("routing", ["hard", "shard", "soft", "curated", "gumbel"])
def test_the_choice_stays_causal_for_every_routing_mode_with_a_centred_router(models, requests, routing):
    """Inference is the same argmax for every mode; a centred router (curated, gumbel) shifts
    the scores by its offsets, and the choice still comes from the context alone."""
    import dataclasses

    from compress_recover.recover.load import load_recovered

    checkpoint, adapter = models["idp"]
    idp, tokenizer = load_recovered(checkpoint, adapter, device="cpu")
    pool = idp.prompts.shape[0]
    idp.idp_config = dataclasses.replace(idp.idp_config, routing=routing, pool_size=pool,
                                         sources=("corpus", "generated")[:pool] if routing == "curated"
                                         else idp.idp_config.sources)
    with torch.no_grad():
        idp.score_offset.copy_(torch.linspace(-0.3, 0.3, pool))  # a router centred elsewhere
    lm = PrefixScoringLM(pretrained=idp, tokenizer=tokenizer, batch_size=8, device="cpu")
    lm.pool_ablation = True
    _assert_causal(lm, idp, requests["capitals"][:24])


def _pool_whose_choice_the_answer_would_change(idp, ctx: list[int], cont: list[int]) -> tuple[int, int]:
    """Centre ``idp``'s router (its ``score_offset``) so that the prompt chosen from ``ctx``
    alone differs from the one chosen from ``ctx + cont``: with d the change the answer's
    tokens make to the router's raw logits, prompt i (lowest d) wins on the question by
    c = (d_j - d_i) / 2 and prompt j (highest d) on question + answer by the same c; the rest
    of the pool never wins. Returns (question-only choice, question + answer choice)."""
    with torch.no_grad():
        idp.score_offset.zero_()
        alone = idp(input_ids=torch.tensor([ctx])).scores[0]
        with_answer = idp(input_ids=torch.tensor([ctx + cont])).scores[0]
        d = with_answer - alone
        i, j = int(d.argmin()), int(d.argmax())
        c = float(d[j] - d[i]) / 2
        assert c > 1e-3, d  # a margin float noise cannot flip
        wanted = torch.full_like(alone, -10.0)
        wanted[i], wanted[j] = c, 0.0
        idp.score_offset.copy_(alone - wanted)
        question_only = int(idp(input_ids=torch.tensor([ctx])).selected[0])
        question_and_answer = int(idp(input_ids=torch.tensor([ctx + cont])).selected[0])
    return question_only, question_and_answer


def test_idp_scoring_chooses_from_the_question_where_the_answer_would_choose_another_prompt(tiny_checkpoint):
    """The case that tells a causal scorer from one that reads the answer: a pool whose
    choice from question + answer differs from its choice from the question alone (made so
    by centring its router, :func:`_pool_whose_choice_the_answer_would_change`). The
    evaluation records and scores under the question-only choice. A scorer whose choice
    also reads the answer (a whole question + answer pass, as stock HFLM runs it, or the
    prefill given the answer) records and scores under the other prompt and fails here;
    on a pool whose two choices agree, the other tests cannot tell."""
    from lm_eval.api.instance import Instance

    from compress_recover.modeling import load_model
    from compress_recover.recover.idp import IDPModel
    from compress_recover.recover.idp_config import IDPConfig

    base, tokenizer = load_model(tiny_checkpoint, device="cpu")
    with torch.no_grad():
        # a random tiny model attends almost evenly, so one answer token moves the prompts'
        # scores by ~1e-4; sharper queries in the selection layer give a margin of ~1e-2
        base.model.layers[0].self_attn.q_proj.weight.mul_(30)
    torch.manual_seed(0)
    prompts = torch.randn(3, 2, base.config.hidden_size)
    idp = IDPModel(base, prompts, IDPConfig(pool_size=3, num_virtual_tokens=2, routing="gumbel")).eval()
    lm = PrefixScoringLM(pretrained=idp, tokenizer=tokenizer, batch_size=4, device="cpu")
    question, answer = "Question: What is the capital city of France?\nAnswer:", " Paris"
    ctx, cont = _tokens(lm, Instance("loglikelihood", {}, (question, answer), 0))
    question_only, question_and_answer = _pool_whose_choice_the_answer_would_change(idp, ctx, cont)
    assert question_only != question_and_answer
    # the answer first: a scorer that reads a question's first continuation reads it
    instances = [Instance("loglikelihood", {}, (question, c), k) for k, c in enumerate([answer, " Tokyo", " Fe"])]
    lm.pool_ablation = False
    (value, _), *_ = lm.loglikelihood(instances)
    assert lm.choices[(question, answer)]["prompt"] == question_only
    assert {lm.choices[i.args]["prompt"] for i in instances} == {question_only}
    assert abs(value - _idp_reference(idp, ctx, cont, question_only)[0]) < TOLERANCE
    assert abs(value - _idp_reference(idp, ctx, cont, question_and_answer)[0]) > 10 * TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "lora", "prompt_tuning"])
def test_the_output_layer_runs_one_matrix_product_for_a_frozen_peft_model(variant, models, requests):
    """The last position's hidden states reach the output layer as one contiguous matrix, so
    its product is one mm, never a batched product over a copy of the output matrix per
    context (what torch's matmul ran for a PEFT model's frozen weights: 3x slower in bfloat16)."""
    from torch.profiler import profile

    checkpoint, adapter = models[variant]
    lm = _lm(PrefixScoringLM, checkpoint, adapter, 8)
    head = lm.model.get_output_embeddings()
    vocab = head.weight.shape[0]
    assert not head.weight.requires_grad or variant == "plain"
    with profile(record_shapes=True) as prof:
        lm.loglikelihood(requests["capitals"][:40])
    batched_heads = [e for e in prof.events() if e.name == "aten::bmm"
                     and any(len(s) == 3 and s[-1] == vocab for s in e.input_shapes)]
    assert batched_heads == []
    contiguous_head_input(lm.model)  # installing it again adds no second hook
    assert len(head._forward_pre_hooks) == 1
