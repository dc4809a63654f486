"""A recovery training that diverges is a result, recorded as failed: the failed adapter
manifest (no weights), evaluation and cost that record the failure without loading
anything, the summary's status rows, the analysis (failed_runs.csv, a failed method left
out of the Holm family, the verdict naming it) and a report that says "failed: why" and
never shows a bare dash for a number."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from compress_recover.aggregate.analysis import run_analysis
from compress_recover.evaluate.attention import trained_adapters
from compress_recover.aggregate.figures import FIGURES, Inputs, accuracy_vs_compression, run_figures
from compress_recover.aggregate.report import run_report
from compress_recover.aggregate.report.costs import COST_HEAD
from compress_recover.aggregate.summary import summarize
from compress_recover.aggregate.stats.verdict import decide
from compress_recover.evaluate import cost as cost_module
from compress_recover.evaluate import evaluate as evaluate_module
from compress_recover.evaluate.cost import MEASURED, failed_cost, run_cost
from compress_recover.evaluate.evaluate import run_evaluation, write_failed_tasks
from compress_recover.io import read_json, read_jsonl
from compress_recover.recover.load import FailedAdapterError, adapter_failure, load_adapter, load_recovered
from compress_recover.recover.recover import run_recovery, save_failure
from compress_recover.recover.train import NonFiniteLossError, NonFiniteWeightsError, train_loop
from compress_recover.runtime import Runtime
from samples import damage_record, decision_record

CPU = Runtime(device="cpu", seed=0, threads=1)
LORA = {"method": "lora", "rank": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]}
IDP_WHY = "3 trainable value(s) are NaN or infinite after step 1 (learning rate too high?); no adapter written"
LORA_WHY = "training loss became nan at step 7 (learning rate too high?); no adapter written"


def failed_adapter(folder: Path, why: str = IDP_WHY) -> Path:
    save_failure(str(folder), {"method": "idp", "name": "idp"},
                 {"batch_size": 2, "seq_len": 16, "seed": 0, "budget_steps": [4], "steps": 4}, why,
                 failed_at_step=1, losses=[3.5], train_time=0.1)
    return folder


# --------------------------------------------------------------------------- training

class Scalar(torch.nn.Module):
    """A model whose loss is its one weight: an infinite lr makes the weight -inf after step 1."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, input_ids, labels=None):
        return SimpleNamespace(loss=self.w.sum() * 1.0, logits=None)


def test_the_training_loop_still_raises_with_the_step_and_the_losses_so_far():
    blocks = torch.zeros((4, 3), dtype=torch.long)
    common = {"batch_size": 2, "weight_decay": 0.0, "seed": 0, "device": "cpu"}
    with pytest.raises(NonFiniteWeightsError, match=r"after step 1 \(learning rate too high\?\)") as caught:
        train_loop(Scalar(), blocks, steps=1, lr=float("inf"), **common)
    assert (caught.value.step, caught.value.losses) == (1, [1.0])
    with pytest.raises(NonFiniteLossError, match=r"at step 2 \(learning rate too high\?\)") as caught:
        train_loop(Scalar(), blocks, steps=3, lr=float("inf"), **common)
    assert (caught.value.step, caught.value.losses) == (2, [1.0])


def test_a_diverged_training_keeps_its_earlier_checkpoints_and_records_the_later_ones_as_failed(
        tiny_checkpoint, text_dir, tmp_path):
    """lr 1e30: the weights after step 1 are huge but finite (a valid checkpoint); the loss
    of a later step is not."""
    dirs = [tmp_path / "step1", tmp_path / "step30"]
    manifest = run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "final"),
                            checkpoint_dirs=list(map(str, dirs)), method_config={**LORA, "lr": 1e30},
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=[1, 30, 50], batch_size=2,
                            seq_len=16, runtime=CPU)
    first = read_json(dirs[0] / "manifest.json")
    assert first["status"] == "ok" and first["budget"]["steps"] == 1 and adapter_failure(dirs[0]) is None
    load_recovered(tiny_checkpoint, dirs[0], device="cpu")
    later = read_json(dirs[1] / "manifest.json")
    assert manifest["status"] == later["status"] == "failed" and manifest["failure"] == later["failure"]
    assert manifest["failure"].startswith("training loss became") and 1 < manifest["failed_at_step"] <= 30
    assert (later["budget"]["steps"], manifest["budget"]["steps"]) == (30, 50)
    assert len(manifest["losses"]) == manifest["failed_at_step"] - 1 and manifest["method"] == "lora"
    for folder in (dirs[1], tmp_path / "final"):
        assert [f.name for f in folder.iterdir()] == ["manifest.json"]


