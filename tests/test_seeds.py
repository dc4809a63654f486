"""Seeds, the format control and custom knowledge tasks in the DAG: what each job is given
(Snakemake's Python API, dry runs on the tiny config; no job runs except in the last test)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import write_choice_task
from tinyflow import dag_jobs, per_rule, scheduled, tiny_config

AGGREGATE = {"summary", "analysis", "figures", "report", "all"}


def _config(**recovery) -> dict:
    """The tiny config with one budget and the corpus as every method's text (tests/test_budget_text.py
    covers budget curves and generated text)."""
    config = tiny_config(Path("unused"))
    config["models"] = {"tiny": {"source": "embedded"}}  # nothing is downloaded in a dry run
    config["recovery"]["budget"]["steps"] = 4
    for method in config["recovery"]["methods"]:
        method.pop("text", None)
    config["recovery"].update(recovery)
    return config


def _by_rule(jobs: dict, rule: str) -> dict[str, dict]:
    return {w: job for (r, w), job in jobs.items() if r == rule}


@pytest.mark.slow
def test_adding_a_seed_adds_its_jobs_and_changes_no_existing_job(tmp_path):
    one = dag_jobs(tmp_path, _config(seeds=[0]))
    two = dag_jobs(tmp_path, _config(seeds=[0, 1]))
    new = set(two) - set(one)
    assert set(one) <= set(two)
    # EoRA ignores the seed: nothing of it is added
    assert per_rule([(r, w) for r, w in new]) == {"recover_lora": 1, "recover_prompt_tuning": 1, "recover_idp": 1,
                                                  "compute_fewshot": 1, "evaluate": 4, "cost": 4}
    assert all(w.endswith(".seed1") for _, w in new)
    # every job of the one-seed grid keeps its params and inputs, so Snakemake reruns none of
    # them; only the aggregate (and the attention job, which reads every adapter) see more runs
    changed = {rule for (rule, w) in one if one[(rule, w)] != two[(rule, w)]}
    assert {"summary", "analysis", "attention"} <= changed <= AGGREGATE | {"attention"}


@pytest.mark.slow
def test_a_run_trains_with_its_seed_and_is_labelled_with_group_seed_and_run(tmp_path):
    jobs = dag_jobs(tmp_path, _config(seeds=[0, 7]))
    lora = _by_rule(jobs, "recover_lora")
    assert sorted(lora) == ["compression=gptq-w4g32,model=tiny,recovery=lora.seed0",
                            "compression=gptq-w4g32,model=tiny,recovery=lora.seed7"]
    a, b = (lora[w]["params"] for w in sorted(lora))
    assert (a["seed"], b["seed"]) == (0, 7)
    assert {k: v for k, v in a.items() if k != "seed"} == {k: v for k, v in b.items() if k != "seed"}
    idp = _by_rule(jobs, "recover_idp")
    assert sorted(idp) == [f"compression=gptq-w4g32,model=tiny,recovery=idp-mix0.5.seed{s}" for s in (0, 7)]
    assert "teacher" in next(iter(idp.values()))["input"]  # the objective follows the entry into every run
    evaluate = _by_rule(jobs, "evaluate")
    assert evaluate["compression=gptq-w4g32,model=tiny,recovery=idp-mix0.5.seed7"]["params"]["labels"] == {
        "model": "tiny", "compression": "gptq-w4g32", "recovery": "idp-mix0.5", "seed": 7, "run": "idp-mix0.5.seed7"}
    assert evaluate["compression=gptq-w4g32,model=tiny,recovery=none"]["params"]["labels"] == {
        "model": "tiny", "compression": "gptq-w4g32", "recovery": "none", "seed": None, "run": "none"}
    cost = _by_rule(jobs, "cost")["compression=gptq-w4g32,model=tiny,recovery=lora.seed7"]
    assert cost["params"]["labels"]["run"] == "lora.seed7" and cost["input"]["adapter"].endswith("lora.seed7/adapter")
    # the attention job compares every run of the compressed model
    attention = _by_rule(jobs, "attention")["compression=gptq-w4g32,model=tiny"]["params"]["adapters"]
    assert attention["none"] == "" and attention["lora.seed7"] == "results/tiny/gptq-w4g32/lora.seed7/adapter"
    assert len(attention) == 1 + 3 * 2 + 1  # few-shot runs are not, EoRA's one run is


@pytest.mark.slow
def test_the_analysis_gets_one_labelled_cell_per_samples_file(tmp_path):
    jobs = dag_jobs(tmp_path, _config(seeds=[0, 1]))
    analysis = jobs[("analysis", "")]
    cells, samples = analysis["params"]["cells"], analysis["input"]["samples"]
    # (base, compressed, 3 trained methods and few-shot x 2 seeds, EoRA once) x 2 tasks
    assert len(cells) == len(samples) == (1 + 1 + 4 * 2 + 1) * 2
    for cell, path in zip(cells, samples, strict=True):
        assert set(cell) == {"model", "compression", "recovery", "seed", "run", "steps", "task"}
        assert cell["steps"] == (None if cell["recovery"] in ("none", "eora", "fewshot") else 4)  # the last two train not
        assert path == f"results/{cell['model']}/{cell['compression']}/{cell['run']}/eval/{cell['task']}.samples.jsonl"
        assert (cell["seed"] is None) == (cell["recovery"] == "none")
        if cell["seed"] is not None:
            assert cell["run"] == f"{cell['recovery']}.seed{cell['seed']}"
    assert analysis["params"]["seeds"] == [0, 1]
    methods = analysis["params"]["recovery"]["methods"]
    assert methods == {"none": "none", "lora": "lora", "lora.seed0": "lora", "lora.seed1": "lora",
                       "prompt_tuning": "prompt_tuning", "prompt_tuning.seed0": "prompt_tuning",
                       "prompt_tuning.seed1": "prompt_tuning", "idp-mix0.5": "idp", "idp-mix0.5.seed0": "idp",
                       "idp-mix0.5.seed1": "idp", "eora": "eora", "eora.seed0": "eora", "fewshot": "fewshot",
                       "fewshot.seed0": "fewshot", "fewshot.seed1": "fewshot"}
    assert analysis["params"]["recovery"]["trained"] == {"eora": False, "fewshot": False, "idp": True, "lora": True,
                                                         "prompt_tuning": True}
    assert analysis["params"]["report"]["noninferiority_margin"] == 0.1 and analysis["params"]["report"]["power"] == 0.8
    # the summary reads every model's downloaded checkpoint (its manifest states the base precision)
    assert list(jobs[("summary", "")]["input"]["bases"]) == ["results/tiny/none/checkpoint"]


@pytest.mark.slow
def test_the_format_control_recovers_the_base_model_with_every_method_and_seed(tmp_path):
    off = per_rule(list(dag_jobs(tmp_path, _config(seeds=[0, 1], recover_base=False))))
    on = dag_jobs(tmp_path, _config(seeds=[0, 1], recover_base=True))
    base_runs = sorted(w for (r, w) in on if r == "evaluate" and "compression=none," in w)
    assert base_runs == sorted(f"compression=none,model=tiny,recovery={r}" for r in (
        "none", "lora.seed0", "lora.seed1", "prompt_tuning.seed0", "prompt_tuning.seed1", "idp-mix0.5.seed0",
        "idp-mix0.5.seed1", "fewshot.seed0", "fewshot.seed1"))  # EoRA has no residual to correct there
    grown = per_rule(list(on))
    assert {k: grown[k] - off[k] for k in grown if grown[k] != off[k]} == {
        "recover_lora": 2, "recover_prompt_tuning": 2, "recover_idp": 2, "compute_fewshot": 2, "evaluate": 8,
        "cost": 8}
    # attention stays per compressed model
    assert grown["attention"] == 1


@pytest.mark.slow
def test_a_custom_knowledge_task_is_analysed_but_not_leak_checked(tmp_path):
    folder = write_choice_task(tmp_path / "my_tasks", "my_facts", [{"q": "2+2?", "a": 0}], ["4", "5"],
                               [{"q": "1+1?", "a": 1}])
    config = _config(seeds=[0])
    config["data"]["task_dirs"] = [{"path": str(folder), "tasks": ["my_facts"], "knowledge": True}]
    jobs = dag_jobs(tmp_path, config)
    analysis = jobs[("analysis", "")]
    assert analysis["params"]["knowledge_tasks"] == ["capitals", "element_symbol", "my_facts"]
    assert [c["task"] for c in analysis["params"]["cells"]][:3] == ["capitals", "element_symbol", "my_facts"]
    assert "results/tiny/gptq-w4g32/lora.seed0/eval/my_facts.samples.jsonl" in analysis["input"]["samples"]
    # the leak check reads facts from the built tasks only
    assert analysis["input"]["tasks"] == ["results/data/tasks/capitals", "results/data/tasks/element_symbol"]
    evaluate = jobs[("evaluate", "compression=gptq-w4g32,model=tiny,recovery=lora.seed0")]
    assert {"task": "my_facts", "task_dir": str(folder)} in evaluate["params"]["tasks"]
    assert str(folder / "my_facts.yaml") in evaluate["inputs"]
    assert not any(p == "results/data/tasks/my_facts" for p in evaluate["inputs"])
    assert jobs[("figures", "")]["params"]["knowledge_tasks"] == ["capitals", "element_symbol", "my_facts"]


@pytest.mark.workflow
def test_adding_a_seed_to_a_finished_run_schedules_exactly_its_jobs(finished_run):
    workdir, config = finished_run
    grown = copy.deepcopy(config)
    grown["recovery"]["seeds"] = [*config["recovery"]["seeds"], 5]
    jobs = scheduled(workdir, grown)
    # each new run is evaluated at its final budget and at its checkpoint (step 2 of 4)
    # few-shot runs per seed too (no checkpoint); EoRA ignores the seed, so nothing of it runs
    assert per_rule(jobs) == {"recover_lora": 1, "recover_prompt_tuning": 1, "recover_idp": 1, "compute_fewshot": 1,
                              "evaluate": 7, "cost": 4, "attention": 1, **{rule: 1 for rule in AGGREGATE}}
    runs = {"lora.seed5", "prompt_tuning-gen.seed5", "idp-mix0.5.seed5"}
    assert {w["recovery"] for rule, w in jobs if rule not in AGGREGATE | {"attention"}} == runs | {
        f"{r}.step2" for r in runs} | {"fewshot.seed5"}


def test_summary_keeps_every_seed_apart_with_its_run_and_the_base_precision(tmp_path):
    import json

    import pandas as pd

    from compress_recover.aggregate.summary import summarize

    base = tmp_path / "results/tiny/none/checkpoint"
    base.mkdir(parents=True)
    (base / "manifest.json").write_text(json.dumps({"model": "tiny", "base_precision": "Q4_1 GGUF (x), dequantized"}))
    runs = [("none", None, "none", 0.25), ("lora", 0, "lora.seed0", 0.5), ("lora", 1, "lora.seed1", 0.75)]
    evals, costs = [], []
    for i, (group, seed, run, acc) in enumerate(runs):
        labels = {"model": "tiny", "compression": "gptq-w4g32", "recovery": group, "seed": seed, "run": run}
        evals.append(tmp_path / f"e{i}.json")
        evals[-1].write_text(json.dumps({"compress_recover": {**labels, "task": "capitals"},
                                         "results": {"capitals": {"acc,none": acc, "acc_stderr,none": 0.1}},
                                         "n-samples": {"capitals": {"effective": 12}}}))
        costs.append(tmp_path / f"c{i}.json")
        costs[-1].write_text(json.dumps({**labels, "extra_params": 10 * i, "extra_bytes": 0, "training_time_s": i,
                                         "disk_bytes": 1, "latency": {"batch": {"median_s": 0.1},
                                                                      "generation": {"per_token_s": 0.01}}}))
    out = tmp_path / "s.csv"
    table = summarize(eval_files=[str(f) for f in evals], cost_files=[str(f) for f in reversed(costs)],
                      out_csv=str(out), out_parquet=str(tmp_path / "s.parquet"), base_dirs=[str(base)])
    assert table[["recovery", "seed", "run", "value", "extra_params"]].astype(object).values.tolist() == [
        ["lora", 0, "lora.seed0", 0.5, 10], ["lora", 1, "lora.seed1", 0.75, 20], ["none", pd.NA, "none", 0.25, 0]]
    assert set(table.base_precision) == {"Q4_1 GGUF (x), dequantized"}
    csv = pd.read_csv(out, keep_default_na=False)
    assert csv.seed.astype(str).tolist() == ["0", "1", ""]  # empty without training
    assert pd.read_parquet(tmp_path / "s.parquet").seed.tolist()[:2] == [0, 1]
