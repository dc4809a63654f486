"""evaluate.reuse: a rerun of an evaluate job scores only what changed (added or changed
tasks, a changed adapter), reuses the rest after verifying it, and never trusts a damaged entry."""

from __future__ import annotations

import lm_eval
import pytest

from compress_recover.evaluate.evaluate import run_evaluation
from compress_recover.io import read_json
from compress_recover.runtime import Runtime
from conftest import write_choice_task

LABELS = {"model": "tiny", "compression": "none", "recovery": "none"}
QUESTIONS = [{"q": "Is fire hot?", "a": 0}, {"q": "Is ice hot?", "a": 1}, {"q": "Is snow cold?", "a": 0}]


@pytest.fixture
def scored(monkeypatch):
    """The tasks lm-eval actually scores, in order (every call of simple_evaluate)."""
    calls = []
    real = lm_eval.simple_evaluate

    def counting(*args, **kwargs):
        calls.extend(kwargs["tasks"])
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", counting)
    return calls


def _run(checkpoint, folders, out, cache, adapter=None):
    specs = [{"task": t, "task_dir": str(f), "out_json": str(out / f"{t}.json"),
              "out_samples": str(out / f"{t}.samples.jsonl")} for t, f in folders.items()]
    return run_evaluation(checkpoint_dir=str(checkpoint), adapter_dir=adapter, tasks=specs, labels=LABELS,
                          batch_size=4, limit=None, num_fewshot=0, runtime=Runtime(device="cpu", seed=0, threads=1),
                          cache_dir=str(cache))


def _adapter(checkpoint, text_dir, out, lr):
    from compress_recover.recover.recover import run_recovery

    run_recovery(checkpoint_dir=str(checkpoint), out_dir=str(out), key="recovery.methods[0]",
                 method_config={"method": "prompt_tuning", "num_virtual_tokens": 2, "lr": lr},
                 text_dir=str(text_dir), steps=2, batch_size=2, seq_len=16,
                 runtime=Runtime(device="cpu", seed=0, threads=1))
    return str(out)


@pytest.mark.slow
def test_adding_or_changing_a_task_scores_only_it(tiny_checkpoint, tmp_path, scored):
    a = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    b = write_choice_task(tmp_path / "b", "task_b", QUESTIONS[:2], ["yes", "no"])
    out, cache = tmp_path / "eval", tmp_path / "eval_cache"
    _run(tiny_checkpoint, {"task_a": a}, out, cache)
    first = (out / "task_a.json").read_bytes(), (out / "task_a.samples.jsonl").read_bytes()
    assert scored == ["task_a"]
    # a task added: the rerun scores only it; the first task's files are the cached ones, byte for byte
    _run(tiny_checkpoint, {"task_a": a, "task_b": b}, out, cache)
    assert scored == ["task_a", "task_b"]
    assert ((out / "task_a.json").read_bytes(), (out / "task_a.samples.jsonl").read_bytes()) == first
    assert read_json(out / "task_b.json")["n-samples"]["task_b"]["effective"] == 2
    # a changed task (one more question): only it is scored again
    write_choice_task(b, "task_b", QUESTIONS, ["yes", "no"])
    _run(tiny_checkpoint, {"task_a": a, "task_b": b}, out, cache)
    assert scored == ["task_a", "task_b", "task_b"]
    assert read_json(out / "task_b.json")["n-samples"]["task_b"]["effective"] == 3
    # nothing changed: nothing scored, the model not even loaded
    _run(tiny_checkpoint, {"task_a": a, "task_b": b}, out, cache)
    assert scored == ["task_a", "task_b", "task_b"]
    assert sorted(p.name for p in (cache / "task_b").iterdir()) and len(list((cache / "task_b").iterdir())) == 1


@pytest.mark.slow
def test_a_changed_adapter_rescores_every_task(tiny_checkpoint, text_dir, tmp_path, scored):
    a = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    b = write_choice_task(tmp_path / "b", "task_b", QUESTIONS, ["yes", "no"])
    out, cache = tmp_path / "eval", tmp_path / "eval_cache"
    adapter = _adapter(tiny_checkpoint, text_dir, tmp_path / "adapter", lr=0.3)
    _run(tiny_checkpoint, {"task_a": a, "task_b": b}, out, cache, adapter)
    _adapter(tiny_checkpoint, text_dir, tmp_path / "adapter", lr=0.05)  # retrained in place: other weights
    _run(tiny_checkpoint, {"task_a": a, "task_b": b}, out, cache, adapter)
    assert scored == ["task_a", "task_b", "task_a", "task_b"]


def test_a_damaged_cache_entry_is_scored_again_not_trusted(tiny_checkpoint, tmp_path, scored):
    a = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    out, cache = tmp_path / "eval", tmp_path / "eval_cache"
    _run(tiny_checkpoint, {"task_a": a}, out, cache)
    (entry,) = (cache / "task_a").iterdir()
    results = entry / "results.json"
    results.write_text(results.read_text().replace('"task_a"', '"task_x"', 1))  # any change to a cached file
    _run(tiny_checkpoint, {"task_a": a}, out, cache)
    assert scored == ["task_a", "task_a"]
    assert read_json(out / "task_a.json")["compress_recover"]["task"] == "task_a"


