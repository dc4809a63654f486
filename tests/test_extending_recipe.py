"""docs/extending.md's recipe "A new method", followed on toys.

Three toy methods live in a package of their own, written to a temporary folder and put on
``sys.path``, as a newcomer's would live in ``compress_recover/compress/`` and
``compress_recover/recover/``:

- ``toyround``, a compression: every decoder linear weight rounded to a grid of ``step``;
- ``toyzero``, a training-free recovery: a PEFT LoRA adapter whose B matrices are zero,
  so it changes nothing;
- ``toyia3``, a trained recovery: peft's IA3 scaling vectors, trained by the shared loop.

Each step of the recipe is taken as the page says: (1) the config dataclass with its class
attributes, (2) the module with its entry points, (3) the ``register`` line (a fixture
registers the toys and takes them out again, so no other test sees them), (4) the schema
branch (on a copy of the schema: the test checks that the branch the page describes passes
``tests/test_method_schema.py``'s comparison and validates a config; the plan is then built
with the toys in it). The entry points are called the way the rule scripts call them,
through the package functions (``run_compression``, ``run_compute``, ``run_recovery``),
and what they write is loaded through ``compress_recover.recover.load.load_recovered``, the
evaluation's loader. The Snakemake side (the rules ``compress_<method>``,
``compute_<method>`` and ``recover_<method>`` existing by themselves, with their jobs in
the DAG) is the slow test at the end: a dry run through Snakemake's Python API. The jobs
themselves are not run: a rule's script runs in a process of its own, which cannot see a
toy registered by the test.
"""

from __future__ import annotations

import copy
import sys
import textwrap

import pytest
import torch
import yaml

from compress_recover.compress import COMPRESSION
from compress_recover.recover import RECOVERY
from compress_recover.registry import ConfigError, MethodConfig, Registry
from compress_recover.runtime import Runtime
from conftest import REPO

CPU = Runtime(device="cpu", threads=1, seed=0)
PACKAGE = "recipe_toys"  # the toys' package: a name no other test uses

