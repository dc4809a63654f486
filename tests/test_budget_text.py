"""Budget curves (one training, a checkpoint at each listed step) and the self-generated
recovery text: the plan, the DAG, training and generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from snakemake.utils import validate

from compress_recover.config import build_plan as _build_plan
from compress_recover.registry import ConfigError
from tinyflow import dag_jobs, tiny_config

LORA = {"method": "lora", "rank": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]}


def _config(steps=4, **recovery) -> dict:
    """The tiny config with budget ``steps``, every method on the corpus unless ``recovery`` says otherwise."""
    config = tiny_config(Path("unused"))
    config["models"] = {"tiny": {"source": "embedded"}}  # nothing is downloaded in a dry run
    config["recovery"]["budget"]["steps"] = steps
    for method in config["recovery"]["methods"]:
        method.pop("text", None)
    config["recovery"].update(recovery)
    return config


def build_plan(config: dict):
    """The plan of a config as the workflow sees it: schema-validated (defaults filled) first."""
    validate(config, str(Path(__file__).resolve().parents[1] / "compress_recover/schema/config.schema.yaml"))
    return _build_plan(config)


def _by_rule(jobs: dict, rule: str) -> dict[str, dict]:
    return {w: job for (r, w), job in jobs.items() if r == rule}


# --------------------------------------------------------------------------- the plan

def test_a_budget_list_gives_one_trained_run_and_a_checkpoint_run_per_earlier_step():
    plan = build_plan(_config(steps=[1, 2, 4], seeds=[0]))  # in increasing order (else refused: test_bad_inputs)
    assert plan.budget_steps == [1, 2, 4] and plan.checkpoint_steps() == [1, 2]
    lora = {r: e for r, e in plan.recoveries.items() if e.group == "lora"}
    assert {r: (e.steps, e.parent) for r, e in lora.items()} == {
        "lora.seed0": (4, None), "lora.seed0.step1": (1, "lora.seed0"), "lora.seed0.step2": (2, "lora.seed0")}
    assert plan.recoveries_by_method("lora") == ["lora.seed0"]  # checkpoints are saved by their parent's job
    assert plan.recoveries["none"].steps is None


def test_the_training_text_follows_the_config_and_an_entry_override_names_the_folder():
    methods = [{"method": "none"}, LORA, {**LORA, "text": "generated"},
               {**LORA, "text": "generated", "objective": {"loss": "distill"}}]
    plan = build_plan(_config(seeds=[0], methods=methods))
    assert {r: e.text for r, e in plan.recoveries.items() if r != "none"} == {
        "lora.seed0": "corpus", "lora-gen.seed0": "generated", "lora-kd-gen.seed0": "generated"}
    assert plan.texts_used() == ["corpus", "generated"]
    everything = build_plan(_config(seeds=[0], methods=[{"method": "none"}, LORA], text="generated"))
    # the folder says what it trained on whichever key chose it
    assert everything.recoveries["lora-gen.seed0"].text == "generated" and everything.texts_used() == ["generated"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c["recovery"]["budget"].update(steps=[]), "recovery.budget.steps"),
    (lambda c: c["recovery"]["budget"].update(steps=[2, 2]), "repeats"),
    (lambda c: c["recovery"]["budget"].update(steps=[0, 2]), "0 is not an integer >= 1"),
    (lambda c: c["recovery"].update(text="web"), "recovery.text"),
    (lambda c: c["recovery"]["methods"].append({**LORA, "name": "lora.step3"}), "recovery.methods[6].name"),
    (lambda c: c["recovery"]["methods"].append({"method": "none", "text": "generated", "name": "x"}),
     "recovery.methods[6].text"),
    (lambda c: c["data"].update(split={"held_out_tasks": ["currencies"]}), "data.split.held_out_tasks"),
    (lambda c: c["data"].update(split={"held_out_tasks": ["capitals", "element_symbol"]}), "nothing is left"),
    (lambda c: c["data"].update(split={"dev_fraction": float("nan")}), "data.split.dev_fraction"),
])
def test_bad_budget_text_and_split_values_name_their_key(change, message):
    """The plan's own checks (they hold even where the schema would let a value through)."""
    config = _config()
    build_plan(config)  # valid, and the schema's defaults filled in
    change(config)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _build_plan(config)


# --------------------------------------------------------------------------- the DAG

