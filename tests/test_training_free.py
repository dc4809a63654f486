"""The training-free remedies: EoRA (a low-rank correction of the compression residual,
GPTQModel's maths) and few-shot demonstrations (lm-eval's prompt building, dev questions only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compress_recover.compress.compress import run_compression
from compress_recover.compress.pruning_masks import sparsity_of
from compress_recover.io import read_json, read_jsonl
from compress_recover.modeling import load_model
from compress_recover.recover import RECOVERY
from compress_recover.recover.eora import covariances, eora_factors, target_layers
from compress_recover.recover.load import load_recovered
from compress_recover.recover.compute import run_compute
from compress_recover.registry import ConfigError
from compress_recover.runtime import Runtime
from compress_recover.tokens import calibration_blocks
from conftest import TRAINING_FREE_EXAMPLES

RUNTIME = Runtime(device="cpu", threads=2)
COMPRESSIONS = {"gptq": {"method": "gptq", "bits": 3, "group_size": 32}, "wanda": {"method": "wanda", "sparsity": 0.5}}
CALIBRATION = {"samples": 16, "seq_len": 32}


@pytest.fixture(scope="module", params=sorted(COMPRESSIONS))
def compressed(request, tiny_checkpoint, text_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "checkpoint"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out), method_config=COMPRESSIONS[request.param],
                    key="compression.methods[1]", text_dir=str(text_dir),
                    calibration_samples=CALIBRATION["samples"], calibration_seq_len=CALIBRATION["seq_len"],
                    runtime=RUNTIME)
    return request.param, out


def _eora(checkpoint, base, text_dir, out, **config):
    raw = {**TRAINING_FREE_EXAMPLES["eora"], **config}
    return run_compute(checkpoint_dir=str(checkpoint), out_dir=str(out), method_config=raw,
                       key="recovery.methods[1]", text_dir=str(text_dir), runtime=RUNTIME, base_dir=str(base))


def _setup(compressed_dir, base_dir, text_dir, config):
    model, tok = load_model(compressed_dir, device="cpu", weights="dense")
    base, _ = load_model(base_dir, device="cpu", weights="dense")
    blocks = calibration_blocks(tok, Path(text_dir) / "train.jsonl", seed=0, **CALIBRATION)
    layers = target_layers(model, RECOVERY.parse(config, "k"))
    covs = covariances(model, layers, blocks, "cpu")
    residuals = {n: dict(base.named_modules())[n].weight.detach().float() - m.weight.detach().float()
                 for n, m in layers.items()}
    return model, base, blocks, layers, covs, residuals


def _inputs(model, name, blocks):
    """The calibration inputs of layer ``name`` (rows: tokens)."""
    seen = []
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.append(i[0].reshape(-1, i[0].shape[-1])))
    with torch.no_grad():
        for block in blocks:
            model(input_ids=block.unsqueeze(0))
    handle.remove()
    return torch.cat(seen)


@pytest.mark.slow
def test_eora_lowers_every_layers_output_error_on_the_calibration_inputs(compressed, tiny_checkpoint, text_dir):
    kind, checkpoint = compressed
    model, base, blocks, layers, covs, residuals = _setup(checkpoint, tiny_checkpoint, text_dir,
                                                          TRAINING_FREE_EXAMPLES["eora"])
    factors, errors = eora_factors(residuals, covs, rank=4, device="cpu")
    for name, (a, b) in factors.items():
        x = _inputs(model, name, blocks)
        w, w_c = dict(base.named_modules())[name].weight, layers[name].weight
        before = (x @ (w - w_c).T).norm()
        after = (x @ (w - w_c - b @ a).T).norm()
        assert after < before, (kind, name, float(before), float(after))
        assert errors[name]["after"] < errors[name]["before"]
        assert a.shape == (4, w.shape[1]) and b.shape == (w.shape[0], 4)


@pytest.mark.slow
def test_eora_at_full_rank_reproduces_the_uncompressed_layers_outputs(compressed, tiny_checkpoint, text_dir):
    kind, checkpoint = compressed
    model, base, blocks, layers, covs, residuals = _setup(checkpoint, tiny_checkpoint, text_dir,
                                                          TRAINING_FREE_EXAMPLES["eora"])
    for name, delta in residuals.items():
        full = min(delta.shape)
        (a, b), = eora_factors({name: delta}, {name: covs[name]}, rank=full, device="cpu")[0].values()
        x = _inputs(model, name, blocks)
        corrected = x @ (layers[name].weight + b @ a).T
        uncompressed = x @ dict(base.named_modules())[name].weight.T
        torch.testing.assert_close(corrected, uncompressed, atol=2e-4, rtol=1e-3, msg=f"{kind} {name}")


@pytest.mark.slow
def test_eora_run_saves_a_peft_lora_adapter_that_lowers_the_loss_and_keeps_pruned_weights_sparse(
        compressed, tiny_checkpoint, text_dir, tmp_path):
    kind, checkpoint = compressed
    weights_before = {f.name: f.read_bytes() for f in checkpoint.glob("*.safetensors")}
    out = tmp_path / "eora"
    manifest = _eora(checkpoint, tiny_checkpoint, text_dir, out)
    assert manifest["trained"] is False and manifest["status"] == "ok"
    assert manifest["details"]["calibration_output_error_ratio"] < 1
    calibration = read_json(checkpoint / "manifest.json")["calibration"]
    assert {k: manifest["details"]["calibration"][k] for k in ("samples", "seq_len", "seed")} == \
        {k: calibration[k] for k in ("samples", "seq_len", "seed")}
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4 and adapter["lora_alpha"] == 4
    # the checkpoint is untouched; the adapter is unmerged, so a pruned model stays sparse
    assert {f.name: f.read_bytes() for f in checkpoint.glob("*.safetensors")} == weights_before
    recovered, _ = load_recovered(checkpoint, out, device="cpu", weights="dense")
    if kind == "wanda":
        assert manifest["merge"]["merge_breaks_sparsity"] is True
        for name, layer in target_layers(load_model(checkpoint, device="cpu")[0],
                                         RECOVERY.parse(TRAINING_FREE_EXAMPLES["eora"], "k")).items():
            peft_layer = recovered.base_model.model.get_submodule(name)
            assert sparsity_of(peft_layer.base_layer.weight) == pytest.approx(0.5, abs=0.01)
            assert sparsity_of(layer.weight) == pytest.approx(0.5, abs=0.01)


def test_eora_refuses_a_rank_above_a_layers_width_and_an_unknown_module(tiny_checkpoint):
    model, _ = load_model(tiny_checkpoint, device="cpu")
    with pytest.raises(ConfigError, match=r"recovery.methods\[4\].rank: 65 exceeds"):
        target_layers(model, RECOVERY.parse({"method": "eora", "rank": 65}, "k"), "recovery.methods[4]")
    with pytest.raises(ConfigError, match=r"recovery.methods\[4\].target_modules: \['no_such_proj'\]"):
        target_layers(model, RECOVERY.parse({"method": "eora", "target_modules": ["no_such_proj"]}, "k"),
                      "recovery.methods[4]")


def test_eora_on_the_uncompressed_model_is_the_model_itself(tiny_checkpoint, text_dir):
    model, base, blocks, layers, covs, residuals = _setup(tiny_checkpoint, tiny_checkpoint, text_dir,
                                                          TRAINING_FREE_EXAMPLES["eora"])
    factors, _ = eora_factors(residuals, covs, rank=4, device="cpu")
    assert all(float((b @ a).abs().max()) == 0.0 for a, b in factors.values())
    assert RECOVERY["eora"].config_cls.runs_on_base is False


def _pruned_copy(checkpoint, out, targets):
    """A compressed checkpoint made here, independent of the compression code: ``checkpoint``
    with every ``targets`` layer magnitude-pruned to half its weights, saved with a manifest
    that records no calibration (so EoRA takes the config's calibration settings)."""
    from compress_recover.io import write_manifest

    model, tok = load_model(checkpoint, device="cpu")
    with torch.no_grad():
        for name, layer in model.named_modules():
            if isinstance(layer, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets:
                cut = layer.weight.abs().flatten().kthvalue(layer.weight.numel() // 2).values
                layer.weight[layer.weight.abs() <= cut] = 0.0
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    write_manifest(out, {"stage": "test-pruned"})
    return out


@pytest.mark.slow
def test_the_saved_eora_adapter_moves_each_layer_and_the_logits_toward_the_uncompressed_model(
        tiny_checkpoint, text_dir, tmp_path):
    """Judged from outside the method: the adapter folder EoRA writes is loaded the way
    evaluation loads it and compared with the uncompressed model, never with the error the
    code reports about itself. A flipped residual (W_c - W) doubles back away from the
    uncompressed model; an adapter whose A and B were never copied in (peft's zero B) leaves
    the compressed model as it was; both fail here."""
    config = {**TRAINING_FREE_EXAMPLES["eora"], "rank": 16, "calibration_samples": 8, "calibration_seq_len": 32}
    pruned = _pruned_copy(tiny_checkpoint, tmp_path / "pruned", config["target_modules"])
    _eora(pruned, tiny_checkpoint, text_dir, tmp_path / "eora", **config)
    recovered, tok = load_recovered(pruned, tmp_path / "eora", device="cpu", weights="dense")
    compressed, _ = load_model(pruned, device="cpu")
    base, _ = load_model(tiny_checkpoint, device="cpu")
    # text the adapter was not computed on: held-out blocks
    ids = calibration_blocks(tok, Path(text_dir) / "heldout.jsonl", samples=4, seq_len=32, seed=1)
    assert ids.shape[0] >= 2
    names = list(target_layers(compressed, RECOVERY.parse(config, "k")))
    assert len(names) == 6
    inputs = {n: _inputs(compressed, n, ids) for n in names}
    with torch.no_grad():
        for name in names:
            x = inputs[name]
            want = base.get_submodule(name)(x)
            without = (compressed.get_submodule(name)(x) - want).norm()
            adapted = recovered.base_model.model.get_submodule(name)
            assert adapted.lora_B["default"].weight.abs().max() > 0, name  # the adapter holds EoRA's B
            with_adapter = (adapted(x) - want).norm()
            assert with_adapter < 0.9 * without, (name, float(without), float(with_adapter))
        want = base(input_ids=ids).logits
        without = (compressed(input_ids=ids).logits - want).norm()
        with_adapter = (recovered(input_ids=ids).logits - want).norm()
    assert with_adapter < 0.9 * without, (float(without), float(with_adapter))


# few-shot prompting

SPLIT = {"dev_fraction": 0.25, "seed": 0, "held_out_tasks": []}


@pytest.fixture(scope="module")
def fewshot_tasks(tmp_path_factory):
    """element_symbol and element_name (they share facts: Iron -> Fe and Fe -> Iron),
    currencies (another relation, sharing none) and element_symbol's few-shot folder."""
    from compress_recover.data.fewshot_task import build_fewshot_task
    from compress_recover.data.knowledge_task import build_knowledge_task

    root = tmp_path_factory.mktemp("fewshot")
    dirs = {}
    for task in ("element_symbol", "element_name", "currencies"):
        dirs[task] = str(root / "tasks" / task)
        build_knowledge_task(task=task, out_dir=dirs[task], num_choices=4, seed=0, max_questions=60)
    out = root / "fewshot" / "element_symbol"
    build_fewshot_task(task="element_symbol", task_dirs=dirs, out_dir=str(out), split=SPLIT)
    return dirs, out


def _analysis_split(dirs):
    """(task, doc_id) -> dev/test as the analysis computes it, over both tasks."""
    from compress_recover.data.facts import question_fact
    from compress_recover.data.split import question_splits

    rows = {t: read_jsonl(Path(d) / f"{t}.jsonl") for t, d in dirs.items()}
    facts = {(t, str(i)): question_fact(r, t, str(i)) for t, rs in rows.items() for i, r in enumerate(rs)}
    return question_splits({t: [str(i) for i in range(len(rs))] for t, rs in rows.items()}, facts=facts, **SPLIT), facts


def _scored_contexts(folder, checkpoint, tmp_path, seed):
    from compress_recover.evaluate.evaluate import run_evaluation

    out = tmp_path / f"seed{seed}-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    run_evaluation(checkpoint_dir=str(checkpoint), adapter_dir=None, labels={"seed": seed},
                   tasks=[{"task": "element_symbol", "task_dir": str(folder), "out_json": str(out / "r.json"),
                           "out_samples": str(out / "s.jsonl")}],
                   batch_size=8, limit=None, num_fewshot=2,
                   # the config's seed stays 0: the demonstrations follow the run's seed (its labels)
                   runtime=Runtime(device="cpu", threads=2, seed=0))
    return read_jsonl(out / "s.jsonl")


@pytest.mark.slow
def test_fewshot_prompts_are_lm_evals_with_dev_demonstrations_of_other_facts(fewshot_tasks, tiny_checkpoint,
                                                                            tmp_path):
    import random

    from compress_recover.data.fewshot_task import may_demonstrate

    dirs, folder = fewshot_tasks
    splits, facts = _analysis_split(dirs)
    questions = read_jsonl(folder / "element_symbol.jsonl")
    assert [q["question"] for q in questions] == [q["question"] for q in
                                                  read_jsonl(Path(dirs["element_symbol"]) / "element_symbol.jsonl")]
    pool = [i for i, q in enumerate(questions) if q["fewshot_pool"]]
    assert pool and all(splits[("element_symbol", str(i))] == "dev" for i in pool)
    assert sum(splits[("element_symbol", str(i))] == "dev" for i in range(len(questions))) == len(pool)
    rows = sorted(_scored_contexts(folder, tiny_checkpoint, tmp_path, seed=3), key=lambda r: r["doc_id"])
    assert len(rows) == len(questions)
    # the hand-built prompt: lm-eval's format (question, " ", answer; "\n\n" between); the demonstrations:
    # the dev questions shuffled once by a generator seeded with the run's seed, and for each question the
    # first two of that order of another fact and answered by none of its choices
    order = random.Random(3).sample([questions[i] for i in pool], len(pool))
    prefixes = []
    for row in rows:
        doc = questions[row["doc_id"]]
        candidates = [d for d in order if may_demonstrate(d, doc)]
        assert all(c["fewshot_fact"] != doc["fewshot_fact"] and c["choices"][c["answer"]] not in doc["choices"]
                   for c in candidates)
        demos = candidates[:2]
        prefixes.append(tuple(d["question"] for d in demos))
        expected = "".join(f"{d['question']} {d['choices'][d['answer']]}\n\n" for d in demos) + doc["question"]
        contexts = {args[0] for args in row["arguments"]}
        assert contexts == {expected}, (row["doc_id"], contexts, expected)
        assert all(d["fewshot_fact"] != facts[("element_symbol", str(row["doc_id"]))] for d in demos)
        assert all(splits[("element_symbol", str(questions.index(d)))] == "dev" for d in demos)
    # one prefix for (nearly) every question: the seeded order's first two, re-drawn only where a rule demands
    first_two = tuple(d["question"] for d in order[:2])
    assert prefixes.count(first_two) == sum(all(may_demonstrate(d, questions[r["doc_id"]]) for d in order[:2])
                                            for r in rows) > len(rows) // 2
    again = sorted(_scored_contexts(folder, tiny_checkpoint, tmp_path, seed=3), key=lambda r: r["doc_id"])
    other = sorted(_scored_contexts(folder, tiny_checkpoint, tmp_path, seed=4), key=lambda r: r["doc_id"])
    assert [r["arguments"] for r in again] == [r["arguments"] for r in rows]
    assert [r["arguments"] for r in other] != [r["arguments"] for r in rows]


def test_a_demonstration_never_shows_the_questions_own_fact_or_any_of_its_choices():
    """The sampler's rule, on hand-made questions: the right answer shown as another fact's
    answer invites copying it, a distractor shown (while the right answer never is) marks it
    as wrong; a test question, or the question's own fact, is never shown."""
    from compress_recover.data.fewshot_task import marked
    from compress_recover.evaluate.fewshot_sampler import DevFactSampler

    def row(subject, answer, choices, dev=True):
        return marked({"question": f"{subject}?", "choices": choices, "answer": choices.index(answer)},
                      dev=dev, fact=f"{subject} | {answer}")

    doc = row("Lyon", "France", ["Spain", "France", "China", "India"], dev=False)
    pool = [row("Nice", "France", ["France", "Peru", "Chile", "Laos"]),     # its right answer
            row("Pune", "india ", ["Peru", "india ", "Chile", "Laos"]),     # a distractor (case and spaces aside)
            row("Lyon", "France", ["Chile", "France", "Peru", "Laos"]),     # its own fact
            row("Lima", "Peru", ["Peru", "Chile", "Laos", "Oman"], dev=False),  # a test question
            row("Kobe", "Japan", ["Japan", "Peru", "Chile", "Laos"]),
            row("Oslo", "Norway", ["Chile", "Norway", "Peru", "Laos"])]
    sampler = DevFactSampler([doc, *pool], rnd=0)
    shown = set()
    for seed in range(40):
        sampler.set_rnd(seed)
        shown |= {d["question"] for d in sampler.sample(2, eval_doc=doc)}
    assert shown == {"Kobe?", "Oslo?"}
    with pytest.raises(ValueError, match="3 demonstrations asked, but only 2"):
        sampler.sample(3, eval_doc=doc)


def test_a_restatement_of_the_questions_fact_is_never_its_demonstration(fewshot_tasks):
    """The fact rule on its own: element_name asks element_symbol's facts the other way
    (Fe -> Iron for Iron -> Fe), so a restatement's answer (an element's name) is none of
    the question's choices (symbols) and only its fact keeps it out. Every question is
    evaluated, dev ones too, and a dev question's restatement is dev as well (the split is
    by fact): the sampler must pass it over, not only the question itself."""
    from compress_recover.data.fewshot_task import CHOICES_FIELD, FACT_FIELD, marked, may_demonstrate
    from compress_recover.evaluate.fewshot_sampler import DevFactSampler

    dirs, _ = fewshot_tasks
    splits, facts = _analysis_split(dirs)  # the few-shot folders' marking: the analysis's split and facts
    rows = {t: [marked(row, dev=splits[(t, str(i))] == "dev", fact=facts[(t, str(i))])
                for i, row in enumerate(read_jsonl(Path(d) / f"{t}.jsonl"))] for t, d in dirs.items()}
    by_fact = {}
    for row in rows["element_name"]:
        by_fact.setdefault(row[FACT_FIELD], []).append(row)
    pairs = [(q, r) for q in rows["element_symbol"] if q["fewshot_pool"] for r in by_fact.get(q[FACT_FIELD], [])]
    assert len(pairs) >= 3 and all(r["fewshot_pool"] and r["question"] != q["question"] for q, r in pairs)
    # only the fact tells them apart: the restatement's answer is none of the question's choices
    assert all(r["fewshot_answer"] not in q[CHOICES_FIELD] for q, r in pairs)
    assert not any(may_demonstrate(r, q) for q, r in pairs)
    # the sampler, drawing from both relations' questions, never shows a question its own fact
    sampler = DevFactSampler([*rows["element_symbol"], *rows["element_name"]], rnd=0)
    seen_restatement = False
    for seed in range(20):
        sampler.set_rnd(seed)
        for q, r in pairs:
            shown = sampler.sample(3, eval_doc=q)
            assert all(d[FACT_FIELD] != q[FACT_FIELD] for d in shown), (q["question"], seed)
            seen_restatement |= any(d is r for d in sampler.order()[:3])
    assert seen_restatement  # some seed put a restatement first: the rule had something to refuse


def test_every_question_takes_the_first_allowed_demonstrations_of_one_seeded_order():
    """MMLU's convention: one seeded order per task, so the questions share one prefix; a
    question the first demonstrations would spoil takes the next allowed ones (only it); the
    order depends on the seed alone, not on which questions were asked before."""
    from compress_recover.data.fewshot_task import marked
    from compress_recover.evaluate.fewshot_sampler import DevFactSampler

    def row(subject, answer, choices, dev=True):
        return marked({"question": f"{subject}?", "choices": choices, "answer": choices.index(answer)},
                      dev=dev, fact=f"{subject} | {answer}")

    countries = ["Chile", "Peru", "Laos", "Oman", "Fiji", "Mali", "Iran", "Cuba", "Togo", "Chad"]
    pool = [row(f"City{i}", c, [c, *[x for x in countries if x != c][:3]]) for i, c in enumerate(countries)]
    plain = [row(f"Test{i}", "Japan", ["Japan", "Spain", "Italy", "Kenya"], dev=False) for i in range(5)]
    sampler = DevFactSampler([*pool, *plain], rnd=7)
    order = [d["question"] for d in sampler.order()]
    assert sorted(order) == sorted(d["question"] for d in pool)  # the dev questions only, each once
    assert {tuple(d["question"] for d in sampler.sample(3, eval_doc=q)) for q in plain} == {tuple(order[:3])}
    # a question whose choices hold the second demonstration's answer: that one is replaced by the next allowed
    second = next(d for d in pool if d["question"] == order[1])
    spoilt = row("Test9", "Japan", ["Japan", second["choices"][second["answer"]], "Italy", "Kenya"], dev=False)
    assert [d["question"] for d in sampler.sample(3, eval_doc=spoilt)] == [order[0], order[2], order[3]]
    # the same seed gives the same order whatever came before; another seed another order
    fresh = DevFactSampler([*plain, *pool], rnd=7)
    fresh.sample(2, eval_doc=spoilt)
    assert [d["question"] for d in fresh.sample(3, eval_doc=plain[0])] == order[:3]
    assert [d["question"] for d in sampler.set_rnd(8).order()] != order


@pytest.mark.slow
def test_the_format_control_draws_on_the_other_relations_dev_questions(fewshot_tasks, tiny_checkpoint, tmp_path):
    """The control's folder: the same questions and task name, none a demonstration; the
    prompt lm-eval scores shows dev questions of currencies only: never of element_name,
    which asks the same facts the other way (Iron -> Fe and Fe -> Iron are one), never
    answered by one of its choices."""
    import random

    from compress_recover.data.fewshot_task import POOL_FILE, build_fewshot_task, may_demonstrate

    dirs, folder = fewshot_tasks
    splits, _ = _analysis_split(dirs)
    control = tmp_path / "control"
    build_fewshot_task(task="element_symbol", task_dirs=dirs, out_dir=str(tmp_path / "same"), split=SPLIT,
                       control_dir=str(control), control_shots=2)
    questions = read_jsonl(control / "element_symbol.jsonl")
    assert [q["question"] for q in questions] == [q["question"] for q in read_jsonl(folder / "element_symbol.jsonl")]
    assert not any(q["fewshot_pool"] for q in questions)
    pool = read_jsonl(control / POOL_FILE)
    other = read_jsonl(Path(dirs["currencies"]) / "currencies.jsonl")
    assert [d["question"] for d in pool] == [q["question"] for i, q in enumerate(other)
                                             if splits[("currencies", str(i))] == "dev"]
    assert {d["fewshot_task"] for d in pool} == {"currencies"}
    assert not {d["fewshot_fact"] for d in pool} & {q["fewshot_fact"] for q in questions}
    manifest = read_json(control / "manifest.json")
    assert manifest["task"] == "element_symbol" and manifest["format_control"] is True
    assert manifest["demonstration_tasks"] == {"currencies": len(pool)} and manifest["shots"] == 2
    rows = sorted(_scored_contexts(control, tiny_checkpoint, tmp_path, seed=3), key=lambda r: r["doc_id"])
    assert len(rows) == len(questions)
    order = random.Random(3).sample(pool, len(pool))  # one seeded order; each question its first two allowed
    for row in rows:
        doc = questions[row["doc_id"]]
        demos = [d for d in order if may_demonstrate(d, doc)][:2]
        expected = "".join(f"{d['question']} {d['choices'][d['answer']]}\n\n" for d in demos) + doc["question"]
        assert {args[0] for args in row["arguments"]} == {expected}, row["doc_id"]
        assert all(d["fewshot_fact"] != doc["fewshot_fact"] and d["fewshot_answer"] not in doc["fewshot_choices"]
                   for d in demos)


def test_a_format_control_without_enough_demonstrations_is_refused_by_name(fewshot_tasks, tmp_path):
    from compress_recover.data.fewshot_task import build_fewshot_task

    dirs, _ = fewshot_tasks
    # element_name is no other relation for the control: it asks element_symbol's facts
    alone = {"element_symbol": dirs["element_symbol"], "element_name": dirs["element_name"]}
    with pytest.raises(ValueError, match="other knowledge tasks that ask none of its facts.*element_name.*"
                                         "recovery.recover_base"):
        build_fewshot_task(task="element_symbol", task_dirs=alone, out_dir=str(tmp_path / "a"), split=SPLIT,
                           control_dir=str(tmp_path / "b"), control_shots=1)
    with pytest.raises(ValueError, match=r"500 demonstrations .*format control"):
        build_fewshot_task(task="element_symbol", task_dirs=dirs, out_dir=str(tmp_path / "c"), split=SPLIT,
                           control_dir=str(tmp_path / "d"), control_shots=500)
    # no format control is evaluated (control_shots 0): one task is enough
    build_fewshot_task(task="element_symbol", task_dirs=alone, out_dir=str(tmp_path / "e"), split=SPLIT,
                       control_dir=str(tmp_path / "f"), control_shots=0)
    assert read_json(tmp_path / "f" / "manifest.json")["demonstration_pool"] == 0


def test_fewshot_run_records_k_and_the_input_it_adds_and_loads_as_the_model_itself(fewshot_tasks, tiny_checkpoint,
                                                                                  text_dir, tmp_path):
    _, folder = fewshot_tasks
    out = tmp_path / "fewshot"
    manifest = run_compute(checkpoint_dir=str(tiny_checkpoint), out_dir=str(out),
                           method_config=TRAINING_FREE_EXAMPLES["fewshot"], key="recovery.methods[5]",
                           text_dir=str(text_dir), runtime=RUNTIME, fewshot_task_dirs=str(folder))
    assert manifest["trained"] is False and manifest["details"]["k"] == 2
    assert manifest["input_tokens_added"] > 4 and not list(out.glob("*.safetensors"))
    model, _ = load_recovered(tiny_checkpoint, out, device="cpu")
    plain, _ = load_model(tiny_checkpoint, device="cpu")
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_a_task_without_a_fewshot_split_is_refused_by_name(tmp_path):
    from compress_recover.data.knowledge_task import build_knowledge_task
    from compress_recover.evaluate.evaluate import TaskUnavailableError, preflight_task

    folder = tmp_path / "capitals"
    build_knowledge_task(task="capitals", out_dir=str(folder), num_choices=4, seed=0, max_questions=8)
    preflight_task("capitals", str(folder), 0)
    with pytest.raises(TaskUnavailableError, match=r"\['capitals'\].*fewshot_split"):
        preflight_task("capitals", str(folder), 2)


def test_fewshot_demonstrations_run_out_with_a_clear_error(tmp_path):
    from compress_recover.data.fewshot_task import build_fewshot_task
    from compress_recover.data.knowledge_task import build_knowledge_task

    folder = tmp_path / "tasks" / "capitals"
    build_knowledge_task(task="capitals", out_dir=str(folder), num_choices=4, seed=0, max_questions=8)
    with pytest.raises(ValueError, match="no dev question"):
        build_fewshot_task(task="capitals", task_dirs={"capitals": str(folder)}, out_dir=str(tmp_path / "f"),
                           split={"dev_fraction": 0.0})


def test_more_demonstrations_than_a_task_has_are_refused_before_scoring(fewshot_tasks, tmp_path):
    from compress_recover.data.fewshot_task import build_fewshot_task

    dirs, _ = fewshot_tasks
    with pytest.raises(ValueError, match=r"500 demonstrations per question asked .* lower k"):
        build_fewshot_task(task="element_name", task_dirs=dirs, out_dir=str(tmp_path / "f"), split=SPLIT, shots=500)
    assert not (tmp_path / "f").exists()


def _generate_factors(base_dir, gptq_dir, blocks, rank, out):
    """GPTQModel's own EoRA (``GPTQModel.adapter.generate``) on the same checkpoints and
    calibration blocks, on the CPU (it asserts float16/bfloat16 weights: bfloat16): layer
    name -> B @ A read from the PEFT adapter it writes."""
    from gptqmodel import GPTQModel
    from gptqmodel.adapter.adapter import Lora
    from safetensors.torch import load_file

    out.mkdir()
    GPTQModel.adapter.generate(adapter=Lora(path=str(out), rank=rank), model_id_or_path=str(base_dir),
                               quantized_model_id_or_path=str(gptq_dir),
                               calibration_dataset=[{"input_ids": b.tolist(), "attention_mask": [1] * len(b)}
                                                    for b in blocks],
                               dtype=torch.bfloat16, device="cpu")
    tensors = load_file(str(out / "adapter_model.safetensors"))
    prefix = "base_model.model."
    names = {k.removeprefix(prefix).rsplit(".lora_", 1)[0] for k in tensors}
    return {n: tensors[f"{prefix}{n}.lora_B.weight"].float() @ tensors[f"{prefix}{n}.lora_A.weight"].float()
            for n in names}


@pytest.mark.slow
def test_our_gptq_eora_matches_gptqmodels_adapter_generate_where_their_inputs_agree(compressed, tiny_checkpoint,
                                                                                   text_dir, tmp_path):
    """The first layer's q/k/v projections read the same inputs in both paths (GPTQModel
    walks the layers in order with the earlier corrections applied, so later layers differ by
    design); their corrections B @ A agree up to GPTQModel's bfloat16 arithmetic (measured:
    3-5% relative Frobenius difference on the tiny model)."""
    kind, checkpoint = compressed
    if kind != "gptq":
        pytest.skip("GPTQModel's adapter.generate takes GPTQ checkpoints only")
    model, base, blocks, layers, covs, residuals = _setup(checkpoint, tiny_checkpoint, text_dir,
                                                          {"method": "eora", "rank": 4})
    ours, _ = eora_factors(residuals, covs, rank=4, device="cpu")
    theirs = _generate_factors(tiny_checkpoint, checkpoint, blocks, 4, tmp_path / "generated")
    assert set(theirs) == set(ours)
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                 "model.layers.0.self_attn.v_proj"):
        a, b = ours[name]
        mine = b @ a
        assert float((theirs[name] - mine).norm() / mine.norm()) < 0.1, name


# the 2 x 2 view


def _decision(recovery, side, trained, fraction, decision="fails"):
    from compress_recover.aggregate.stats.decisions import Decision

    return Decision("m", "c", recovery, recovery, side, decision, trained=trained, fraction=fraction,
                    ci_low=fraction - 0.1, ci_high=fraction + 0.1)


def _remedies_view(methods, costs):
    """The report's 2 x 2 section for one verdict on (m, c) with these decisions."""
    from types import SimpleNamespace

    from compress_recover.aggregate.report.costs import remedies
    from compress_recover.aggregate.report.inputs import ReportInputs

    verdict = SimpleNamespace(model="m", compression="c", methods=methods)
    inputs = ReportInputs(results=SimpleNamespace(verdicts=[verdict]), figures={}, costs=costs, config={},
                          knowledge_tasks=[])
    return remedies(inputs)["remedies"]


def _cost(recovery, params, batch_s, trained=True, tokens=0, seconds=10.0):
    return {"model": "m", "compression": "c", "recovery": recovery, "status": "ok", "extra_params": params,
            "input_tokens_added": tokens, "training_time_s": seconds, "trained": trained,
            "latency": {"batch": {"median_s": batch_s}, "generation": {"per_token_s": 0.01}}}


def test_the_2x2_view_shows_each_cells_best_method_with_its_interval_and_cost():
    methods = [_decision("lora", "parameters", True, 0.1), _decision("idp", "input", True, 0.3),
               _decision("prompt_tuning", "input", True, 0.2), _decision("eora", "parameters", False, 0.6, "recovers"),
               _decision("fewshot", "input", False, float("nan"))]
    costs = [_cost("none", 0, 1.0), _cost("lora", 100, 1.2), _cost("idp", 10, 1.1), _cost("prompt_tuning", 20, 1.05),
             _cost("eora", 100, 1.3, trained=False, seconds=2.0), _cost("fewshot", 0, 2.0, trained=False, tokens=40)]
    view = _remedies_view(methods, costs)
    rows = {(r[2], r[3]): dict(zip(view["head"], r, strict=True)) for r in view["rows"]}
    assert set(rows) == {("training-free", "input"), ("training-free", "parameters"), ("trained", "input"),
                         ("trained", "parameters")}
    assert rows[("trained", "input")]["best"] == "idp" and rows[("trained", "input")]["F [interval]"] == \
        "0.30 [0.20, 0.40]"
    eora = rows[("training-free", "parameters")]
    assert (eora["best"], eora["decision"], eora["extra params"], eora["latency per batch"]) == \
        ("eora", "recovers", "100", "1.30x")
    fewshot = rows[("training-free", "input")]
    assert (fewshot["best"], fewshot["input tokens added"], fewshot["latency per batch"]) == ("fewshot", "40", "2.00x")
    lonely = _remedies_view([_decision("lora", "parameters", True, 0.1)], costs)
    assert sum(r[4] == "none tried" for r in lonely["rows"]) == 3


# the plan


def _default_config():
    import copy

    import yaml

    from conftest import REPO

    return copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))