def test_loading_a_failed_adapter_is_refused_naming_the_folder_and_why(tmp_path):
    folder = failed_adapter(tmp_path / "idp.seed0")
    assert adapter_failure(folder) == IDP_WHY and adapter_failure(None) is None
    with pytest.raises(FailedAdapterError, match=r"idp\.seed0: its training failed \(3 trainable value"):
        load_adapter(torch.nn.Linear(1, 1), folder)
    with pytest.raises(ValueError, match="idp.seed0: its training failed"):
        load_recovered(tmp_path / "no-checkpoint-is-loaded", folder, device="cpu")
    assert trained_adapters({"idp": str(folder), "none": ""}) == {"none": ""}


# --------------------------------------------------------------------------- evaluation and cost

def _refuse_loading(*args, **kwargs):
    raise AssertionError("a failed adapter must not be loaded")


def test_evaluation_of_a_failed_adapter_records_every_task_without_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate_module, "load_recovered", _refuse_loading)
    adapter = failed_adapter(tmp_path / "adapter")
    labels = {"model": "m", "compression": "q", "recovery": "idp", "seed": 0, "steps": 4, "run": "idp.seed0"}
    specs = [{"task": t, "task_dir": str(tmp_path / "no-such-task"), "out_json": str(tmp_path / f"{t}.json"),
              "out_samples": str(tmp_path / f"{t}.samples.jsonl")} for t in ("capitals", "heldout_ppl")]
    out = run_evaluation(checkpoint_dir=str(tmp_path / "none"), adapter_dir=str(adapter), tasks=specs, labels=labels,
                         batch_size=4, limit=None, num_fewshot=0, runtime=CPU)
    for spec in specs:
        result = read_json(spec["out_json"])
        assert result == out[spec["task"]] == {"results": {}, "compress_recover": {
            **labels, "task": spec["task"], "status": "failed", "failure": IDP_WHY}}
        assert Path(spec["out_samples"]).read_text() == "" and read_jsonl(spec["out_samples"]) == []


def test_cost_of_a_failed_adapter_measures_nothing_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(cost_module, "load_recovered", _refuse_loading)
    adapter = failed_adapter(tmp_path / "adapter")
    labels = {"model": "m", "compression": "q", "recovery": "idp", "run": "idp.seed0"}
    out = tmp_path / "cost.json"
    cost = run_cost(checkpoint_dir=str(tmp_path / "none"), adapter_dir=str(adapter), text_dir=str(tmp_path),
                    out_json=str(out), labels=labels, batch_size=2, seq_len=8, new_tokens=3, repeats=2, runtime=CPU)
    assert read_json(out) == cost
    assert cost["status"] == "failed" and cost["failure"] == IDP_WHY and cost["repeats"] == 2
    assert all(cost[k] is None for k in MEASURED) and {"extra_params", "latency", "disk_bytes"} <= set(MEASURED)
    with pytest.raises(ValueError, match="new_tokens"):  # a config error is still an error
        run_cost(checkpoint_dir="x", adapter_dir=str(adapter), text_dir="x", out_json=str(tmp_path / "c2.json"),
                 labels=labels, batch_size=2, seq_len=8, new_tokens=1, repeats=1, runtime=CPU)


# --------------------------------------------------------------------------- a run with failures