# (1) the config dataclasses and (2) the modules with the entry points, as the recipe says.
TOY_FILES = {
    "__init__.py": "",
    "toyround_config.py": '''
        from dataclasses import dataclass

        from compress_recover.registry import ConfigError, MethodConfig


        @dataclass(frozen=True)
        class RoundConfig(MethodConfig):
            """Every decoder linear weight rounded to a multiple of ``step``."""

            method = "toyround"
            entry_point = "recipe_toys.toyround:compress"
            uses_calibration = False
            step: float = 0.0625

            def slug(self) -> str:
                return self.name or f"toyround-{self.step:g}"

            def check(self, key: str) -> None:
                if not self.step > 0:
                    raise ConfigError(f"{key}.step: {self.step} must be > 0")
        ''',
    "toyround.py": '''
        def compress(*, model_dir, out_dir, config, calibration, device, seed, dtype="float32"):
            import torch
            from transformers import AutoModelForCausalLM

            from compress_recover.runtime import torch_dtype

            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype(dtype), use_safetensors=True)
            rounded = 0
            with torch.no_grad():
                for name, module in model.named_modules():
                    if isinstance(module, torch.nn.Linear) and ".layers." in name:
                        module.weight.copy_(torch.round(module.weight / config.step) * config.step)
                        rounded += 1
            model.save_pretrained(out_dir, safe_serialization=True)
            return model, {"rounded_layers": rounded}
        ''',
    "toyzero_config.py": '''
        from dataclasses import dataclass, field

        from compress_recover.registry import ConfigError, MethodConfig


        @dataclass(frozen=True)
        class ZeroConfig(MethodConfig):
            """A LoRA adapter whose B matrices are zero: it changes nothing."""

            method = "toyzero"
            entry_point = "recipe_toys.toyzero:compute"
            adapter_loader = "compress_recover.recover.peft_adapter:load"
            side = "parameters"
            mergeable = True
            trained = False
            seeded = False
            rank: int = 2
            target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

            def check(self, key: str) -> None:
                if self.rank < 1:
                    raise ConfigError(f"{key}.rank: {self.rank} must be >= 1")
                if not self.target_modules:
                    raise ConfigError(f"{key}.target_modules: name at least one module")
        ''',
    "toyzero.py": '''
        def compute(*, config, key, checkpoint_dir, runtime, **_):
            from peft import LoraConfig, get_peft_model

            from compress_recover.modeling import load_model

            model, _ = load_model(checkpoint_dir, device=runtime.device, weights="dense")
            lora = LoraConfig(r=config.rank, lora_alpha=config.rank, target_modules=list(config.target_modules))
            return get_peft_model(model, lora), {"note": "B = 0: the adapter changes nothing"}  # peft's B starts at 0
        ''',
    "toyia3_config.py": '''
        from dataclasses import dataclass, field

        from compress_recover.registry import ConfigError, MethodConfig


        @dataclass(frozen=True)
        class IA3Config(MethodConfig):
            """peft's IA3: learned scaling vectors on some projections."""

            method = "toyia3"
            entry_point = "recipe_toys.toyia3:prepare"
            adapter_loader = "recipe_toys.toyia3:load"
            side = "parameters"
            mergeable = True
            target_modules: list[str] = field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])
            lr: float = 0.05
            weight_decay: float = 0.0

            def check(self, key: str) -> None:
                if not self.lr > 0:
                    raise ConfigError(f"{key}.lr: {self.lr} must be > 0")
                if self.weight_decay < 0:
                    raise ConfigError(f"{key}.weight_decay: {self.weight_decay} must be >= 0")
                if not self.target_modules:
                    raise ConfigError(f"{key}.target_modules: name at least one module")
        ''',
    "toyia3.py": '''
        def prepare(model, config, seed):
            from peft import IA3Config, get_peft_model

            feedforward = [m for m in config.target_modules if m in ("down_proj", "up_proj", "gate_proj")]
            return get_peft_model(model, IA3Config(target_modules=list(config.target_modules),
                                                   feedforward_modules=feedforward))


        def load(model, adapter_dir):
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
            model.eval()
            return model
        ''',
}
# (4) the schema branches, as the recipe describes them (fields = the dataclass's)
BRANCHES = {
    ("compression", "toyround"): {"method": {}, "name": {}, "recover": {},
                                  "step": {"type": "number", "exclusiveMinimum": 0, "default": 0.0625,
                                           "description": "Grid step of the rounded weights."}},
    ("recovery", "toyzero"): {"method": {}, "name": {},
                              "rank": {"type": "integer", "minimum": 1, "default": 2, "description": "LoRA rank."},
                              "target_modules": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                                 "default": ["q_proj", "v_proj"],
                                                 "description": "Modules that get the adapter."}},
    ("recovery", "toyia3"): {"method": {}, "name": {}, "objective": {"$ref": "#/$defs/objective_override"},
                             "text": {"$ref": "#/$defs/text_override"},
                             "target_modules": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                                "default": ["k_proj", "v_proj", "down_proj"],
                                                "description": "Modules that get scaling vectors."},
                             "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.05,
                                    "description": "AdamW learning rate."},
                             "weight_decay": {"type": "number", "minimum": 0, "default": 0.0,
                                              "description": "AdamW weight decay."}},
}
REGISTRIES = {"compression": COMPRESSION, "recovery": RECOVERY}
IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 300, 11]])


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    """(3) The toys registered, as one ``register`` line each in the stage's __init__.py
    would; taken out again afterwards (registries, sys.path, sys.modules)."""
    root = tmp_path_factory.mktemp("toys")
    (root / PACKAGE).mkdir()
    for name, source in TOY_FILES.items():
        (root / PACKAGE / name).write_text(textwrap.dedent(source).lstrip())
    sys.path.insert(0, str(root))
    from recipe_toys.toyia3_config import IA3Config
    from recipe_toys.toyround_config import RoundConfig
    from recipe_toys.toyzero_config import ZeroConfig

    classes = {"toyround": RoundConfig, "toyzero": ZeroConfig, "toyia3": IA3Config}
    registered = []
    try:
        for section, method in BRANCHES:
            REGISTRIES[section].register(classes[method])
            registered.append((section, method))
        yield classes
    finally:
        for section, method in registered:
            REGISTRIES[section].unregister(method)
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[module]