def test_the_plan_runs_eora_once_on_compressed_models_only_and_fewshot_per_seed_with_its_control():
    from compress_recover.config import build_plan

    config = _default_config()
    config["recovery"]["seeds"] = [0, 1, 2]
    plan = build_plan(config)
    runs = {r: e for r, e in plan.recoveries.items() if e.method in ("eora", "fewshot")}
    assert sorted(runs) == ["eora.seed0", "fewshot.seed0", "fewshot.seed1", "fewshot.seed2"]
    assert all(e.objective is None and e.steps is None and e.parent is None for e in runs.values())
    cells = plan.cells()
    assert not [c for c in cells if c[1] == "none" and c[2].startswith("eora")]
    assert {c[1] for c in cells if c[2].startswith("eora")} == {"gptq-w3g64", "wanda-s50"}
    assert {c[1] for c in cells if c[2] == "fewshot.seed1"} == {"none", "gptq-w3g64", "wanda-s50"}
    config["recovery"]["budget"]["steps"] = [30, 60]
    assert not [r for r in build_plan(config).recoveries if r.startswith(("eora", "fewshot")) and ".step" in r]


@pytest.mark.parametrize("override", [{"objective": {"loss": "distill"}}, {"text": "generated"}])
def test_a_training_free_entry_refuses_a_training_setting_by_key(override):
    from compress_recover.config import build_plan

    config = _default_config()
    index = next(i for i, m in enumerate(config["recovery"]["methods"]) if m["method"] == "eora")
    config["recovery"]["methods"][index].update(override)
    with pytest.raises(ConfigError, match=rf"recovery.methods\[{index}\].{next(iter(override))}: method 'eora' "
                                          "trains nothing"):
        build_plan(config)