@pytest.mark.slow
def test_a_budget_curve_evaluates_every_checkpoint_and_costs_only_the_final_run(tmp_path):
    jobs = dag_jobs(tmp_path, _config(steps=[2, 4], seeds=[0]))
    cell = "compression=gptq-w4g32,model=tiny,recovery="
    lora = _by_rule(jobs, "recover_lora")
    assert list(lora) == [f"{cell}lora.seed0"]  # one training per run
    outputs = lora[f"{cell}lora.seed0"]["output"]
    assert outputs["adapter"] == "results/tiny/gptq-w4g32/lora.seed0/adapter"
    assert list(outputs["checkpoints"]) == ["results/tiny/gptq-w4g32/lora.seed0.step2/adapter"]
    assert lora[f"{cell}lora.seed0"]["params"]["budget"]["steps"] == [2, 4]
    evaluate = _by_rule(jobs, "evaluate")
    step = evaluate[f"{cell}lora.seed0.step2"]
    assert step["input"]["adapter"] == "results/tiny/gptq-w4g32/lora.seed0.step2/adapter"
    assert step["params"]["labels"]["recovery"] == "lora" and step["params"]["labels"]["run"] == "lora.seed0.step2"
    cost = _by_rule(jobs, "cost")
    assert f"{cell}lora.seed0" in cost and not any(".step" in w for w in cost)
    attention = _by_rule(jobs, "attention")["compression=gptq-w4g32,model=tiny"]["params"]["adapters"]
    assert not any(".step" in r for r in attention)
    cells = jobs[("analysis", "")]["params"]["cells"]
    assert {(c["run"], c["steps"]) for c in cells if c["recovery"] == "lora"} == {
        ("lora.seed0", 4), ("lora.seed0.step2", 2)}
    assert jobs[("summary", "")]["params"]["steps"]["lora.seed0.step2"] == 2


@pytest.mark.slow
def test_a_scalar_budget_keeps_every_recover_job_as_it_was(tmp_path):
    """The default (one budget) gains no checkpoint output, and its budget keeps the scalar steps."""
    jobs = dag_jobs(tmp_path, _config(seeds=[0]))
    lora = _by_rule(jobs, "recover_lora")["compression=gptq-w4g32,model=tiny,recovery=lora.seed0"]
    assert list(lora["output"]["checkpoints"]) == []
    assert lora["params"]["budget"] == {"batch_size": 2, "seq_len": 32, "steps": 4, "gradient_clip": None}
    assert lora["input"]["text"] == "results/data/text"


@pytest.mark.slow
def test_generated_text_is_written_once_per_model_and_shared_by_its_recoveries(tmp_path):
    methods = [{"method": "none"}, {**LORA, "text": "generated"},
               {"method": "prompt_tuning", "text": "generated", "objective": {"loss": "distill"}},
               {"method": "idp", "objective": {"loss": "distill"}}]
    jobs = dag_jobs(tmp_path, _config(seeds=[0, 1], methods=methods))
    generated = _by_rule(jobs, "generated_text")
    assert list(generated) == ["model=tiny"]
    assert generated["model=tiny"]["outputs"] == ["results/tiny/none/generated_text"]
    assert generated["model=tiny"]["input"]["checkpoint"] == "results/tiny/none/checkpoint"
    for rule in ("recover_lora", "recover_prompt_tuning"):
        for job in _by_rule(jobs, rule).values():
            assert job["input"]["text"] == "results/tiny/none/generated_text"
    pt = next(iter(_by_rule(jobs, "recover_prompt_tuning").values()))
    assert pt["input"]["teacher"] == "results/tiny/none/teacher_logits_generated"
    idp = next(iter(_by_rule(jobs, "recover_idp").values()))
    assert idp["input"]["text"] == "results/data/text" and idp["input"]["teacher"] == "results/tiny/none/teacher_logits"
    assert list(_by_rule(jobs, "teacher_logits_generated")) == ["model=tiny"]
    assert list(_by_rule(jobs, "teacher_logits_corpus")) == ["model=tiny"]
    # the analysis re-checks the generated text for leaks
    assert list(jobs[("analysis", "")]["input"]["generated"]) == ["results/tiny/none/generated_text"]


