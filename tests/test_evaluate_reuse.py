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