def test_training_and_computing_refuse_each_others_methods(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.recover.recover import run_recovery
    from conftest import RECOVERY_EXAMPLES

    with pytest.raises(ValueError, match=r"recovery.methods\[4\]: method 'eora' trains nothing; rule compute_eora"):
        run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "a"),
                     method_config=TRAINING_FREE_EXAMPLES["eora"], key="recovery.methods[4]", text_dir=str(text_dir),
                     steps=1, batch_size=1, seq_len=32, runtime=RUNTIME)
    with pytest.raises(ValueError, match=r"recovery.methods\[1\]: method 'lora' trains; rule recover_lora"):
        run_compute(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "b"),
                    method_config=RECOVERY_EXAMPLES["lora"], key="recovery.methods[1]", runtime=RUNTIME)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_users_task_without_a_fewshot_split_is_refused_by_the_plan_when_a_run_needs_demonstrations(tmp_path):
    from compress_recover.config import build_plan
    from conftest import write_choice_task

    config = _default_config()
    rows = [{"q": "Is 2 even?", "a": 0}]
    config["data"]["task_dirs"] = [{"path": str(write_choice_task(tmp_path / "a", "parity", rows, ["yes", "no"])),
                                    "tasks": ["parity"], "knowledge": False}]
    with pytest.raises(ConfigError, match=r"data.task_dirs\[0\]: task\(s\) \['parity'\] name no split to draw "
                                          r"3-shot demonstrations"):
        build_plan(config)
    config["recovery"]["methods"] = [m for m in config["recovery"]["methods"] if m["method"] != "fewshot"]
    build_plan(config)  # zero-shot everywhere: no demonstrations needed
    config["evaluation"]["num_fewshot"] = 1
    with pytest.raises(ConfigError, match=r"data.task_dirs\[0\].*1-shot"):
        build_plan(config)
    write_choice_task(tmp_path / "a", "parity", rows, ["yes", "no"], demonstrations=[{"q": "Is 3 even?", "a": 1}])
    build_plan(config)