N = 120
SEEDS = (0, 1)
BUDGET = {"steps": 60, "batch_size": 4, "seq_len": 128}
METHODS = {"none": "none", "lora": "lora", "idp": "idp", **{f"{m}.seed{s}": m for m in ("lora", "idp") for s in SEEDS}}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
REPORT = {"alpha": 0.05, "min_recovery_fraction": 0.5, "bootstrap_iters": 500, "noninferiority_margin": 0.1,
          "power": 0.8}


def run_cells() -> dict:
    """(compression, recovery, seed) -> questions answered right, or the reason its training
    failed. q0 is a compression that loses nothing (no recovery fraction is defined); idp
    failed in every run on the compressed models and in one control run; lora in one seed on q."""
    base = np.arange(N) < 100
    cells = {("none", "none", None): base, ("q", "none", None): np.arange(N) < 40, ("q0", "none", None): base,
             ("q", "lora", 0): np.arange(N) < 90, ("q", "lora", 1): LORA_WHY, ("none", "idp", 0): base,
             ("none", "idp", 1): IDP_WHY}
    for seed in SEEDS:
        cells.update({("q0", "lora", seed): base, ("none", "lora", seed): base, ("q", "idp", seed): IDP_WHY,
                      ("q0", "idp", seed): IDP_WHY})
    return cells


def _samples(right) -> str:
    rows = [{"doc_id": i, "target": 0, "arguments": [["Q?", " a"], ["Q?", " b"]],
             "filtered_resps": [[-1.0, False], [-2.0 if r else 0.0, False]], "acc": float(r)}
            for i, r in enumerate(right)]
    return "".join(json.dumps(row) + "\n" for row in rows)


def _ok_result(labels: dict, task: str, metric: str, value: float) -> dict:
    return {"compress_recover": {**labels, "task": task, "status": "ok"}, "results": {task: {f"{metric},none": value}},
            "n-samples": {task: {"effective": N}}}


def _ok_cost(labels: dict) -> dict:
    return {**labels, "status": "ok", "failure": "", "extra_params": 0 if labels["recovery"] == "none" else 1000,
            "extra_bytes": 0, "training_time_s": 1.0, "disk_bytes": 1e6,
            "latency": {"batch": {"median_s": 0.1}, "generation": {"per_token_s": 0.01}},
            "library_versions": {"numpy": np.__version__}}


def write_run(root: Path, comp: str, rec: str, seed, outcome) -> tuple[dict, list[str], str]:
    """One evaluated (or failed) run as the pipeline writes it: results JSON and samples per
    task under ``<comp>/<run>/eval/``, and its cost.json. Returns its labels, its results
    JSONs and its cost file."""
    run = rec if seed is None else f"{rec}.seed{seed}"
    labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed,
              "steps": None if seed is None else BUDGET["steps"], "run": run}
    folder = root / comp / run
    specs = [{"task": t, "out_json": str(folder / "eval" / f"{t}.json"),
              "out_samples": str(folder / "eval" / f"{t}.samples.jsonl")} for t in ("capitals", "heldout_ppl")]
    if isinstance(outcome, str):
        write_failed_tasks(specs, labels, outcome)
        failed_cost(str(folder / "cost.json"), labels, outcome, 2, CPU)
    else:
        (folder / "eval").mkdir(parents=True)
        Path(specs[0]["out_samples"]).write_text(_samples(outcome))
        Path(specs[1]["out_samples"]).write_text("")
        Path(specs[0]["out_json"]).write_text(json.dumps(_ok_result(labels, "capitals", "acc", outcome.mean())))
        Path(specs[1]["out_json"]).write_text(json.dumps(
            _ok_result(labels, "heldout_ppl", "word_perplexity", 30.0 - 10 * outcome.mean())))
        (folder / "cost.json").write_text(json.dumps(_ok_cost(labels)))
    return labels, [s["out_json"] for s in specs], str(folder / "cost.json")


