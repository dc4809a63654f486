"""Precision by hardware: ``dtype: auto`` and mixed-precision training.

``auto`` resolves per job to bfloat16 where the node computes it natively, else float32;
frozen weights are in that precision, trainable parameters (and so AdamW's state) stay
float32, saved adapters are float32 and load onto either precision, and the dtype used is
recorded in the adapter manifest, the evaluation labels, cost.json and summary rows."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from compress_recover import runtime as runtime_module
from compress_recover.aggregate.summary import rows_from_result
from compress_recover.evaluate.cost import run_cost
from compress_recover.evaluate.evaluate import run_evaluation
from compress_recover.io import read_json
from compress_recover.modeling import load_model
from compress_recover.recover import RECOVERY
from compress_recover.recover.load import load_recovered
from compress_recover.recover.recover import run_recovery
from compress_recover.recover.train import float32_trainable, train_loop
from compress_recover.runtime import Runtime, cpu_bf16_native, resolve_dtype
from compress_recover.tokens import token_blocks

from conftest import REPO, RECOVERY_EXAMPLES

SCHEMA = str(REPO / "compress_recover" / "schema" / "config.schema.yaml")
CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 {extra}\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 {extra}\n"


@pytest.mark.parametrize("extra, native", [("", False), ("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True),
                                           ("avx512f avx512bw", False)])
def test_cpu_bf16_is_read_from_the_cpu_flags(extra, native, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(extra=extra))
    assert cpu_bf16_native(info) is native
    arm = tmp_path / "arm"
    arm.write_text(f"processor\t: 0\nFeatures\t: fp asimd {'bf16' if native else 'i8mm'}\n")
    assert cpu_bf16_native(arm) is native
    assert cpu_bf16_native(tmp_path / "missing") is False  # no /proc/cpuinfo (macOS): float32


@pytest.mark.parametrize("native", [True, False])
def test_auto_resolves_per_detected_capability(native, monkeypatch):
    monkeypatch.setattr(runtime_module, "cpu_bf16_native", lambda: native)
    monkeypatch.setattr(runtime_module, "cuda_bf16_native", lambda device: not native)
    expected = "bfloat16" if native else "float32"
    assert resolve_dtype("auto", "cpu") == expected
    assert resolve_dtype("auto", "cuda:0") == ("float32" if native else "bfloat16")
    for explicit in ("float32", "bfloat16", "float16"):  # an explicit dtype is kept whatever the hardware
        assert resolve_dtype(explicit, "cpu") == explicit
    started = Runtime(device="cpu", dtype="auto", threads=1).start()
    assert started.dtype == expected and started.device == "cpu"
    # the jobs that write shared checkpoints keep float32 under auto; an explicit dtype is theirs too
    assert Runtime(device="cpu", dtype="auto", threads=1).start(storage=True).dtype == "float32"
    assert Runtime(device="cpu", dtype="bfloat16", threads=1).start(storage=True).dtype == "bfloat16"


def test_bad_dtype_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="dtype"):
        Runtime(dtype="float64")
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("bf16", "cpu")
    with pytest.raises(WorkflowError, match="dtype"):
        validate({"models": {"m": {"source": "embedded"}}, "dtype": "float64"}, SCHEMA)
    config = {"models": {"m": {"source": "embedded"}}, "dtype": "auto"}
    validate(config, SCHEMA)
    assert config["dtype"] == "auto"
    default = {"models": {"m": {"source": "embedded"}}}
    validate(default, SCHEMA)
    assert default["dtype"] == "auto"  # the default since issue 37 (docs/performance.md: measured under both)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning", "idp"])
def test_trainable_parameters_stay_float32_under_a_bfloat16_base(method, tiny_checkpoint, text_dir):
    model, tokenizer = load_model(tiny_checkpoint, device="cpu", dtype="bfloat16")
    config = RECOVERY.parse(RECOVERY_EXAMPLES[method], "recovery.methods[0]")
    model = RECOVERY[config.method].load()(model, config, 0)
    blocks = token_blocks(tokenizer, text_dir / "train.jsonl", 16)
    float32_trainable(model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values()), \
        {n: p.dtype for n, p in trainable.items()}
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    before = {n: p.detach().clone() for n, p in trainable.items()}
    losses = train_loop(model, blocks, steps=3, batch_size=2, lr=0.05, weight_decay=0.0, seed=0, device="cpu")
    assert all(torch.isfinite(torch.tensor(losses)))
    # it trained, in float32, and the frozen base did not move out of bfloat16
    assert any(not torch.equal(before[n], p) for n, p in trainable.items())
    assert all(p.dtype == torch.float32 for p in trainable.values())
    assert all(p.dtype == torch.bfloat16 for p in frozen)


def test_a_lower_precision_trainable_parameter_is_cast_to_float32():
    layer = torch.nn.Linear(4, 4).to(torch.bfloat16)
    layer.weight.requires_grad_(False)
    assert float32_trainable(layer) == 1
    assert layer.bias.dtype == torch.float32 and layer.weight.dtype == torch.bfloat16


def _saved_dtypes(adapter) -> set[str]:
    dtypes = set()
    for f in adapter.glob("*.safetensors"):
        with safe_open(str(f), "pt") as tensors:
            dtypes |= {tensors.get_slice(k).get_dtype() for k in tensors.keys()}
    return dtypes


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_the_dtype_used_is_recorded_and_adapters_stay_float32(method, tiny_checkpoint, text_dir, tmp_path,
                                                              monkeypatch, capitals_task):
    monkeypatch.setattr(runtime_module, "cpu_bf16_native", lambda: True)  # a node with AMX
    runtime = Runtime(device="cpu", dtype="auto", seed=0, threads=1)
    adapter = tmp_path / "adapter"
    manifest = run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(adapter),
                            method_config=RECOVERY_EXAMPLES[method], key="recovery.methods[0]",
                            text_dir=str(text_dir), steps=2, batch_size=2, seq_len=16, runtime=runtime)
    assert manifest["dtype"] == "bfloat16" and manifest["trainable_dtype"] == "float32"
    assert read_json(adapter / "manifest.json")["dtype"] == "bfloat16"
    assert _saved_dtypes(adapter) == {"F32"}
    # the float32 adapter loads onto either precision and gives the same scores to bfloat16's resolution
    ids = torch.tensor([[1, 5, 9, 12, 7, 3]])
    logits = {}
    for dtype in ("float32", "bfloat16"):
        model, _ = load_recovered(tiny_checkpoint, adapter, device="cpu", dtype=dtype)
        with torch.no_grad():
            logits[dtype] = model(input_ids=ids).logits.float()
    assert torch.allclose(logits["float32"], logits["bfloat16"], atol=0.1, rtol=0.05)

    labels = {"model": "tiny", "compression": "none", "recovery": method}
    spec = {"task": "capitals", "task_dir": str(capitals_task), "out_json": str(tmp_path / "capitals.json"),
            "out_samples": str(tmp_path / "capitals.samples.jsonl")}
    results = run_evaluation(checkpoint_dir=str(tiny_checkpoint), adapter_dir=str(adapter), tasks=[spec],
                             labels=labels, batch_size=4, limit=4, num_fewshot=0, runtime=runtime)
    assert results["capitals"]["compress_recover"]["dtype"] == "bfloat16"
    rows = rows_from_result(read_json(spec["out_json"]))
    assert rows and {r["dtype"] for r in rows} == {"bfloat16"}
    cost = run_cost(checkpoint_dir=str(tiny_checkpoint), adapter_dir=str(adapter), text_dir=str(text_dir),
                    out_json=str(tmp_path / "cost.json"), labels=labels, batch_size=2, seq_len=8, new_tokens=2,
                    repeats=1, runtime=runtime)
    assert cost["dtype"] == "bfloat16"
    # and on a node without native bfloat16 the same config computes in float32
    monkeypatch.setattr(runtime_module, "cpu_bf16_native", lambda: False)
    results = run_evaluation(checkpoint_dir=str(tiny_checkpoint), adapter_dir=str(adapter), tasks=[spec],
                             labels=labels, batch_size=4, limit=4, num_fewshot=0, runtime=runtime)
    assert results["capitals"]["compress_recover"]["dtype"] == "float32"


@pytest.fixture(scope="module")
def capitals_task(tmp_path_factory):
    from compress_recover.data.knowledge_task import build_knowledge_task

    out = tmp_path_factory.mktemp("tasks") / "capitals"
    build_knowledge_task(task="capitals", out_dir=str(out), num_choices=4, seed=0, max_questions=6)
    return out


def test_the_report_states_the_precision_computed_in():
    import pandas as pd

    from types import SimpleNamespace

    from compress_recover.aggregate.report.costs import config
    from compress_recover.aggregate.report.inputs import ReportInputs
    from compress_recover.aggregate.tables import compute_dtypes

    summary = pd.DataFrame({"model": ["a", "a", "b", "b"], "dtype": ["bfloat16", "bfloat16", "float32", None]})
    assert compute_dtypes(summary) == {"a": "bfloat16", "b": "float32"}
    assert compute_dtypes(summary.drop(columns="dtype")) == {}  # a summary written before dtype was recorded
    section = config(ReportInputs(results=SimpleNamespace(summary=summary, budget=None),
                                  figures={}, costs=[], config={"dtype": "auto"}, knowledge_tasks=[]))
    assert section["compute_dtype"] == "a: bfloat16; b: float32" and section["config_dtype"] == "auto"
