"""Evaluation through lm-eval on the in-memory model, and the tidy summary."""

from __future__ import annotations

import math

import pytest
import torch

from compress_recover.aggregate.summary import rows_from_result, summarize
from compress_recover.data.knowledge_task import build_knowledge_task
from compress_recover.evaluate.evaluate import TaskUnavailableError, run_evaluation
from compress_recover.io import read_json, read_jsonl
from compress_recover.recover.load import load_recovered
from compress_recover.runtime import Runtime
from conftest import write_choice_task

LABELS = {"model": "tiny", "compression": "none", "recovery": "none"}


@pytest.fixture(scope="module")
def capitals_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "capitals"
    build_knowledge_task(task="capitals", out_dir=str(out), num_choices=4, seed=0, max_questions=10)
    return out


def _spec(task, task_dir, out_dir, prefix="r"):
    return {"task": task, "task_dir": str(task_dir) if task_dir else None,
            "out_json": str(out_dir / f"{prefix}.json"), "out_samples": str(out_dir / f"{prefix}.samples.jsonl")}


def _evaluate_tasks(checkpoint, specs, adapter_dir=None, **kw):
    return run_evaluation(checkpoint_dir=str(checkpoint), adapter_dir=adapter_dir, tasks=specs, labels=LABELS,
                          batch_size=4, limit=None, num_fewshot=0, runtime=Runtime(device="cpu", seed=0, threads=1),
                          **kw)


def _evaluate(checkpoint, task_dir, tmp_path, task="capitals", adapter_dir=None, **kw):
    return _evaluate_tasks(checkpoint, [_spec(task, task_dir, tmp_path)], adapter_dir, **kw)


PROMPT_METHODS = {"prompt_tuning": {"method": "prompt_tuning", "num_virtual_tokens": 3, "lr": 0.3},
                  "idp": {"method": "idp", "pool_size": 4, "num_virtual_tokens": 3, "context_tokens": 8, "lr": 0.3}}


def _prompt_adapter(method, checkpoint, text_dir, out):
    from compress_recover.recover.recover import run_recovery

    run_recovery(checkpoint_dir=str(checkpoint), out_dir=str(out), method_config=PROMPT_METHODS[method],
                 key="recovery.methods[0]", text_dir=str(text_dir), steps=3, batch_size=2, seq_len=16,
                 runtime=Runtime(device="cpu", seed=0, threads=1))
    return out