def _schema_with_toys() -> dict:
    """(4) A copy of the schema with each toy's name in its section's ``method`` enum and its branch."""
    schema = yaml.safe_load((REPO / "compress_recover" / "schema" / "config.schema.yaml").read_text())
    schema = copy.deepcopy(schema)
    for (section, method), props in BRANCHES.items():
        items = schema["properties"][section]["properties"]["methods"]["items"]
        items["properties"]["method"]["enum"].append(method)
        items["allOf"].append({"if": {"properties": {"method": {"const": method}}},
                               "then": {"additionalProperties": False, "properties": copy.deepcopy(props)}})
    return schema


def _config_with_toys(model_dir) -> dict:
    """The tests' tiny workflow config (tests/tinyflow.py) with an entry of each toy."""
    from tinyflow import tiny_config

    config = tiny_config(model_dir)
    config["compression"]["methods"].append({"method": "toyround", "step": 0.125})
    config["recovery"]["methods"] += [{"method": "toyzero"}, {"method": "toyia3", "lr": 0.01}]
    return config


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


def test_a_registry_takes_a_method_out_again():
    class Toy(MethodConfig):
        method = "toy_out"
        entry_point = "nowhere:compress"

    registry = Registry("compression")
    registry.register(Toy)
    registry.unregister("toy_out")
    assert "toy_out" not in registry and registry.names() == []
    registry.register(Toy)  # and in again: no trace of the first registration
    with pytest.raises(KeyError, match="compression method 'ghost' is not registered"):
        registry.unregister("ghost")


def test_recipe_steps_1_to_3_the_registry_answers_what_the_code_asks(toys):
    round_cls, zero_cls, ia3_cls = toys["toyround"], toys["toyzero"], toys["toyia3"]
    assert COMPRESSION["toyround"].config_cls is round_cls
    assert COMPRESSION["toyround"].load().__module__ == "recipe_toys.toyround"  # the entry point, imported on use
    assert COMPRESSION.parse({"method": "toyround", "step": 0.5}, "compression.methods[3]").slug() == "toyround-0.5"
    with pytest.raises(ConfigError, match=r"compression.methods\[3\].step: -1 must be > 0"):
        COMPRESSION.parse({"method": "toyround", "step": -1}, "compression.methods[3]")
    with pytest.raises(ConfigError, match=r"compression.methods\[3\]: unknown key\(s\) \['bits'\]"):
        COMPRESSION.parse({"method": "toyround", "bits": 4}, "compression.methods[3]")
    # what rules/common.smk asks to generate rules compute_<method> and recover_<method>
    recovery = [m for m in RECOVERY.names() if m != "none"]
    assert [m for m in recovery if not RECOVERY[m].config_cls.trained] == ["eora", "fewshot", "toyzero"]
    assert "toyia3" in [m for m in recovery if RECOVERY[m].config_cls.trained]
    assert RECOVERY.sides()["toyzero"] == RECOVERY.sides()["toyia3"] == "parameters"
    assert RECOVERY["toyzero"].adapter_loader().__module__ == "compress_recover.recover.peft_adapter"
    assert RECOVERY["toyia3"].load().__name__ == "prepare" and RECOVERY["toyia3"].adapter_loader().__name__ == "load"
    assert zero_cls.needs == () and not zero_cls.seeded and ia3_cls.trained and ia3_cls.seeded


