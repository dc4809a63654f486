"""Nothing wrong gets through: every bad input of this table is refused before any job
starts, with the message the user sees (the row's id says what was tried).

Each row starts from the default config.yaml, schema-validated as Snakemake does (so
defaults are filled in), then changes one thing and calls the plan, whose checks hold
even where the schema lets a value through (YAML's .nan and .inf pass every JSON-schema
range check)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from compress_recover.config import build_plan
from compress_recover.registry import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "compress_recover/schema/config.schema.yaml")
NAN, INF = float("nan"), float("inf")


def default_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, SCHEMA)
    return config


def _method(config, method):
    return next(m for m in config["recovery"]["methods"] if m["method"] == method)


def _set(*path):
    """A change: set config[path[0]]...[path[-2]] = path[-1]."""
    *keys, value = path

    def change(config):
        node = config
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


def _tasks_folder(tmp_path, yaml_text):
    folder = tmp_path / "my_tasks"
    folder.mkdir()
    (folder / "broken.yaml").write_text(yaml_text)
    return folder


ROWS = {
    # every number finite
    "lora alpha nan": (lambda c: _method(c, "lora").update(alpha=NAN), r"recovery\.methods\[1\]\.alpha: nan must be a finite"),
    "report alpha nan": (_set("report", "alpha", NAN), r"report\.alpha: nan must be a finite"),
    "objective temperature nan": (_set("recovery", "objective", "temperature", NAN),
                                  r"recovery\.objective\.temperature: nan must be a finite"),
    "lora lr inf": (lambda c: _method(c, "lora").update(lr=INF), r"recovery\.methods\[1\]\.lr: inf must be a finite"),
    "gptq damp -inf": (lambda c: c["compression"]["methods"][1].update(damp_percent=-INF),
                       r"compression\.methods\[1\]\.damp_percent: -inf must be a finite"),
    "dev fraction nan": (_set("data", "split", "dev_fraction", NAN), r"data\.split\.dev_fraction: nan"),
    # grids that cannot give a verdict
    "no none compression": (lambda c: c["compression"]["methods"].pop(0),
                            r"compression\.methods: add \{method: none\}"),
    "only none compression": (_set("compression", "methods", [{"method": "none"}]),
                              r"compression\.methods: only 'none' is listed.*add one of"),
    "no none recovery": (lambda c: c["recovery"]["methods"].pop(0), r"recovery\.methods: add \{method: none\}"),
    "only none recovery": (_set("recovery", "methods", [{"method": "none"}]), r"recovery\.methods: only 'none'"),
    # names that collide with the pipeline's own folders
    "model named analysis": (lambda c: c["models"].update(analysis=c["models"].pop("smollm2-135m")),
                             r"models\.analysis: the model name 'analysis' is reserved"),
    "model named figures": (lambda c: c["models"].update(figures={"source": "embedded"}), r"models\.figures.*reserved"),
    "model named summary.csv": (lambda c: c["models"].update({"summary.csv": {"source": "embedded"}}),
                                r"models\.summary\.csv.*reserved"),
    "gptq group size 0": (lambda c: c["compression"]["methods"][1].update(group_size=0),
                          r"compression\.methods\[1\]\.group_size: 0 must be -1 \(per channel\) or >= 8"),
    "name with .step": (lambda c: _method(c, "lora").update(name="lora.step5"), r"contains '\.step'"),
    # hub models pinned to a commit
    "hub revision main": (_set("models", "hub", {"source": "hub", "id": "HuggingFaceTB/SmolLM2-360M-Instruct",
                                                 "revision": "main"}),
                          r"models\.hub\.revision: 'main' is not a commit sha.*allow_floating_revision"),
    "hub revision short sha": (_set("models", "hub", {"source": "hub", "id": "a/b", "revision": "abc1234"}),
                               r"models\.hub\.revision: 'abc1234' is not a commit sha"),
    # values that would fail inside a job
    "perplexity without held-out text": (_set("data", "text", "heldout_fraction", 0.0),
                                         r"data\.text\.heldout_fraction: 0\.0 holds out no text"),
    "corpus file without path": (_set("data", "text", "corpus", "file"), r"data\.text\.path: corpus 'file' needs"),
    "prompt longer than the context": (lambda c: _method(c, "prompt_tuning").update(num_virtual_tokens=100000),
                                       r"recovery\.methods\[2\]\.num_virtual_tokens: 100000 prompt positions \+ 128 "
                                       r"tokens.*context of 8192"),
    "idp pool longer than the context": (lambda c: _method(c, "idp").update(pool_size=2000, num_virtual_tokens=5),
                                         r"recovery\.methods\[3\]\.num_virtual_tokens: 10000 prompt positions"),
    "budget steps repeated": (_set("recovery", "budget", "steps", [60, 60]), r"recovery\.budget\.steps.*repeats"),
    "unknown held-out task": (_set("data", "split", "held_out_tasks", ["atlantis"]),
                              r"data\.split\.held_out_tasks: \['atlantis'\]"),
    "unknown text choice": (lambda c: _method(c, "lora").update(text="web"), r"recovery\.methods\[1\]\.text: 'web'"),
    # round 2 (issue 27): limits the model sets, checked against the model at plan time
    "lora rank above the layers' widths": (lambda c: _method(c, "lora").update(rank=100000),
                                           r"recovery\.methods\[1\]\.rank: 100000 exceeds model 'smollm2-135m''s "
                                           r"q_proj \(576 -> 576\), whose rank is at most 576"),
    "lora rank above k_proj's output": (lambda c: _method(c, "lora").update(rank=200),
                                        r"recovery\.methods\[1\]\.rank: 200 exceeds .*k_proj \(576 -> 192\)"),
    "eora rank above the layers' widths": (lambda c: _method(c, "eora").update(rank=1000),
                                           r"recovery\.methods\[\d\]\.rank: 1000 exceeds model 'smollm2-135m'"),
    "idp selection layers past the model": (lambda c: _method(c, "idp").update(selection_layers=99),
                                            r"recovery\.methods\[3\]\.selection_layers: 99 is not below model "
                                            r"'smollm2-135m''s 30 layers; use 1 to 29"),
    "float16 on a cpu": (lambda c: c.update(device="cpu", dtype="float16"),
                         r"dtype: float16 on device: cpu .*use bfloat16"),
    # names that do not fit the filesystem, or that Snakemake would skip
    "model name of 300 characters": (lambda c: c["models"].update({"ab" * 75 + "c" * 150: {"source": "embedded"}}),
                                     r"models\.ababab.*a file name of 300 bytes .*limit is 255"),
    "recovery name too long with its suffixes": (lambda c: _method(c, "lora").update(name="l" + "x-y" * 80),
                                                 r"recovery\.methods\[1\]: the name .*\.benchmark\.tsv"),
    "model name repeating one letter": (lambda c: c["models"].update({"m" * 30: {"source": "embedded"}}),
                                        r"models\.m{30}: the name 'm+' ends in one piece repeated 20 times or more"),
    # round 3 (issue 39): the plan knows the model's modules and the data's limits
    "lora target module the model lacks": (lambda c: _method(c, "lora").update(target_modules=["nonexistent_proj"]),
                                           r"recovery\.methods\[1\]\.target_modules: \['nonexistent_proj'\] name no "
                                           r"linear module of model 'smollm2-135m', a 'llama' decoder whose layers' "
                                           r"linear modules are \['q_proj', .*'down_proj'\]"),
    "eora target module the model lacks": (lambda c: _method(c, "eora").update(target_modules=["q_proj", "qproj"]),
                                           r"recovery\.methods\[4\]\.target_modules: \['qproj'\] name no linear "
                                           r"module"),
    "few-shot without dev questions": (_set("data", "split", "dev_fraction", 0),
                                       r"data\.split\.dev_fraction: 0 puts every question of the built knowledge "
                                       r"tasks in test, so recovery\.methods\[5\] \(k: 3\) has no dev question"),
    "few-shot k above the dev pools": (lambda c: _method(c, "fewshot").update(k=1000),
                                       r"recovery\.methods\[5\]\.k: 1000 demonstrations per question, but a question "
                                       r"of built knowledge task element_name is allowed only 27 .*the largest k "
                                       r"allowed is 27$"),
    "few-shot on a held-out task": (_set("data", "split", "held_out_tasks", ["element_name"]),
                                    r"recovery\.methods\[5\]\.k: 3 demonstrations per question, but built knowledge "
                                    r"task element_name has no dev question \(.*held_out_tasks \['element_name'\]"),
    "few-shot remedy beside evaluation.num_fewshot": (_set("evaluation", "num_fewshot", 3),
                                                      r"evaluation\.num_fewshot: 3 with recovery\.methods\[5\]\.k: 3: "
                                                      r"every other run.*scored 3-shot too.*equals it \(its recovery 0 "
                                                      r"by construction\)"),
    "evaluation.num_fewshot above the dev pools": (lambda c: (c["recovery"]["methods"].pop(5),
                                                              c["evaluation"].update(num_fewshot=1000)),
                                                   r"evaluation\.num_fewshot: 1000 demonstrations per question, but "
                                                   r".*element_name.*the most allowed is 27"),
    "budget steps out of order": (_set("recovery", "budget", "steps", [60, 30]),
                                  r"recovery\.budget\.steps: \[60, 30\] is not in increasing order; write \[30, 60\]"),
}


@pytest.mark.parametrize("change, message", list(ROWS.values()), ids=list(ROWS))
def test_a_bad_input_is_refused_before_any_job_naming_its_key(change, message):
    config = default_config()
    change(config)
    with pytest.raises(ConfigError, match=message):
        build_plan(config)


def test_each_limit_refused_above_is_accepted_at_it():
    """The rows of issue 39 refuse just past the limit: k at the largest allowed plans, a
    sorted budget plans, and a hub model's module names, unknown before download, are left
    to the job (peft refuses a list that matches nothing)."""
    config = default_config()
    _method(config, "fewshot").update(k=27)
    config["recovery"]["budget"]["steps"] = [30, 60]
    plan = build_plan(config)
    assert plan.budget_steps == [30, 60] and plan.demonstration_limit(control=True)[0] == 27
    hub = default_config()
    hub["models"] = {"hub": {"source": "hub", "id": "a/b", "revision": "0" * 40}}
    _method(hub, "lora").update(target_modules=["nonexistent_proj"])
    hub["recovery"]["methods"].pop(5)  # the few-shot run (its limit: above)
    build_plan(hub)


def test_the_plans_demonstration_limit_is_the_few_shot_jobs(tmp_path):
    """Counted at plan time from the packaged facts, the limit is exactly what rule
    fewshot_task allows the built tasks: at it the job builds, one above it refuses (own
    dev questions and the format control's pool alike)."""
    from compress_recover.data.fewshot_task import build_fewshot_task, planned_demonstration_limits
    from compress_recover.data.knowledge_task import build_knowledge_task

    tasks, split = ["capitals", "element_symbol", "element_name"], {"dev_fraction": 0.3, "seed": 1}
    folders = {t: str(tmp_path / t) for t in tasks}
    for task in tasks:
        build_knowledge_task(task=task, out_dir=folders[task], num_choices=3, seed=2, max_questions=30)
    limits = planned_demonstration_limits(tasks, num_choices=3, seed=2, max_questions=30, max_answer_presence=0.5,
                                          split=split)
    for task in tasks:
        own, control = limits[task]["own"], limits[task]["control"]
        assert 0 < own and 0 < control
        out = {"out_dir": str(tmp_path / "f" / task), "control_dir": str(tmp_path / "c" / task)}
        build_fewshot_task(task=task, task_dirs=folders, split=split, shots=own, control_shots=control, **out)
        with pytest.raises(ValueError, match=rf"{own + 1} demonstrations per question asked.*has only {own} "):
            build_fewshot_task(task=task, task_dirs=folders, split=split, shots=own + 1, **out)
        with pytest.raises(ValueError, match=rf"has only {control} allowed in the other tasks'"):
            build_fewshot_task(task=task, task_dirs=folders, split=split, shots=own, control_shots=control + 1, **out)


def test_a_malformed_task_yaml_is_a_config_error_naming_the_file(tmp_path):
    config = default_config()
    folder = _tasks_folder(tmp_path, "task: broken\n  output_type: [unclosed\n")
    config["data"]["task_dirs"] = [{"path": str(folder), "tasks": ["broken"], "knowledge": False}]
    with pytest.raises(ConfigError, match=r"data\.task_dirs: .*broken\.yaml is not valid YAML"):
        build_plan(config)


def test_an_explicitly_floating_hub_revision_is_accepted_and_the_report_says_it_is_not_reproducible():
    from compress_recover.aggregate.report import ReportInputs, render_section

    def _floating_revision_html(config):
        return render_section("floating_revision", ReportInputs(results=None, figures={}, costs=[], config=config,
                                                                knowledge_tasks=[]))

    config = default_config()
    config["models"]["hub"] = {"source": "hub", "id": "a/b", "revision": "main", "allow_floating_revision": True}
    build_plan(config)
    assert "Not reproducible" in _floating_revision_html(config) and "hub at main" in _floating_revision_html(config)
    pinned = {"models": {"hub": {"source": "hub", "id": "a/b", "revision": "0" * 40}}}
    assert _floating_revision_html(pinned) == ""


def _numeric_fields(node, path=()):
    """(path, schema) of every numeric property of the schema (method branches included)."""
    for name, prop in (node.get("properties") or {}).items():
        if not isinstance(prop, dict) or "$ref" in prop:
            continue
        kinds = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
        if {"number", "integer"} & set(kinds):
            yield (*path, name), prop
        yield from _numeric_fields(prop, (*path, name))
    for branch in (node.get("items") or {}).get("allOf", []):
        yield from _numeric_fields(branch.get("then", {}), (*path, "[]"))


def _schema_rejects(prop: dict, value) -> bool:
    import jsonschema

    return not jsonschema.Draft7Validator(prop).is_valid(value)


NUMERIC = list(_numeric_fields(yaml.safe_load(Path(SCHEMA).read_text())))


@pytest.mark.parametrize("value", [0, -1], ids=["zero", "negative"])
def test_every_numeric_schema_field_states_its_range_and_refuses_values_below_it(value):
    """Walk every numeric field of the schema: each states a lower bound, and 0 and negatives
    are refused wherever it says so (NaN and infinities: the next test)."""
    assert len(NUMERIC) > 40
    unbounded = [".".join(p) for p, prop in NUMERIC if not {"minimum", "exclusiveMinimum", "enum", "oneOf"} & set(prop)]
    assert unbounded == [], f"numeric fields without a lower bound: {unbounded}"
    for path, prop in NUMERIC:
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        if low is None:  # an enum (bits) or a choice of forms (budget steps): checked elsewhere
            continue
        allowed = value > low or (value == low and "minimum" in prop)
        assert _schema_rejects(prop, value) == (not allowed), ".".join(path)


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_every_numeric_field_refuses_nan_and_infinities(value):
    """Every numeric field of the schema outside the method lists (those: the rows above), set
    to NaN or an infinity in the default config, is refused by the plan naming its key."""
    config = default_config()
    checked = 0
    for path, _ in NUMERIC:
        if "[]" in path:
            continue
        broken = copy.deepcopy(config)
        node = broken
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        with pytest.raises(ConfigError, match=rf"^{'.'.join(path)}: .* must be a finite number"):
            build_plan(broken)
        checked += 1
    assert checked > 25


@pytest.mark.parametrize("method_config, runner, message", [
    ({"method": "lora", "rank": 100000}, "recover", r"recovery\.methods\[1\]\.rank: 100000 exceeds model '.*checkpoint'"),
    ({"method": "idp", "selection_layers": 99}, "recover", r"recovery\.methods\[1\]\.selection_layers: 99 is not below"),
    ({"method": "eora", "rank": 100000}, "compute", r"recovery\.methods\[1\]\.rank: 100000 exceeds"),
    ({"method": "prompt_tuning", "num_virtual_tokens": 1000}, "recover",
     r"recovery\.methods\[1\]\.num_virtual_tokens: 1000 prompt positions \+ 16 tokens .*context of 512 positions"),
])
def test_a_model_limit_unknown_at_plan_time_fails_in_the_job_naming_the_key(tiny_checkpoint, text_dir, tmp_path,
                                                                           method_config, runner, message):
    """A hub or GGUF model's shape is known only once downloaded: the job that reads the
    checkpoint checks it first, before any training or computing, and writes nothing."""
    from compress_recover.recover.compute import run_compute
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    out = tmp_path / "adapter"
    runtime = Runtime(device="cpu", seed=0, threads=1)
    with pytest.raises(ConfigError, match=message):
        if runner == "recover":
            run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(out), method_config=method_config,
                         key="recovery.methods[1]", text_dir=str(text_dir), steps=1, batch_size=2, seq_len=16,
                         runtime=runtime)
        else:
            run_compute(checkpoint_dir=str(tiny_checkpoint), out_dir=str(out), method_config=method_config,
                        key="recovery.methods[1]", runtime=runtime, text_dir=str(text_dir))
    assert not out.exists()