@pytest.mark.slow
def test_a_curated_pool_reads_every_source_text(tmp_path):
    """A curated IDP pool trains one prompt per text: its job reads both (the corpus and the
    model's own text), which is then generated once for the model."""
    methods = [{"method": "none"}, {"method": "idp", "name": "idp-cur", "routing": "curated", "pool_size": 2,
                                    "sources": ["corpus", "generated"]}]
    jobs = dag_jobs(tmp_path, _config(seeds=[0], methods=methods))
    (idp,) = _by_rule(jobs, "recover_idp").values()
    assert idp["input"]["sources"] == ["results/data/text", "results/tiny/none/generated_text"]
    assert list(_by_rule(jobs, "generated_text")) == ["model=tiny"]
    gumbel = {"method": "idp", "routing": "gumbel", "context_tokens": 32}  # blocks of 32 tokens here
    with pytest.raises(ConfigError, match=r"recovery\.methods\[1\]\.context_tokens: 32 must be below recovery"):
        build_plan(_config(methods=[{"method": "none"}, gumbel]))
    with pytest.raises(ConfigError, match=r"recovery\.methods\[1\]\.pool_size: 4 must equal the number of sources"):
        build_plan(_config(methods=[{"method": "none"}, {"method": "idp", "routing": "curated"}]))


@pytest.mark.slow
def test_without_generated_recoveries_no_text_is_generated(tmp_path):
    jobs = dag_jobs(tmp_path, _config(seeds=[0]))
    assert not _by_rule(jobs, "generated_text") and not _by_rule(jobs, "teacher_logits_generated")
    assert list(jobs[("analysis", "")]["input"]["generated"]) == []


# --------------------------------------------------------------------------- training

def _adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    (weights,) = folder.glob("*.safetensors")
    return load_file(str(weights))


@pytest.mark.parametrize("method", [LORA, {"method": "idp", "pool_size": 2, "num_virtual_tokens": 2,
                                           "context_tokens": 4},
                                    {"method": "idp", "pool_size": 2, "num_virtual_tokens": 2, "routing": "gumbel",
                                     "context_tokens": 4}])
def test_a_budget_checkpoint_equals_a_run_trained_for_that_many_steps(method, tiny_checkpoint, text_dir, tmp_path):
    import torch

    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    def run(out: str, steps, checkpoints=()):
        return run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / out), method_config=method,
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=steps, batch_size=2, seq_len=16,
                            checkpoint_dirs=[str(tmp_path / c) for c in checkpoints],
                            runtime=Runtime(device="cpu", seed=0, threads=1), seed=3)

    final = run("curve", [3, 1], checkpoints=["curve-step1"])
    short = run("short", 1)
    checkpoint = json.loads((tmp_path / "curve-step1" / "manifest.json").read_text())
    assert checkpoint["budget"]["steps"] == 1 and checkpoint["budget"]["tokens"] == 1 * 2 * 16
    assert checkpoint["losses"] == short["losses"] and final["losses"][:1] == short["losses"]
    assert final["budget"]["steps"] == 3 and final["budget"]["budget_steps"] == [1, 3]
    saved, alone = _adapter_tensors(tmp_path / "curve-step1"), _adapter_tensors(tmp_path / "short")
    assert saved.keys() == alone.keys()
    for name in saved:
        torch.testing.assert_close(saved[name], alone[name], rtol=0, atol=1e-6)
    trained_on = _adapter_tensors(tmp_path / "curve")
    assert any(not torch.equal(trained_on[n], saved[n]) for n in saved)  # training went on after the checkpoint


def test_a_budget_list_needs_one_checkpoint_folder_per_earlier_step(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    with pytest.raises(ValueError, match="need 1 checkpoint folder"):
        run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "a"), method_config=LORA,
                     key="recovery.methods[1]", text_dir=str(text_dir), steps=[1, 2], batch_size=2, seq_len=16,
                     runtime=Runtime(device="cpu", seed=0, threads=1))
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- generated text

GENERATION = {"prompts": "openings", "opening_words": 4, "count": 6, "max_new_tokens": 12, "temperature": 1.0,
              "top_p": 0.95, "batch_size": 4, "min_chars": 1}


def _generate(tiny_checkpoint, text_dir, out: Path, task_dirs=(), **overrides):
    from compress_recover.data.generated_text import generate_text
    from compress_recover.runtime import Runtime

    return generate_text(checkpoint_dir=str(tiny_checkpoint), text_dir=str(text_dir), task_dirs=list(task_dirs),
                         out_dir=str(out), model_name="tiny", generation={**GENERATION, **overrides}, seed=0, runtime=Runtime(device="cpu", seed=0, threads=1))