def test_recipe_step_4_the_schema_branch_agrees_with_the_class_and_the_plan_takes_the_toys(toys, tiny_llama_dir,
                                                                                            tmp_path):
    import test_method_schema as method_schema  # the comparison tests/test_method_schema.py runs on every method
    from snakemake.utils import validate

    from compress_recover.config import build_plan

    schema = _schema_with_toys()
    for (section, method), props in BRANCHES.items():
        cls = REGISTRIES[section][method].config_cls
        entry_keys = (method_schema.COMPRESSION_ENTRY_KEYS if section == "compression"
                      else method_schema.ENTRY_KEYS if cls.trained else set())
        resolved = {k: (v or schema["properties"][section]["properties"]["methods"]["items"]["properties"].get(k, {}))
                    for k, v in props.items()}
        assert method_schema._differences(cls, resolved, entry_keys) == [], (section, method)
        enum = schema["properties"][section]["properties"]["methods"]["items"]["properties"]["method"]["enum"]
        assert sorted(enum) == REGISTRIES[section].names()  # test_the_schema_lists_every_registered_method
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    config = _config_with_toys(tiny_llama_dir)
    validate(config, str(tmp_path / "schema.yaml"))  # as the Snakefile does, filling the defaults
    assert config["recovery"]["methods"][-1] == {"method": "toyia3", "lr": 0.01, "weight_decay": 0.0,
                                                 "target_modules": ["k_proj", "v_proj", "down_proj"]}
    bad = _config_with_toys(tiny_llama_dir)
    bad["recovery"]["methods"][-2]["rank"] = 0
    with pytest.raises(Exception, match="minimum"):
        validate(bad, str(tmp_path / "schema.yaml"))
    plan = build_plan(config)
    assert plan.compressions["toyround-0.125"].method == "toyround"
    assert plan.recoveries["toyzero.seed0"].steps is None and "toyzero.seed1" not in plan.recoveries  # not seeded
    assert plan.recoveries["toyia3.seed1"].steps is not None  # trained, once per seed
    cells = plan.cells()
    assert ("tiny", "toyround-0.125", "toyzero.seed0") in cells
    assert ("tiny", "gptq-w4g32", "toyia3.seed1") in cells


@pytest.fixture(scope="module")
def rounded(toys, tiny_checkpoint, text_dir, tmp_path_factory):
    """The toy compression run as rule compress_toyround runs it (workflow_scripts/compress.py)."""
    from compress_recover.compress.compress import run_compression

    out = tmp_path_factory.mktemp("toyround") / "checkpoint"
    manifest = run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out),
                               method_config={"method": "toyround", "step": 0.0625}, key="compression.methods[3]",
                               text_dir=str(text_dir), calibration_samples=4, calibration_seq_len=16, runtime=CPU)
    return out, manifest