def _leak_free_inputs(root: Path) -> tuple[str, str]:
    """A training text without leaks and the capitals task's facts (for the leak check)."""
    text = root / "text"
    text.mkdir()
    (text / "leak_report.json").write_text(json.dumps({"dropped_leaks": 0, "passages_total": 2, "train_passages": 1,
                                                       "heldout_passages": 1}))
    for split in ("train", "heldout"):
        (text / f"{split}.jsonl").write_text(json.dumps({"id": 0, "text": "Mild weather."}) + "\n")
    task = root / "capitals"
    task.mkdir()
    (task / "capitals.jsonl").write_text(json.dumps({"subject": "Lithuania", "answer_text": "Vilnius"}) + "\n")
    return str(text), str(task)


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("failed_run")
    samples, evals, costs = [], [], []
    for (comp, rec, seed), outcome in run_cells().items():
        labels, results, cost = write_run(root, comp, rec, seed, outcome)
        samples.append(({**labels, "task": "capitals"}, results[0].replace(".json", ".samples.jsonl")))
        evals.extend(results)
        costs.append(cost)
    text, task = _leak_free_inputs(root)
    verdict = run_analysis(samples=samples, knowledge_tasks=["capitals"], task_dirs=[task], text_dir=text,
                           methods=METHODS, sides=SIDES, budget=BUDGET, seed=0, out_dir=str(root / "analysis"),
                           report=REPORT, seeds=list(SEEDS)).verdict_json()
    summary = summarize(eval_files=evals, cost_files=costs, out_csv=str(root / "summary.csv"))
    return SimpleNamespace(root=root, analysis=root / "analysis", verdict=verdict, summary=summary, costs=costs)


def test_summary_rows_of_a_failed_run_carry_its_status_and_why(failed_run):
    table = failed_run.summary
    failed = table[table.status == "failed"]
    assert set(failed.run) == {"lora.seed1", "idp.seed0", "idp.seed1"}
    assert len(failed) == 2 * 6  # two tasks for each of the six failed runs
    assert set(failed.metric) == {"status"} and failed.value.isna().all() and failed.latency_batch_s.isna().all()
    assert set(failed[failed.recovery == "idp"].failure) == {IDP_WHY}
    assert set(failed[failed.run == "lora.seed1"].failure) == {LORA_WHY}
    ok = table[table.status == "ok"]
    assert ok.failure.isna().all() and set(ok.metric) == {"acc", "word_perplexity"} and ok.value.notna().all()
    on_disk = pd.read_csv(failed_run.root / "summary.csv")
    assert {"status", "failure"} <= set(on_disk.columns) and (on_disk.status == "failed").sum() == len(failed)


def test_analysis_lists_failed_runs_and_leaves_a_method_that_never_trained_out_of_holm(failed_run):
    out, verdict = failed_run.analysis, failed_run.verdict
    listed = pd.read_csv(out / "failed_runs.csv")
    assert list(listed.columns) == ["model", "compression", "recovery", "seed", "run", "steps", "failure"]
    assert len(listed) == len(verdict["failed_runs"]) == 6 and set(listed.steps) == {60}
    assert set(zip(listed.compression, listed.run)) == {("q", "lora.seed1"), ("none", "idp.seed1"), *(
        (c, f"idp.seed{s}") for c in ("q", "q0") for s in SEEDS)}
    decisions = pd.read_csv(out / "decisions.csv").set_index(["compression", "recovery"])
    # idp failed everywhere: not tried, outside the family, whose size counts lora on q and q0 and the no-loss
    # tests of q and q0 (one Holm family over every confirmatory claim)
    assert decisions.loc[("q", "idp"), "decision"] == f"failed ({IDP_WHY})"
    assert decisions.loc[("q", "idp"), "status"] == "failed" and math.isnan(decisions.loc[("q", "idp"), "p_value"])
    assert decisions.loc[("q", "lora"), "family_size"] == decisions.loc[("q0", "lora"), "family_size"] == 4
    lora = decisions.loc[("q", "lora")]
    assert lora.decision == "recovers" and lora.seed_values == "0" and str(lora.failed_seeds) == "1"
    assert lora.recovered_acc == pytest.approx(90 / N) and lora.failure == LORA_WHY
    (v,) = [v for v in verdict["verdicts"] if v["compression"] == "q"]
    assert v["verdict"] == "inconclusive" and "no input-side method" in v["reason"]
    assert f"idp failed to train: {IDP_WHY}" in v["reason"]
    assert f"lora: seed 1 failed to train ({LORA_WHY}); decided on the other seed(s)" in v["reason"]
    assert pd.read_csv(out / "accuracy.csv").query("recovery == 'idp'").compression.tolist() == ["none", "none"]