def test_a_lora_restricted_to_layers_adds_exactly_its_count_and_is_checked_against_the_model(tiny_llama_dir):
    # the matched-capacity entry of docs/methods.md: rank 1 on q_proj of some layers adds layers x (in + out)
    from compress_recover.recover.lora import prepare
    from compress_recover.recover.lora_config import LoRAConfig
    from compress_recover.shape import EMBEDDED

    cfg = LoRAConfig(rank=1, alpha=2, target_modules=["q_proj"], layers=[1])
    model = prepare(load_model(str(tiny_llama_dir), device="cpu")[0], cfg, 0)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 64 + 64 and all(".layers.1." in n for n in trainable)
    matched = LoRAConfig(rank=1, alpha=2, target_modules=["q_proj"], layers=list(range(10)))
    matched.check("recovery.methods[1]")
    matched.check_shape("recovery.methods[1]", "smollm2-135m", EMBEDDED)
    assert len(matched.layers) * (EMBEDDED.hidden + EMBEDDED.hidden) == 20 * EMBEDDED.hidden  # prompt tuning's 20 tokens
    with pytest.raises(ConfigError, match=r"recovery.methods\[1\].layers: layer 30 does not exist"):
        LoRAConfig(layers=[29, 30]).check_shape("recovery.methods[1]", "smollm2-135m", EMBEDDED)
    with pytest.raises(ConfigError, match="distinct decoder layers"):
        LoRAConfig(layers=[1, 1]).check("recovery.methods[1]")