def test_a_request_served_with_less_is_recorded_and_shown(tiny_checkpoint, text_dir, tmp_path):
    """Calibration blocks and questions the input cannot supply: the job serves what there is,
    warns, records it in its manifest, and the report's data section lists it."""
    from compress_recover.aggregate.report.costs import shortfalls
    from compress_recover.compress.compress import run_compression
    from compress_recover.data.facts import RELATIONS
    from compress_recover.data.knowledge_task import build_knowledge_task
    from compress_recover.runtime import Runtime

    checkpoint = tmp_path / "magnitude"
    manifest = run_compression(model_dir=str(tiny_checkpoint), out_dir=str(checkpoint),
                               method_config={"method": "wanda", "sparsity": 0.5}, key="compression.methods[1]",
                               text_dir=str(text_dir), calibration_samples=1_000_000, calibration_seq_len=32,
                               runtime=Runtime(device="cpu", seed=0, threads=1))
    (short,) = manifest["shortfalls"]
    served = manifest["calibration"]["samples"]
    assert short == {"key": "compression.calibration.samples", "what": "calibration blocks", "asked": 1_000_000,
                     "served": served} and 0 < served < 1_000_000
    task = tmp_path / "capitals"
    facts = len({f.subject for f in RELATIONS["capitals"].load()})
    built = build_knowledge_task(task="capitals", out_dir=str(task), num_choices=4, seed=0, max_questions=100_000)
    assert built["shortfalls"][0]["key"] == "data.max_questions" and built["shortfalls"][0]["served"] <= facts
    shown = shortfalls([str(checkpoint), str(task), str(tmp_path / "missing")])
    assert shown["head"] == ["folder", "config key", "what", "asked", "served"]
    assert [r[1] for r in shown["rows"]] == ["compression.calibration.samples", "data.max_questions"]
    assert shown["rows"][0][3:] == ["1000000", str(served)]
    # a full request records nothing
    full = build_knowledge_task(task="capitals", out_dir=str(tmp_path / "few"), num_choices=4, seed=0, max_questions=5)
    assert full["shortfalls"] == [] and shortfalls([str(tmp_path / "few")]) is None