def test_generated_text_is_deterministic_for_a_seed(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.io import read_jsonl

    _generate(tiny_checkpoint, text_dir, tmp_path / "a")
    _generate(tiny_checkpoint, text_dir, tmp_path / "b")
    a, b = (read_jsonl(tmp_path / x / "train.jsonl") for x in "ab")
    assert a == b and len(a) == GENERATION["count"]
    openings = {" ".join(r["text"].split()[:4]) for r in read_jsonl(Path(text_dir) / "train.jsonl")}
    assert all(" ".join(r["text"].split()[:4]) in openings for r in a)  # each continues a corpus opening
    assert any(len(r["text"].split()) > 4 for r in a)
    assert read_jsonl(tmp_path / "a" / "heldout.jsonl") == []
    report = json.loads((tmp_path / "a" / "leak_report.json").read_text())
    assert report["train_passages"] == len(a) and report["dropped_leaks"] == 0 and report["model"] == "tiny"
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["shortfalls"] == []  # every passage kept


def test_generated_passages_the_filters_drop_are_a_recorded_shortfall(tiny_checkpoint, text_dir, tmp_path):
    _generate(tiny_checkpoint, text_dir, tmp_path / "short", min_chars=52)
    report = json.loads((tmp_path / "short" / "leak_report.json").read_text())
    manifest = json.loads((tmp_path / "short" / "manifest.json").read_text())
    assert 0 < report["dropped_too_short"] < GENERATION["count"], report  # some of the tiny model's passages are shorter
    assert manifest["shortfalls"] == [{"key": "data.generated.count", "what": "generated passages kept by the "
                                       "length and leak filters", "asked": GENERATION["count"],
                                       "served": report["train_passages"]}]


def test_generation_draws_other_text_with_another_seed(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.data.generated_text import generate_text
    from compress_recover.io import read_jsonl
    from compress_recover.runtime import Runtime

    _generate(tiny_checkpoint, text_dir, tmp_path / "a")
    generate_text(checkpoint_dir=str(tiny_checkpoint), text_dir=str(text_dir), task_dirs=[],
                  out_dir=str(tmp_path / "b"), model_name="tiny", generation=GENERATION, seed=1,
                  runtime=Runtime(device="cpu", seed=0, threads=1))
    assert read_jsonl(tmp_path / "a" / "train.jsonl") != read_jsonl(tmp_path / "b" / "train.jsonl")


def test_the_leak_filter_drops_a_generated_passage_naming_a_subject_with_its_answer(tmp_path):
    from compress_recover.data.generated_text import filter_passages

    folder = tmp_path / "capitals"  # a knowledge task folder as rule knowledge_task writes it
    folder.mkdir()
    (folder / "capitals.jsonl").write_text(json.dumps({"subject": "Australia", "answer_text": "Canberra"}) + "\n")
    texts = ["We flew over Australia and landed in Canberra at noon.", "A walk by the river in spring.",
             "Australia is large.", "Short."]
    kept, counts = filter_passages(texts, [str(folder)], min_chars=10)
    assert [r["text"] for r in kept] == texts[1:3]
    assert (counts["dropped_leaks"], counts["dropped_too_short"], counts["passages_total"]) == (1, 1, 4)
    assert [list(pair) for pair in counts["dropped_examples"][0]["leaks"]] == [["Australia", "Canberra"]]


def test_instruction_prompts_are_neutral_and_cycle():
    from compress_recover.data.generated_text import INSTRUCTIONS, generation_prompts

    prompts = generation_prompts("instructions", count=len(INSTRUCTIONS) + 2, seed=0, passages=[], opening_words=3)
    assert prompts[:2] == prompts[-2:] and set(prompts) == set(INSTRUCTIONS)
    with pytest.raises(ValueError, match="data.generated.prompts"):
        generation_prompts("tweets", count=1, seed=0, passages=["a b"], opening_words=1)
    with pytest.raises(ValueError, match="openings needs"):
        generation_prompts("openings", count=1, seed=0, passages=[], opening_words=1)


# --------------------------------------------------------------------------- study configs

# a study of llama.cpp's quant levels plans only where llama.cpp is installed (make setup-gguf): slow
@pytest.mark.parametrize("study", [pytest.param(p, marks=pytest.mark.slow) if "gguf_level" in p.read_text() else p
                                   for p in sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.yaml"))],
                         ids=lambda p: p.name)
def test_every_study_config_is_a_valid_plan_over_the_default_config(study):
    """A study is run as ``--configfile studies/<name>.yaml`` over config.yaml (Snakemake
    merges mappings and replaces lists); it must plan, and state its question and its
    pre-registered selection rule in comments."""
    import yaml
    from snakemake.utils import update_config

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    update_config(config, yaml.safe_load(study.read_text()))
    plan = build_plan(config)
    assert any(e.method != "none" for e in plan.recoveries.values())
    text = study.read_text()
    assert "QUESTION" in text and "SELECTION RULE" in text


# --------------------------------------------------------------------------- numeric failure

def test_training_refuses_to_save_an_adapter_whose_weights_went_non_finite(tiny_checkpoint, text_dir, tmp_path):
    """An infinite lr (which config validation refuses; here the training's own guard): the
    loss of the only step is finite, the update after it is not. The run is recorded as
    failed (a manifest, no weights), and loading it is refused naming the folder and why."""
    from compress_recover.io import read_json
    from compress_recover.recover.load import FailedAdapterError, load_recovered
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    manifest = run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "a"),
                            method_config={**LORA, "lr": float("inf")}, key="recovery.methods[1]",
                            text_dir=str(text_dir), steps=1, batch_size=2, seq_len=16,
                            runtime=Runtime(device="cpu", seed=0, threads=1))
    assert manifest["status"] == "failed" and manifest["failed_at_step"] == 1 and len(manifest["losses"]) == 1
    assert "NaN or infinite after step 1 (learning rate too high?)" in manifest["failure"]
    assert sorted(f.name for f in (tmp_path / "a").iterdir()) == ["manifest.json"]
    assert read_json(tmp_path / "a" / "manifest.json") == manifest and manifest["files_sha256"] == {}
    assert not list(tmp_path.glob(".a.tmp-*"))
    with pytest.raises(FailedAdapterError, match=r"a: its training failed \(.*after step 1 \(learning rate too"):
        load_recovered(tiny_checkpoint, tmp_path / "a", device="cpu")


def test_a_peft_adapter_without_safetensors_is_refused_naming_the_pickle(tmp_path):
    from compress_recover.recover.peft_adapter import load

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match=r"safetensors only.*adapter_model\.bin"):
        load(object(), tmp_path)


