"""Config validation: the schema and the plan's semantic checks (schema/dataclass agreement:
test_method_schema.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from compress_recover.compress import COMPRESSION
from compress_recover.config import build_plan
from compress_recover.recover import RECOVERY
from compress_recover.registry import ConfigError

from conftest import REPO

SCHEMA = str(REPO / "compress_recover" / "schema" / "config.schema.yaml")


def default_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, SCHEMA)
    return config


def test_default_config_is_valid_and_plans_the_issue_grid():
    plan = build_plan(default_config())
    recoveries = ["none", "lora.seed0", "prompt_tuning.seed0", "idp.seed0", "eora.seed0", "fewshot.seed0"]
    # the base model is recovered too (the format control), with the same methods and seed, except by
    # EoRA: the uncompressed model has no compression residual to correct
    assert plan.cells() == [("smollm2-135m", c, r) for c in ("none", "gptq-w3g64", "wanda-s50") for r in recoveries
                            if (c, r) != ("none", "eora.seed0")]
    assert plan.seeds == [0] and plan.recover_base
    assert default_config()["data"]["max_questions"] is None  # every question
    assert plan.tasks == ["capitals", "currencies", "city_country", "element_symbol", "element_name", "heldout_ppl"]



def test_the_fewshot_format_control_is_the_method_on_the_uncompressed_model():
    """Its evaluation reads the control folder (the other relations' demonstrations); the
    base model's plain evaluation and the method on a compressed model do not."""
    plan = build_plan(default_config())
    assert plan.format_control("none", "fewshot.seed0")
    assert not plan.format_control("gptq-w3g64", "fewshot.seed0")
    assert not plan.format_control("none", "none") and not plan.format_control("none", "lora.seed0")
    assert plan.control_shots() == plan.shots("fewshot.seed0") == 3
    config = default_config()
    config["recovery"]["recover_base"] = False
    assert build_plan(config).control_shots() == 0


@pytest.mark.parametrize("tasks, culprit", [(["capitals"], "capitals"),
                                            (["element_symbol", "element_name"], "element_symbol"),
                                            (["capitals", "city_country"], "capitals")])
def test_a_format_control_without_another_relation_is_refused_before_any_job(tasks, culprit):
    """Another relation: one that asks none of the task's facts (not an inverse, not the
    capitals asked again as cities); without one the plan names the task and recover_base."""
    config = default_config()
    config["data"]["knowledge_tasks"] = tasks
    config["report"]["attention_task"] = tasks[0]
    with pytest.raises(ConfigError, match=rf"recovery.recover_base: the few-shot format control of task {culprit}"):
        build_plan(config)
    config["recovery"]["recover_base"] = False  # no control: nothing to draw
    build_plan(config)
    config["recovery"]["recover_base"] = True
    config["data"]["knowledge_tasks"] = [*tasks, "currencies"]
    build_plan(config)


def test_schema_fills_defaults_for_missing_sections():
    config = {"models": {"m": {"source": "embedded"}}}
    validate(config, SCHEMA)
    assert config["compression"]["calibration"] == {"samples": 32, "seq_len": 256}
    assert config["recovery"]["budget"]["steps"] == 60
    assert config["evaluation"]["batch_size"] == 32
    assert config["recovery"]["seeds"] == [0] and config["recovery"]["recover_base"] is True
    assert config["report"]["noninferiority_margin"] == 0.1 and config["report"]["power"] == 0.8
    assert config["evaluation"]["idp_ablation"] is True
    build_plan(config)


@pytest.mark.parametrize("mutate, culprit", [
    (lambda c: c.update(sede=1), "sede"),
    (lambda c: c["compression"]["methods"][1].update(bitz=3), "bitz"),
    (lambda c: c["compression"]["methods"][1].update(bits=5), "bits"),
    (lambda c: c["models"]["smollm2-135m"].update(source="ftp"), "ftp"),
    (lambda c: c["models"].update({"Big": {"source": "embedded"}}), "Big"),
    (lambda c: c["models"].update({"x": {"source": "hub", "id": "a/b"}}), "revision"),
    (lambda c: c["recovery"]["methods"][1].update(rank=0), "rank"),
    (lambda c: c["data"].update(knowledge_tasks=["capitols"]), "capitols"),
    (lambda c: c.update(device="tpu"), "tpu"),
    (lambda c: c["recovery"].update(seeds=[]), "seeds"),
    (lambda c: c["recovery"].update(seeds=[0, 0]), "seeds"),
    (lambda c: c["recovery"].update(seeds=[-1]), "seeds"),
    (lambda c: c["recovery"].update(seeds=[1.5]), "seeds"),
    (lambda c: c["report"].update(noninferiority_margin=1.0), "noninferiority_margin"),
    (lambda c: c["report"].update(noninferiority_margin=-0.1), "noninferiority_margin"),
    (lambda c: c["report"].update(power=0), "power"),
    (lambda c: c["report"].update(power=1), "power"),
    (lambda c: c["evaluation"].update(idp_ablation="yes"), "idp_ablation"),
    (lambda c: c["data"].update(task_dirs=[{"path": ".", "tasks": ["t"], "knowledge": "yes"}]), "knowledge"),
])
def test_schema_rejects_bad_values_naming_the_key(mutate, culprit):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    mutate(config)
    with pytest.raises(WorkflowError, match=culprit):
        validate(config, SCHEMA)


def _plan_error(mutate) -> str:
    config = default_config()
    mutate(config)
    with pytest.raises(ConfigError) as err:
        build_plan(config)
    return str(err.value)


def test_duplicate_names_are_rejected():
    msg = _plan_error(lambda c: c["compression"]["methods"].append({"method": "gptq", "bits": 3, "group_size": 64,
                                                                     "damp_percent": 0.1}))
    assert "compression.methods[3]" in msg and "gptq-w3g64" in msg


def test_reserved_names_are_rejected():
    assert "reserved" in _plan_error(lambda c: c["models"].update({"data": {"source": "embedded"}}))
    msg = _plan_error(lambda c: c["recovery"]["methods"][1].update(name="none"))
    assert "recovery.methods[1]" in msg and "reserved" in msg


def test_missing_local_paths_are_named(tmp_path):
    missing = tmp_path / "nope"
    msg = _plan_error(lambda c: c["models"].update({"mine": {"source": "local", "path": str(missing)}}))
    assert "models.mine.path" in msg
    msg = _plan_error(lambda c: c["data"]["task_dirs"].append({"path": str(missing), "tasks": ["t"]}))
    assert "data.task_dirs[0].path" in msg


def test_custom_task_folder_must_define_the_task(tmp_path):
    (tmp_path / "t.yaml").write_text("task: my_task\ndataset_path: json\nprocess_docs: !function utils.f\n"
                                     "validation_split: dev\n")  # the default grid's few-shot run draws from it
    config = default_config()
    config["data"]["task_dirs"] = [{"path": str(tmp_path), "tasks": ["my_task"]}]
    assert build_plan(config).task_kind("my_task") == "custom"
    config["data"]["task_dirs"] = [{"path": str(tmp_path), "tasks": ["other"]}]
    with pytest.raises(ConfigError, match="other"):
        build_plan(config)


@pytest.mark.parametrize("registry", [COMPRESSION, RECOVERY])
def test_method_configs_reject_unknown_keys_and_wrong_types(registry):
    for name in registry.names():
        with pytest.raises(ConfigError, match="nonsense"):
            registry.parse({"method": name, "nonsense": 1}, "section[0]")
    with pytest.raises(ConfigError, match=r"section\[0\].method"):
        registry.parse({"method": "no-such-method"}, "section[0]")


def test_group_size_must_divide_the_known_model_width():
    msg = _plan_error(lambda c: c["compression"]["methods"].append({"method": "gptq", "bits": 4, "group_size": 128}))
    assert "compression.methods[3].group_size: 128 does not divide" in msg and "576" in msg
    msg = _plan_error(lambda c: c["compression"]["methods"].append({"method": "wanda", "n_m": "2:7"}))
    assert "compression.methods[3].n_m: 7 does not divide" in msg


def test_gptq_config_checks_ranges():
    with pytest.raises(ConfigError, match="bits"):
        COMPRESSION.parse({"method": "gptq", "bits": 5}, "compression.methods[1]")
    with pytest.raises(ConfigError, match="group_size"):
        COMPRESSION.parse({"method": "gptq", "group_size": 0}, "compression.methods[1]")
    with pytest.raises(ConfigError, match="bits"):
        COMPRESSION.parse({"method": "gptq", "bits": "4"}, "compression.methods[1]")
    assert COMPRESSION.parse({"method": "gptq", "bits": 3, "desc_act": True, "sym": False}, "k").slug() == \
        "gptq-w3g64-act-asym"


def test_every_schema_property_has_description_and_default():
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    missing = []

    def walk(node, path):
        for name, prop in (node.get("properties") or {}).items():
            if name in ("method", "name") or not prop or "$ref" in prop:
                continue
            if "description" not in prop or "default" not in prop:
                if path.endswith("task_dirs.items"):
                    pass  # required keys of a list item: no sensible default
                elif "description" in prop and "no default written" in prop["description"]:
                    pass  # added after runs existed: a default would rerun them (test_method_schema.py)
                else:
                    missing.append(f"{path}.{name}")
            walk(prop, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}.items")
            for branch in node["items"].get("allOf", []):
                walk(branch.get("then", {}), f"{path}.items")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*")

    walk(schema, "config")
    assert not missing, missing


def test_config_is_not_mutated_by_plan():
    config = default_config()
    before = copy.deepcopy(config)
    build_plan(config)
    assert config == before


def test_readme_paper_scale_config_is_valid():
    readme = (REPO / "docs" / "clusters.md").read_text()  # the paper-scale grid moved from README.md
    block = readme.split("## A paper-scale grid", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    config = yaml.safe_load(block)
    validate(config, SCHEMA)
    plan = build_plan(config)
    runs = len(plan.recoveries)  # 'none' and every training entry once per seed
    base = runs if plan.recover_base else 1
    assert len(plan.compressions) == 12 and len(plan.cells()) == 2 * (base + 11 * runs)


def test_objective_override_names_the_entry_and_needs_the_teacher():
    config = default_config()
    config["recovery"]["methods"] += [{"method": "lora", "objective": {"loss": "distill"}},
                                      {"method": "prompt_tuning", "objective": {"loss": "mix", "distill_weight": 0.3}}]
    validate(config, SCHEMA)
    plan = build_plan(config)
    assert plan.recoveries["lora.seed0"].objective.loss == "lm"
    assert plan.recoveries["lora-kd.seed0"].objective.needs_teacher
    assert plan.recoveries["prompt_tuning-mix0.3.seed0"].objective.distill_weight == 0.3
    assert "objective" not in plan.recoveries["lora-kd.seed0"].raw  # the method's own keys only
    # a config-wide objective renames every training entry
    config = default_config()
    config["recovery"]["objective"] = {"loss": "distill", "distill_weight": 0.5, "temperature": 1.0}
    assert "lora-kd.seed0" in build_plan(config).recoveries


def test_objective_on_method_none_is_refused():
    msg = _plan_error(lambda c: c["recovery"]["methods"][0].update(objective={"loss": "distill"}))
    assert "recovery.methods[0].objective" in msg


def test_a_method_unit_must_state_what_the_rest_of_the_code_needs():
    """A recovery unit without its loader or side is refused at registration, not at run time."""
    from dataclasses import dataclass

    from compress_recover.registry import MethodConfig, Registry

    @dataclass(frozen=True)
    class Half(MethodConfig):
        method = "half"
        entry_point = "somewhere:prepare"

    registry = Registry("recovery", required=("entry_point", "adapter_loader", "side"))
    with pytest.raises(ValueError, match=r"'half' does not set \['adapter_loader', 'side'\]"):
        registry.register(Half)

    @dataclass(frozen=True)
    class Sideways(Half):
        adapter_loader = "somewhere:load"
        side = "output"

    with pytest.raises(ValueError, match="side 'output'"):
        registry.register(Sideways)


@pytest.mark.parametrize("registry", [COMPRESSION, RECOVERY])
def test_every_registered_entry_point_resolves(registry):
    for name in registry.names():
        if name == "none":
            continue
        assert callable(registry[name].load())
        if registry is RECOVERY:
            assert callable(registry[name].adapter_loader())
            assert registry[name].side in ("parameters", "input")


def test_runtime_param_leaves_threads_to_the_job():
    from compress_recover.runtime import Runtime

    params = Runtime(device="cpu", dtype="float32", seed=3, trust_remote_code=False).params()
    assert params == {"device": "cpu", "dtype": "float32", "seed": 3, "trust_remote_code": False}
    runtime = Runtime.from_params(params, threads=2)
    assert runtime.threads == 2 and runtime.seed == 3
    started = Runtime(device="auto", threads=1).start()
    assert started.device in ("cpu", "cuda")
    with pytest.raises(ValueError, match="dtype"):
        Runtime(dtype="float64")
    with pytest.raises(ValueError, match="threads"):
        Runtime(threads=0)


def test_every_training_entry_runs_once_per_seed():
    config = default_config()
    config["recovery"]["seeds"] = [3, 1]
    config["recovery"]["methods"].append({"method": "lora", "rank": 4, "objective": {"loss": "distill"}})
    validate(config, SCHEMA)
    plan = build_plan(config)
    # EoRA's result does not depend on the seed: it runs once, on the first seed
    assert list(plan.recoveries) == ["none", "lora.seed3", "lora.seed1", "prompt_tuning.seed3",
                                     "prompt_tuning.seed1", "idp.seed3", "idp.seed1", "eora.seed3",
                                     "fewshot.seed3", "fewshot.seed1", "lora-kd.seed3", "lora-kd.seed1"]
    none, run = plan.recoveries["none"], plan.recoveries["lora-kd.seed1"]
    assert (none.group, none.seed, none.slug) == ("none", None, "none")
    assert (run.group, run.seed, run.slug, run.method) == ("lora-kd", 1, "lora-kd.seed1", "lora")
    assert run.key == "recovery.methods[6]" and run.raw["rank"] == 4 and "objective" not in run.raw
    # the runs of one entry differ by their seed only
    a, b = plan.recoveries["idp.seed3"], plan.recoveries["idp.seed1"]
    assert (a.raw, a.config, a.objective, a.key) == (b.raw, b.config, b.objective, b.key)
    assert plan.groups() == {"none": "none", "lora": "lora", "prompt_tuning": "prompt_tuning", "idp": "idp",
                             "eora": "eora", "fewshot": "fewshot", "lora-kd": "lora"}
    per_compressed_model = 1 + 5 * 2 + 1  # none, five seeded entries per seed, EoRA once
    assert len(plan.cells()) == 3 * per_compressed_model - 1  # no EoRA on the uncompressed model


def test_a_name_with_a_seed_mark_is_refused():
    msg = _plan_error(lambda c: c["recovery"]["methods"][1].update(name="lora.seed7"))
    assert "recovery.methods[1].name" in msg and ".seed" in msg
    msg = _plan_error(lambda c: c["recovery"]["methods"][0].update(name="plain.seeds"))
    assert "recovery.methods[0].name" in msg
    # a plain custom name is fine, and its runs carry it
    config = default_config()
    config["recovery"]["methods"][1]["name"] = "lora-r8"
    assert build_plan(config).recoveries["lora-r8.seed0"].group == "lora-r8"


def test_seeds_are_checked_by_the_plan_too():
    assert "recovery.seeds" in _plan_error(lambda c: c["recovery"].update(seeds=[0, 0]))
    assert "recovery.seeds" in _plan_error(lambda c: c["recovery"].update(seeds=[True]))
    assert "recovery.seeds" in _plan_error(lambda c: c["recovery"].update(seeds=[]))


@pytest.mark.parametrize("key, value", [("noninferiority_margin", float("nan")), ("power", float("inf")),
                                        ("power", 1.0), ("noninferiority_margin", 1.0), ("alpha", float("nan"))])
def test_report_numbers_must_be_finite_and_in_range(key, value):
    """A YAML .nan passes a JSON-schema range check: the plan refuses it, naming the key."""
    assert f"report.{key}" in _plan_error(lambda c: c["report"].update({key: value}))


def test_recover_base_false_keeps_the_base_model_unrecovered():
    config = default_config()
    config["recovery"]["recover_base"] = False
    cells = build_plan(config).cells()
    assert [r for _, c, r in cells if c == "none"] == ["none"] and len(cells) == 1 + 2 * 6


def _task_folder(folder: Path, name: str, output_type: str | None, include: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # a few-shot split, which the default grid's few-shot run needs (test_training_free.py tests its absence)
    body = "dataset_path: json\ndoc_to_text: '{{q}}'\nfewshot_split: train\n"
    if output_type:
        body += f"output_type: {output_type}\n"
    if include:
        (folder / "_base.yaml").write_text(body)
        body = "include: _base.yaml\n"
    (folder / f"{name}.yaml").write_text(f"task: {name}\n{body}")
    return folder


def test_custom_knowledge_tasks_are_knowledge_tasks(tmp_path):
    mc = _task_folder(tmp_path / "mc", "my_facts", None, include=True)
    (mc / "_base.yaml").write_text((mc / "_base.yaml").read_text() + "output_type: multiple_choice\n")
    gen = _task_folder(tmp_path / "gen", "my_gen", "generate_until")
    config = default_config()
    config["data"]["task_dirs"] = [{"path": str(mc), "tasks": ["my_facts"], "knowledge": True},
                                   {"path": str(gen), "tasks": ["my_gen"]}]
    validate(config, SCHEMA)
    plan = build_plan(config)
    assert plan.task_kind("my_facts") == "knowledge" and plan.task_kind("my_gen") == "custom"
    assert plan.knowledge() == [*plan.knowledge_tasks, "my_facts"]
    assert "my_facts" not in plan.knowledge_tasks  # the built tasks (leak filter, rule knowledge_task)
    assert plan.custom_tasks["my_facts"] == str(mc)
    # a knowledge task must be multiple choice: generate_until, the unset default, and a group are refused
    for i, (folder, task) in enumerate([(gen, "my_gen"), (_task_folder(tmp_path / "bare", "bare", None), "bare")]):
        config["data"]["task_dirs"] = [{"path": str(mc), "tasks": ["my_facts"]},
                                       {"path": str(folder), "tasks": [task], "knowledge": True}]
        with pytest.raises(ConfigError, match=rf"data\.task_dirs\[1\]\.knowledge: task '{task}'.*multiple_choice"):
            build_plan(config)
    (tmp_path / "grp").mkdir()
    (tmp_path / "grp" / "g.yaml").write_text("group: my_group\ntask: [my_facts]\n")
    config["data"]["task_dirs"] = [{"path": str(tmp_path / "grp"), "tasks": ["my_group"], "knowledge": True}]
    with pytest.raises(ConfigError, match=r"data\.task_dirs\[0\]\.knowledge: task 'my_group' is a group"):
        build_plan(config)