def _neox(tmp_path) -> dict:
    """The default config on one local model of another family (a GPT-NeoX config.json)."""
    import json

    folder = tmp_path / "neox"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "hidden_size": 64,
                                                    "intermediate_size": 256, "num_attention_heads": 4,
                                                    "num_hidden_layers": 2, "max_position_embeddings": 512}))
    config = default_config()
    config["models"] = {"neox": {"source": "local", "path": str(folder)}}
    config["compression"]["methods"] = [{"method": "none"}, {"method": "gptq", "bits": 4, "group_size": 32}]
    config["recovery"]["methods"] = [{"method": "none"}, {"method": "prompt_tuning"}]
    config["report"]["attention_analysis"] = False
    return config


@pytest.mark.parametrize("change, message", [
    (lambda c: c["recovery"]["methods"].append({"method": "idp"}),
     r"recovery\.methods\[2\]: method 'idp' runs its own forward pass through a Llama-style decoder .*model "
     r"'neox' is 'gpt_neox'"),
    (lambda c: c["compression"]["methods"].append({"method": "wanda", "sparsity": 0.5}),
     r"compression\.methods\[2\]: method 'wanda' prunes the linear layers of a Llama-style decoder .*'gpt_neox'"),
    (lambda c: c["recovery"]["methods"].append({"method": "lora"}),
     r"recovery\.methods\[2\]\.target_modules: \['q_proj', .*are Llama's projection names; model 'neox' is "
     r"'gpt_neox': name its own linear modules"),
    (lambda c: c["report"].update(attention_analysis=True),
     r"report\.attention_analysis: the attention analysis walks a Llama-style decoder .*'gpt_neox'"),
], ids=["idp", "pruning", "lora default targets", "attention analysis"])
def test_a_method_that_cannot_walk_another_family_is_refused_at_plan_time(tmp_path, change, message):
    config = _neox(tmp_path)
    build_plan(config)  # GPTQ and prompt tuning do not walk the decoder themselves: accepted
    change(config)
    with pytest.raises(ConfigError, match=message):
        build_plan(config)