def test_recipe_a_compression_entry_point_writes_a_checkpoint_the_evaluation_loads(rounded, tiny_checkpoint):
    from compress_recover.io import read_json
    from compress_recover.modeling import load_model
    from compress_recover.recover.load import load_recovered

    out, manifest = rounded
    # the entry point wrote the weights; run_compression added the tokenizer and the manifest
    assert {"model.safetensors", "config.json", "tokenizer.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    assert manifest["method"] == "toyround" and manifest["name"] == "toyround-0.0625"
    assert manifest["details"] == {"rounded_layers": 14}  # 2 layers x 7 projections
    assert manifest["calibration"]["tokens"] == 0 and read_json(out / "manifest.json") == manifest
    model, _ = load_recovered(out, None, device="cpu")  # hashes verified against the manifest
    base, _ = load_model(tiny_checkpoint, device="cpu")
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(weight, torch.round(weight / 0.0625) * 0.0625)
    assert not torch.equal(weight, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(model.model.embed_tokens.weight, base.model.embed_tokens.weight)  # decoder layers only


def test_recipe_a_training_free_entry_point_writes_a_peft_adapter_the_evaluation_loads(rounded, text_dir, tmp_path):
    from compress_recover.recover.compute import run_compute
    from compress_recover.recover.load import load_recovered

    checkpoint, _ = rounded
    out = tmp_path / "adapter"
    manifest = run_compute(checkpoint_dir=str(checkpoint), out_dir=str(out), method_config={"method": "toyzero"},
                           key="recovery.methods[6]", text_dir=str(text_dir), base_dir=None, fewshot_task_dirs=[],
                           seed=0, runtime=CPU)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors",
                                                     "manifest.json"]
    assert manifest["method"] == "toyzero" and manifest["trained"] is False and manifest["status"] == "ok"
    assert manifest["details"] == {"note": "B = 0: the adapter changes nothing"}
    # rank 2 on q_proj (64 -> 64) and v_proj (64 -> 32) of 2 layers
    assert manifest["trainable_parameters"] == 2 * (2 * (64 + 64) + 2 * (64 + 32))
    adapted, _ = load_recovered(checkpoint, out, device="cpu")
    plain, _ = load_recovered(checkpoint, None, device="cpu")
    assert type(adapted).__name__ == "PeftModel"
    assert torch.equal(_logits(adapted), _logits(plain))


def test_recipe_a_trained_entry_point_is_trained_saved_and_loaded(rounded, text_dir, tmp_path):
    from compress_recover.recover.load import load_recovered
    from compress_recover.recover.recover import run_recovery

    checkpoint, _ = rounded
    out = tmp_path / "adapter"
    manifest = run_recovery(checkpoint_dir=str(checkpoint), out_dir=str(out),
                            method_config={"method": "toyia3", "lr": 0.05}, key="recovery.methods[7]",
                            text_dir=str(text_dir), steps=3, batch_size=2, seq_len=16, seed=0, runtime=CPU)
    assert manifest["method"] == "toyia3" and manifest["trained"] is True and len(manifest["losses"]) == 3
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json"} <= {p.name for p in out.iterdir()}
    adapted, _ = load_recovered(checkpoint, out, device="cpu")
    plain, _ = load_recovered(checkpoint, None, device="cpu")
    scales = [p for n, p in adapted.named_parameters() if "ia3_l" in n]
    assert len(scales) == 6 and any(not torch.equal(s, torch.ones_like(s)) for s in scales)  # trained away from 1
    assert not torch.equal(_logits(adapted), _logits(plain))


@pytest.mark.slow
def test_recipe_the_rules_exist_by_themselves_and_the_dag_schedules_the_toys(toys, tiny_llama_dir, tmp_path,
                                                                            monkeypatch):
    """The Snakemake side: with the toys registered (and the schema of step 4), the workflow
    has rules compress_toyround, compute_toyzero and recover_toyia3, run by the shared
    scripts, and a dry run schedules their jobs and the evaluations of their cells."""
    import snakemake.utils

    from tinyflow import dag_jobs, tiny_config

    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(yaml.safe_dump(_schema_with_toys()))
    original = snakemake.utils.validate

    def validate(data, schema, set_default=True):  # the Snakefile validates against the schema with the toys
        return original(data, str(schema_file) if str(schema).endswith("config.schema.yaml") else schema,
                        set_default)

    monkeypatch.setattr(snakemake.utils, "validate", validate)
    config = tiny_config(tiny_llama_dir)
    config["compression"]["methods"].append({"method": "toyround"})
    config["recovery"]["methods"] += [{"method": "toyzero"}, {"method": "toyia3"}]
    (tmp_path / "work").mkdir()
    jobs = dag_jobs(tmp_path / "work", config)
    by_rule = {}
    for (rule, wildcards), job in jobs.items():
        by_rule.setdefault(rule, []).append((wildcards, job))
    (compress,) = by_rule["compress_toyround"]
    assert compress[0] == "compression=toyround-0.0625,model=tiny"
    assert compress[1]["params"]["method_config"] == {"method": "toyround", "step": 0.0625}
    computed = sorted(w for w, _ in by_rule["compute_toyzero"])
    # the compressed models (the tiny config runs no format control on the uncompressed one), once: not seeded
    assert computed == [f"compression={c},model=tiny,recovery=toyzero.seed0" for c in ("gptq-w4g32", "toyround-0.0625")]
    trained = sorted(w for w, _ in by_rule["recover_toyia3"])
    assert trained == [f"compression={c},model=tiny,recovery=toyia3.seed{s}"
                       for c in ("gptq-w4g32", "toyround-0.0625") for s in (0, 1)]  # seeded: once per seed
    assert any(rule == "evaluate" and "compression=toyround-0.0625" in w and "recovery=toyzero.seed0" in w
               for rule, w in jobs)