def test_the_verdict_treats_a_failed_method_as_not_tried():
    damage = damage_record()

    def method(rec, side, decision, status="ok"):
        return decision_record(rec, side, decision, status, ci=(-0.1, 0.3), failure="why",
                               note=f"{rec} failed to train: why" if status == "failed" else "")

    verdict, reason = decide(damage, [method("a", "input", "failed (why)", "failed"),
                                      method("b", "parameters", "fails")], BUDGET)
    assert verdict == "not recovered at this budget" and reason.endswith("; a failed to train: why")
    verdict, reason = decide(damage, [method("a", "input", "failed (why)", "failed"),
                                      method("b", "parameters", "failed (why)", "failed")], BUDGET)
    assert verdict == "inconclusive" and reason == ("every recovery method of the two sides failed to train, so "
                                                    "none was tried; "
                                                    "a failed to train: why; b failed to train: why")


def test_report_says_failed_and_why_and_never_a_dash_for_a_number(failed_run):
    root = failed_run.root
    figures = {name: str(root / f"{name}.png") for name in FIGURES}
    run_figures(summary_csv=str(root / "summary.csv"), analysis_dir=str(failed_run.analysis),
                knowledge_tasks=["capitals"], out_files=figures)
    page_file = root / "report.html"
    run_report(summary_csv=str(root / "summary.csv"), analysis_dir=str(failed_run.analysis), figures=figures,
               cost_files=failed_run.costs, config={"seed": 0}, knowledge_tasks=["capitals"], out_html=str(page_file))
    page = page_file.read_text()
    assert "–" not in page  # an en dash never stands for a missing number
    failed = f"failed: {IDP_WHY}"
    verdict = page[page.index("m / q: inconclusive"):page.index("Failed runs")]
    assert f"<td>0, 1</td><td colspan='13'><b>{failed}</b> (not tried" in verdict
    assert "0 (failed to train: 1)" in verdict  # lora on q: decided on seed 0
    assert page.count(f"<td>{LORA_WHY}</td>") == 1  # the failed runs' table
    accuracy = page[page.index("Accuracy and perplexity"):page.index("Knowledge recovery vs")]
    assert f"<td>{failed}</td>" in accuracy and f"{90 / N:.3f} (seed 1 failed to train)" in accuracy
    fractions = page[page.index("Knowledge recovery vs"):page.index("Collateral damage")]
    assert fractions.count(f"<td>{failed}</td>") == 2 * 9  # idp on q and q0: every value column (5 fraction, 4 perplexity)
    assert "<td>undefined (no damage)</td>" in fractions  # lora on q0: compression lost nothing
    costs = page[page.index("id='costs'"):page.index("<h2>Data</h2>")]
    columns = len(COST_HEAD)
    assert costs.count(f"<td>{failed}</td>") == 5 * columns and costs.count(f"<td>failed: {LORA_WHY}</td>") == columns
    assert not re.search(r"<td>\s*</td>", fractions + accuracy + costs)


def test_figures_draw_no_point_for_a_failed_run(failed_run):
    data = Inputs.read(str(failed_run.root / "summary.csv"), str(failed_run.analysis), ["capitals"])
    fig = accuracy_vs_compression(data)
    points = {c.get_label(): np.asarray(c.lines[0].get_ydata(), dtype=float) for c in fig.axes[0].containers}
    assert np.isfinite(points["idp"]).sum() == 1  # the control run on the uncompressed model alone
    assert np.isfinite(points["lora"]).sum() == 3