@pytest.mark.parametrize("method", [None, *PROMPT_METHODS])
def test_lm_eval_scores_match_a_direct_loglikelihood(method, tiny_checkpoint, capitals_dir, text_dir, tmp_path):
    with_prompt = method is not None
    adapter = _prompt_adapter(method, tiny_checkpoint, text_dir, tmp_path / "adapter") if with_prompt else None
    _evaluate(tiny_checkpoint, capitals_dir, tmp_path, adapter_dir=str(adapter) if adapter else None)
    result = read_json(tmp_path / "r.json")
    samples = read_jsonl(tmp_path / "r.samples.jsonl")
    assert len(samples) == 10 == result["n-samples"]["capitals"]["effective"]
    assert result["compress_recover"]["model"] == "tiny"
    model, tok = load_recovered(tiny_checkpoint, adapter, device="cpu")
    for sample in samples[:3] + samples[-2:]:
        doc = sample["doc"]
        scores = []
        for choice in doc["choices"]:
            ctx = tok(doc["question"], add_special_tokens=False)["input_ids"]
            cont = tok(doc["question"] + " " + choice, add_special_tokens=False)["input_ids"][len(ctx):]
            # The model sees the context and all but the last continuation token, as in lm-eval;
            # a prompt pool chooses its prompt from the context alone (causal IDP).
            ids = torch.tensor([ctx + cont[:-1]])
            forced = {}
            with torch.no_grad():
                if getattr(model, "chooses_from_context", False):
                    forced["selected"] = model(input_ids=torch.tensor([ctx])).selected
                    assert sample[model.choice_field] == int(forced["selected"][0])
                logp = model(input_ids=ids, **forced).logits.log_softmax(-1)[0]
            offset = logp.shape[0] - ids.shape[1]  # soft-prompt positions come first
            assert offset == (3 if with_prompt else 0)
            scores.append(sum(logp[offset + len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)))
        lm_eval_scores = [r[0] for r in sample["filtered_resps"]]
        assert scores == pytest.approx(lm_eval_scores, abs=1e-3)
        assert sample["acc"] == float(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    accs = [s["acc"] for s in samples]
    assert result["results"]["capitals"]["acc,none"] == pytest.approx(sum(accs) / len(accs))


def test_evaluation_is_deterministic(tiny_checkpoint, capitals_dir, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _evaluate(tiny_checkpoint, capitals_dir, tmp_path / "a")
    _evaluate(tiny_checkpoint, capitals_dir, tmp_path / "b")
    assert read_json(tmp_path / "a" / "r.json")["results"] == read_json(tmp_path / "b" / "r.json")["results"]


@pytest.mark.slow
def test_offline_builtin_task_fails_clearly_before_loading_the_model(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskUnavailableError, match=r"lm-eval task 'arc_easy'.*unreachable"):
        _evaluate(tiny_checkpoint, None, tmp_path, task="arc_easy")
    with pytest.raises(TaskUnavailableError, match="'no_such_task' is not among"):
        _evaluate(tiny_checkpoint, None, tmp_path, task="no_such_task")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_job_checks_every_task_before_scoring_any(tiny_checkpoint, capitals_dir, tmp_path):
    specs = [_spec("capitals", capitals_dir, tmp_path, "a"), _spec("no_such_task", None, tmp_path, "b")]
    with pytest.raises(TaskUnavailableError, match="'no_such_task' is not among"):
        _evaluate_tasks(tiny_checkpoint, specs)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("method", [None, "idp"])
def test_one_job_scores_every_task_as_if_each_ran_alone(method, tiny_checkpoint, capitals_dir, text_dir, tmp_path):
    """The per-model evaluate job writes, per task, what a job for that task alone writes."""
    from compress_recover.data.perplexity_task import build_perplexity_task

    ppl_dir = tmp_path / "tasks" / "heldout_ppl"
    build_perplexity_task(text_dir=str(text_dir), out_dir=str(ppl_dir))
    adapter = str(_prompt_adapter(method, tiny_checkpoint, text_dir, tmp_path / "adapter")) if method else None
    tasks = [("capitals", capitals_dir), ("heldout_ppl", ppl_dir)]
    (tmp_path / "together").mkdir()
    _evaluate_tasks(tiny_checkpoint, [_spec(t, d, tmp_path / "together", t) for t, d in tasks], adapter,
                    rolling_batch_size=2)
    for task, folder in tasks:
        alone = tmp_path / f"alone-{task}"
        alone.mkdir()
        _evaluate_tasks(tiny_checkpoint, [_spec(task, folder, alone, task)], adapter, rolling_batch_size=2)
        together_result, alone_result = (read_json(d / f"{task}.json") for d in (tmp_path / "together", alone))
        assert together_result["results"] == alone_result["results"]
        assert together_result["n-samples"] == alone_result["n-samples"]
        assert together_result["compress_recover"]["batch_size"] == (2 if task == "heldout_ppl" else 4)
        assert read_jsonl(tmp_path / "together" / f"{task}.samples.jsonl") == read_jsonl(alone / f"{task}.samples.jsonl")


def test_custom_task_folder_is_evaluated(tiny_checkpoint, tmp_path):
    folder = write_choice_task(tmp_path / "mine", "my_yes_no", [{"q": "Is fire hot?", "a": 0},
                                                              {"q": "Is ice hot?", "a": 1}], ["yes", "no"])
    out = tmp_path / "out"
    out.mkdir()
    _evaluate(tiny_checkpoint, folder, out, task="my_yes_no")
    assert read_json(out / "r.json")["n-samples"]["my_yes_no"]["effective"] == 2


def test_summary_rows_are_tidy(tmp_path):
    result = {
        "compress_recover": {**LABELS, "task": "capitals"},
        "results": {"capitals": {"alias": "capitals", "acc,none": 0.5, "acc_stderr,none": 0.1,
                                 "acc_norm,none": 0.25, "acc_norm_stderr,none": "N/A"}},
        "n-samples": {"capitals": {"original": 12, "effective": 12}},
    }
    rows = rows_from_result(result)
    assert [(r["metric"], r["value"], r["stderr"], r["n"]) for r in rows] == [
        ("acc", 0.5, 0.1, 12), ("acc_norm", 0.25, None, 12)]
    import json

    (tmp_path / "a.json").write_text(json.dumps(result))
    cost = {**LABELS, "extra_params": 40, "extra_bytes": 160, "training_time_s": 2.5, "disk_bytes": 1000,
            "latency": {"batch": {"median_s": 0.2}, "generation": {"per_token_s": 0.01}}}
    (tmp_path / "cost.json").write_text(json.dumps(cost))
    table = summarize(eval_files=[str(tmp_path / "a.json")], cost_files=[str(tmp_path / "cost.json")],
                      out_csv=str(tmp_path / "s.csv"))
    assert list(table.columns)[:3] == ["model", "compression", "recovery"]
    assert len(table) == 2 and math.isnan(table["stderr"].iloc[1])
    assert table["extra_params"].tolist() == [40, 40] and table["latency_token_s"].tolist() == [0.01, 0.01]
    with pytest.raises(ValueError, match="no cost.json"):
        summarize(eval_files=[str(tmp_path / "a.json")], cost_files=[], out_csv=str(tmp_path / "t.csv"))
    assert not (tmp_path / "t.csv").exists()


def test_an_adapter_loads_by_the_method_its_manifest_names(tmp_path, tiny_checkpoint):
    import json

    from compress_recover.recover.load import adapter_method

    folder = tmp_path / "adapter"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_recovered(tiny_checkpoint, folder, device="cpu")
    (folder / "manifest.json").write_text(json.dumps({"method": "no-such-method"}))
    with pytest.raises(ValueError, match="unknown recovery method 'no-such-method'"):
        adapter_method(folder)