def test_evaluation_refuses_non_finite_log_likelihoods():
    from compress_recover.evaluate.evaluate import NonFiniteScoreError, check_finite_scores

    fine = {"capitals": [{"doc_id": 0, "filtered_resps": [[-1.5, False], [-0.5, True]]}]}
    check_finite_scores(fine, "m")
    broken = {"capitals": [{"doc_id": 0, "filtered_resps": [[-1.5, False]]},
                           {"doc_id": 7, "filtered_resps": [[float("nan"), False], [-0.5, True]]}]}
    with pytest.raises(NonFiniteScoreError, match="capitals document 7 was scored nan"):
        check_finite_scores(broken, "m")


def test_gradient_clipping_is_applied_and_recorded(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    def run(out, clip):
        return run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / out), method_config=LORA,
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=3, batch_size=2, seq_len=16,
                            gradient_clip=clip, runtime=Runtime(device="cpu", seed=0, threads=1))

    free, clipped = run("free", None), run("clipped", 1e-9)
    assert free["losses"][0] == clipped["losses"][0] and free["losses"][1:] != clipped["losses"][1:]
    assert (free["budget"]["gradient_clip"], clipped["budget"]["gradient_clip"]) == (None, 1e-9)


def test_a_peft_adapter_loads_in_the_models_dtype(tiny_llama_dir, tmp_path):
    """A float32 LoRA file put on a bfloat16 model is computed in bfloat16 (peft's default
    would keep it float32 and cast every adapted layer's input up and back)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from compress_recover.recover.peft_adapter import load

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                           LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    model.save_pretrained(tmp_path)
    loaded = load(AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16), tmp_path)
    lora = {n: p.dtype for n, p in loaded.named_parameters() if "lora_" in n}
    assert lora and set(lora.values()) == {torch.bfloat16}
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert loaded(ids).logits.dtype == torch.bfloat16