def test_without_a_cache_folder_every_task_is_scored(tiny_checkpoint, tmp_path, scored):
    a = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    specs = [{"task": "task_a", "task_dir": str(a), "out_json": str(tmp_path / "r.json"),
              "out_samples": str(tmp_path / "r.samples.jsonl")}]
    for _ in range(2):
        run_evaluation(checkpoint_dir=str(tiny_checkpoint), adapter_dir=None, tasks=specs, labels=LABELS,
                       batch_size=4, limit=None, num_fewshot=0, runtime=Runtime(device="cpu", seed=0, threads=1))
    assert scored == ["task_a", "task_a"] and not (tmp_path / "eval_cache").exists()


# The cache key, part by part: each of the settings, the checkpoint's content and the code
# is changed alone, and the entry stored under the old key must not be served. These run
# the evaluate job's own key assembly (_reused) without scoring anything: a stored entry
# stands for scores, so a part left out of the key shows as a stale entry served.

RUNTIME = Runtime(device="cpu", seed=0, threads=1)
SETTINGS = {"labels": LABELS, "batch_size": 4, "rolling_batch_size": 1, "limit": None, "num_fewshot": 0,
            "pool_ablation": False}


def _fake_scored(tmp_path, checkpoint, task_dir, runtime=RUNTIME, weights="dense", **settings) -> str:
    """Store stand-in scores of task_a under the key of these inputs (as a scored job would);
    returns the key."""
    from compress_recover.evaluate.evaluate import _reused
    from compress_recover.evaluate.reuse import store

    spec = _spec(tmp_path, task_dir)
    (todo,) = _reused(str(tmp_path / "cache"), [spec], str(checkpoint), None, runtime, weights, {},
                      **{**SETTINGS, **settings})
    (tmp_path / "r.json").write_text('{"results": {"task_a": {"acc,none": 0.5}}}')
    (tmp_path / "s.jsonl").write_text("")
    store(str(tmp_path / "cache"), str(tmp_path / "r.json"), str(tmp_path / "s.jsonl"), "task_a", todo["cache_key"])
    return todo["cache_key"]


def _spec(tmp_path, task_dir) -> dict:
    return {"task": "task_a", "task_dir": str(task_dir), "out_json": str(tmp_path / "out.json"),
            "out_samples": str(tmp_path / "out.samples.jsonl")}


def _served(tmp_path, checkpoint, task_dir, runtime=RUNTIME, weights="dense", **settings) -> bool:
    """Whether the job would reuse the stored entry for these inputs instead of scoring."""
    from compress_recover.evaluate.evaluate import _reused

    out: dict = {}
    todo = _reused(str(tmp_path / "cache"), [_spec(tmp_path, task_dir)], str(checkpoint), None, runtime, weights,
                   out, **{**SETTINGS, **settings})
    assert bool(todo) != bool(out)
    return bool(out)


@pytest.mark.parametrize("change", [
    pytest.param({"labels": {**LABELS, "seed": 1}}, id="run-seed-label"),
    pytest.param({"labels": {**LABELS, "recovery": "lora"}}, id="labels"),
    pytest.param({"batch_size": 8}, id="batch-size"),
    pytest.param({"rolling_batch_size": 2}, id="rolling-batch-size"),
    pytest.param({"limit": 2}, id="limit"),
    pytest.param({"num_fewshot": 1}, id="num-fewshot"),
    pytest.param({"pool_ablation": True}, id="pool-ablation"),
    pytest.param({"runtime": Runtime(device="cpu", seed=1, threads=1)}, id="seed"),
    pytest.param({"runtime": Runtime(device="cpu", seed=0, threads=1, dtype="bfloat16")}, id="dtype"),
    pytest.param({"weights": "kernel"}, id="weights"),
])
def test_a_changed_setting_never_serves_the_cached_scores(tiny_checkpoint, tmp_path, change):
    task = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    _fake_scored(tmp_path, tiny_checkpoint, task)
    assert _served(tmp_path, tiny_checkpoint, task)  # unchanged: served
    assert not _served(tmp_path, tiny_checkpoint, task, **change)


def test_a_changed_checkpoint_never_serves_the_cached_scores(tiny_checkpoint, tmp_path):
    """Other weights, recorded by their stage (so the folder verifies): a new key."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from compress_recover.io import write_manifest

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, checkpoint)
    task = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    before = _fake_scored(tmp_path, checkpoint, task)
    assert _served(tmp_path, checkpoint, task)
    (weights,) = checkpoint.glob("*.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + torch.full_like(tensors[name], 1e-3)
    save_file(tensors, weights, metadata={"format": "pt"})
    write_manifest(checkpoint, {k: v for k, v in read_json(checkpoint / "manifest.json").items()
                                if k != "files_sha256"})
    assert not _served(tmp_path, checkpoint, task)
    assert _fake_scored(tmp_path, checkpoint, task) != before


def test_changed_code_never_serves_the_cached_scores(tiny_checkpoint, tmp_path, monkeypatch):
    """Any change to the package's source (here a copy of it, one line added to the scorer's
    module) gives a new key: a fixed scorer never serves the old scorer's numbers."""
    import shutil

    from compress_recover.evaluate import reuse

    package = tmp_path / "package"
    shutil.copytree(reuse.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(reuse, "PACKAGE", package)
    task = write_choice_task(tmp_path / "a", "task_a", QUESTIONS, ["yes", "no"])
    _fake_scored(tmp_path, tiny_checkpoint, task)
    assert _served(tmp_path, tiny_checkpoint, task)
    with open(package / "evaluate" / "prefix_lm.py", "a") as f:
        f.write("\n# a change to the scorer\n")
    assert not _served(tmp_path, tiny_checkpoint, task)
