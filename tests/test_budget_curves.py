"""Budget curves, the dev/test split, collateral damage and the generated text's leak check,
end to end on hand-made sample files: a recovery evaluated at steps 15, 30 and 60 (60 the
final budget), two knowledge tasks of which one is held out, a quarter of the other in dev.
The verdict and the headline tables must see the test questions of the final budget only."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from compress_recover.aggregate.analysis import run_analysis
from compress_recover.aggregate.stats.budget import checkpoint_steps
from compress_recover.aggregate.stats.leak_check import LeakError
from compress_recover.aggregate.figures import FIGURES, Inputs, budget_curves, run_figures
from compress_recover.aggregate.report import run_report
from compress_recover.aggregate.summary import summarize

METHODS = {"none": "none", "lora": "lora", "lora2": "lora", "idp": "idp"}
SIDES = {"lora": "parameters", "idp": "input"}
BUDGET = {"steps": [15, 30, 60], "batch_size": 4, "seq_len": 128}
SPLIT = {"dev_fraction": 0.25, "seed": 0, "held_out_tasks": ["currencies"]}
N = {"capitals": 80, "currencies": 40}
GROUPS = {"lora": [0, 1], "lora2": [0], "idp": [0, 1]}  # recovery group -> seeds, in config order
REPORT = {"alpha": 0.05, "min_recovery_fraction": 0.5, "bootstrap_iters": 300, "noninferiority_margin": 0.1,
          "power": 0.8}


def span(task: str, comp: str, group: str, seed, steps) -> tuple[int, int]:
    """The questions [lo, hi) a model answers right."""
    if comp == "none":  # the base model and the format control; idp gains 4 questions at step 15 only
        return 0, (72 if task == "capitals" else 36) + (4 if (group, steps, task) == ("idp", 15, "capitals") else 0)
    if group == "none":
        return 0, 32 if task == "capitals" else 16
    if task == "currencies":  # held out: the lora groups break questions 0-3 at the final budget
        if group == "idp":
            return 0, 16
        return (4, 36 + seed) if steps == 60 else (0, {15: 20, 30: 26}[steps])
    if group == "idp":
        return 0, 32 + 8 * steps // 60
    if group == "lora2" and steps == 15:
        return 0, 72
    return 0, 32 + 40 * steps // 60


def cells() -> list[dict]:
    out = [{"compression": c, "recovery": "none", "seed": None, "steps": None, "run": "none"} for c in ("none", "q")]
    for comp in ("q", "none"):
        for group, seeds in GROUPS.items():
            out += [{"compression": comp, "recovery": group, "seed": seed, "steps": steps,
                     "run": f"{group}.seed{seed}" + ("" if steps == 60 else f".step{steps}")}
                    for seed in seeds for steps in BUDGET["steps"]]
    return out


def _row(i: int, right: bool) -> dict:
    scores = [-1.0, -2.0] if right else [-2.0, -1.0]
    return {"doc_id": i, "target": 0, "filtered_resps": [[s, False] for s in scores]}


def write_text(folder, passages: list[str], **report) -> str:
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(passages)]
    (folder / "train.jsonl").write_text("".join(lines))
    (folder / "heldout.jsonl").write_text("")
    (folder / "leak_report.json").write_text(json.dumps({"passages_total": 50, "dropped_too_short": 2,
                                                         "dropped_leaks": 5, "train_passages": len(passages),
                                                         "heldout_passages": 0, "fact_pairs_checked": 1, **report}))
    return str(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    samples = []
    for cell in cells():
        for task, n in N.items():
            lo, hi = span(task, cell["compression"], cell["recovery"], cell["seed"], cell["steps"])
            path = root / "samples" / f"{cell['compression']}-{cell['run']}-{task}.jsonl"
            path.parent.mkdir(exist_ok=True)
            path.write_text("".join(json.dumps(_row(i, lo <= i < hi)) + "\n" for i in range(n)))
            samples.append(({"model": "m", **cell, "task": task}, str(path)))
    tasks = []
    for task, (subject, answer) in {"capitals": ("Lithuania", "Vilnius"), "currencies": ("Japan", "Yen")}.items():
        (root / task).mkdir()
        (root / task / f"{task}.jsonl").write_text(json.dumps({"subject": subject, "answer_text": answer}) + "\n")
        tasks.append(str(root / task))
    text = write_text(root / "text", ["Mild weather."])
    generated = write_text(root / "generated", ["A calm story about rivers."], model="m")
    out = root / "analysis"
    verdict = run_analysis(samples=samples, knowledge_tasks=list(N), task_dirs=tasks, text_dir=text,
                           methods=METHODS, sides=SIDES, budget=BUDGET, seed=0, out_dir=str(out), report=REPORT,
                           split=SPLIT, generated_text_dirs=[generated]).verdict_json()
    return root, out, verdict, samples, tasks


def read(out, name: str) -> pd.DataFrame:
    return pd.read_csv(out / f"{name}.csv")


def ids_in(out, split: str = "test") -> dict[str, list[int]]:
    questions = read(out, "split")
    questions = questions[questions.split == split]
    return {t: sorted(q.doc_id.astype(int)) for t, q in questions.groupby("task")}


def expected_acc(ids: dict, comp: str, group: str, steps, seeds=(None,)) -> float:
    """Pooled accuracy on ``ids`` (task -> question ids), the mean over ``seeds``."""
    accs = []
    for seed in seeds:
        right = sum(lo <= i < hi for task, task_ids in ids.items() for i in task_ids
                    for lo, hi in [span(task, comp, group, seed, steps)])
        accs.append(right / sum(map(len, ids.values())))
    return float(np.mean(accs))


def test_the_split_is_written_and_counted(run):
    _, out, verdict, _, _ = run
    split = verdict["split"]
    assert split["held_out_tasks"] == ["currencies"] and split["dev_fraction"] == 0.25 and split["seed"] == 0
    assert split["counts"] == {"capitals": {"dev": 20, "test": 60}, "currencies": {"dev": 0, "test": 40}}
    questions = read(out, "split")
    assert len(questions) == 120 and list(questions.columns) == ["task", "doc_id", "split"]
    table = read(out, "questions")
    assert {"split", "steps"} <= set(table.columns)
    assert set(table[table.run == "lora.seed0.step15"].steps) == {15}


def test_the_verdict_uses_the_test_questions_of_the_final_budget_only(run):
    _, out, verdict, _, _ = run
    ids = ids_in(out)
    (v,) = verdict["verdicts"]
    lora = next(m for m in v["evidence"]["methods"] if m["recovery"] == "lora")
    # one Holm family: the no-loss test and three recoveries (non-inferiority is descriptive, outside it)
    assert lora["family_size"] == 4 and lora["seeds"] == [0, 1] and lora["runs"] == ["lora.seed0", "lora.seed1"]
    assert lora["n"] == 100  # 60 test questions of capitals and the 40 of the held-out task
    assert lora["recovered_acc"] == pytest.approx(expected_acc(ids, "q", "lora", 60, seeds=(0, 1)))
    assert v["evidence"]["base_acc"] == pytest.approx(expected_acc(ids, "none", "none", None))
    accuracy = read(out, "accuracy")
    assert set(accuracy.seeds[accuracy.recovery == "lora"]) == {2}  # checkpoints are not extra seeds
    control = read(out, "format_control")
    assert (control.control_gain == 0).all()  # idp's gain at step 15 is not the final control's
    assert "(60 steps x 4 x 128 tokens)" in verdict["rule"] and "steps 15, 30" in verdict["rule"]
    assert verdict["final_steps"] == 60


def test_budget_curve_from_the_compressed_model_to_the_final_budget(run):
    _, out, verdict, _, _ = run
    ids = ids_in(out)
    curve = read(out, "budget_curve")
    lora = curve[(curve.compression == "q") & (curve.recovery == "lora")].set_index("steps")
    assert list(lora.index) == [0, 15, 30, 60] and list(lora.tokens) == [0, 15 * 512, 30 * 512, 60 * 512]
    assert set(curve.compression) == {"q"} and set(curve.recovery) == {"lora", "lora2", "idp"}
    compressed = expected_acc(ids, "q", "none", None)
    assert lora.loc[0, "recovered_acc"] == pytest.approx(compressed) and lora.loc[0, "recovery_fraction"] == 0
    for steps in (15, 30, 60):
        assert lora.loc[steps, "recovered_acc"] == pytest.approx(expected_acc(ids, "q", "lora", steps, seeds=(0, 1)))
        assert lora.loc[steps, "acc_ci_low"] <= lora.loc[steps, "recovered_acc"] <= lora.loc[steps, "acc_ci_high"]
    assert lora.recovery_fraction.is_monotonic_increasing and lora.loc[60, "seeds"] == 2
    decision = read(out, "decisions").set_index("recovery").loc["lora"]
    assert lora.loc[60, "recovery_fraction"] == pytest.approx(decision.recovery_fraction)
    # the control at the same steps: idp's format gain at step 15 is subtracted there, nowhere else
    idp = curve[(curve.compression == "q") & (curve.recovery == "idp")].set_index("steps")
    assert idp.has_control.all() and idp.loc[15, "controlled_fraction"] < idp.loc[15, "recovery_fraction"]
    gain = sum(72 <= i < 76 for i in ids["capitals"]) / 100
    assert idp.loc[15, "control_gain"] == pytest.approx(gain)
    assert idp.loc[60, "controlled_fraction"] == pytest.approx(idp.loc[60, "recovery_fraction"])


def test_dev_accuracy_ranks_groups_of_one_method_on_dev_questions(run):
    _, out, _, _, _ = run
    dev_ids = ids_in(out, "dev")
    assert list(dev_ids) == ["capitals"]  # the held-out task has no dev question
    dev = read(out, "dev_accuracy")
    assert set(dev.n) == {20} and set(dev.steps) == {15, 30, 60}
    by = dev.set_index(["recovery", "steps"])
    for group, seeds in GROUPS.items():
        for steps in (15, 30, 60):
            assert by.loc[(group, steps), "recovered_acc"] == pytest.approx(
                expected_acc(dev_ids, "q", group, steps, seeds=seeds))
    assert by.loc[("idp", 60), "rank"] == 1  # alone in its method
    # at step 15 the second group of the method is better on dev; at 60 the two tie: config order decides
    assert by.loc[("lora2", 15), "recovered_acc"] > by.loc[("lora", 15), "recovered_acc"]
    assert (by.loc[("lora2", 15), "rank"], by.loc[("lora", 15), "rank"]) == (1, 2)
    assert by.loc[("lora2", 60), "recovered_acc"] == by.loc[("lora", 60), "recovered_acc"]
    assert (by.loc[("lora", 60), "rank"], by.loc[("lora2", 60), "rank"]) == (1, 2)


def test_collateral_damage_on_the_held_out_task(run):
    _, out, _, _, _ = run
    table = read(out, "collateral").set_index(["compression", "recovery", "task"])
    held = table.loc[("q", "lora", "currencies")]
    assert bool(held.held_out) and held.n == 40 and held.seeds == 2
    assert held.newly_broken == 4 and held.newly_fixed == pytest.approx(20.5)  # seed 1 fixes one more
    assert held.compressed_acc == pytest.approx(0.4) and held.recovered_acc == pytest.approx(32.5 / 40)
    assert held.difference == pytest.approx(16.5 / 40) and held.ci_low <= held.difference <= held.ci_high
    chosen_on = table.loc[("q", "lora", "capitals")]
    assert not bool(chosen_on.held_out) and chosen_on.n == 60 and chosen_on.newly_broken == 0
    assert table.loc[("q", "idp", "currencies")].newly_broken == 0
    assert len(table) == 2 * 2 * len(GROUPS)  # (q and the format control) x groups x tasks: final budget only


def test_generated_text_is_leak_checked_and_counted(run, tmp_path):
    root, _, verdict, samples, tasks = run
    (generated,) = verdict["leaks"]["generated"]
    assert generated["model"] == "m" and generated["dropped_leaks"] == 5 and generated["dropped_too_short"] == 2
    assert generated["remaining_leaks"] == 0 and generated["text_dir"].endswith("generated")
    leaky = write_text(tmp_path / "leaky", ["The yen is the money of Japan."], model="m")
    with pytest.raises(LeakError, match="leaky"):
        run_analysis(samples=samples, knowledge_tasks=list(N), task_dirs=tasks, text_dir=str(root / "text"),
                     methods=METHODS, sides=SIDES, budget=BUDGET, seed=0, out_dir=str(tmp_path / "a"),
                     report=REPORT, split=SPLIT, generated_text_dirs=[leaky])


def test_checkpoint_steps_refuses_unlabelled_or_foreign_checkpoints():
    base = {"model": "m", "compression": "q", "recovery": "g", "seed": 0, "task": "t", "doc_id": "0"}
    table = pd.DataFrame([{**base, "steps": 60, "run": "g.seed0"}, {**base, "steps": 45, "run": "g.seed0.step45"}])
    with pytest.raises(ValueError, match=r"g.seed0.step45.*recovery.budget.steps \[15, 30, 60\]"):
        checkpoint_steps(table.astype({"steps": "Int64"}), BUDGET)
    table = pd.DataFrame([{**base, "steps": 60, "run": "g.seed0"}, {**base, "steps": None, "run": "g.seed0.step15"}])
    with pytest.raises(ValueError, match="label every checkpoint with its steps"):
        checkpoint_steps(table.astype({"steps": "Int64"}), BUDGET)


def _summary(root) -> str:
    """summary.csv of the fixture's runs: knowledge accuracy as lm-eval gives it (every
    question) and a perplexity that is 99 at every intermediate checkpoint."""
    rows = []
    for cell in cells():
        labels = {"model": "m", **{k: cell[k] for k in ("compression", "recovery", "seed", "steps", "run")}}
        ppl = 99.0 if cell["steps"] not in (None, 60) else 20 + (cell["compression"] == "q") + (cell["steps"] == 60) / 2
        rows.append({**labels, "task": "heldout_ppl", "subtask": "heldout_ppl", "metric": "word_perplexity",
                     "filter": "none", "value": ppl, "stderr": 0.1, "n": 10, "extra_params": 0, "extra_bytes": 0,
                     "training_time_s": 1.0, "disk_bytes": 1e6, "latency_batch_s": 0.1, "latency_token_s": 0.01,
                     "base_precision": "fp32"})
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)
    return str(root / "summary.csv")


def test_report_shows_the_split_the_budget_curves_and_the_collateral_damage(run):
    root, out, _, _, _ = run
    summary_csv = _summary(root)
    figures = {name: str(root / f"{name}.png") for name in FIGURES}
    run_figures(summary_csv=summary_csv, analysis_dir=str(out), knowledge_tasks=list(N), out_files=figures)
    cost = {"model": "m", "compression": "none", "recovery": "none", "extra_params": 0, "extra_bytes": 0,
            "training_time_s": 0, "disk_bytes": 1e6, "latency": {"batch": {"median_s": 0.1},
                                                                 "generation": {"per_token_s": 0.01}},
            "library_versions": {}}
    (root / "cost.json").write_text(json.dumps(cost))
    run_report(summary_csv=summary_csv, analysis_dir=str(out), figures=figures, cost_files=[str(root / "cost.json")],
               config={"seed": 0}, knowledge_tasks=list(N), out_html=str(root / "report.html"))
    page = (root / "report.html").read_text()
    assert page.index("Verdict") < page.index("Dev/test split") < page.index("Accuracy and perplexity") \
        < page.index("Budget curves") < page.index("Collateral damage") < page.index("Pictures")
    split = page[page.index("Dev/test split"):page.index("Accuracy and perplexity")]
    assert "<td>currencies</td><td>0</td><td>40</td><td>yes</td>" in split and "test</b> questions only" in split
    assert "<th>rank</th>" in split
    budget = page[page.index("Budget curves"):page.index("Collateral damage")]
    assert "constant (AdamW, no schedule)" in budget and "not corrected for multiplicity" in budget
    assert budget.count("data:image/png;base64,") == 1 and "<td>30,720</td>" in budget
    assert page.count("data:image/png;base64,") == len(FIGURES)
    # headline accuracy: test questions; perplexity: the final budget only (99 is an intermediate checkpoint's)
    headline = page[page.index("Accuracy and perplexity"):page.index("Knowledge recovery vs")]
    ids = ids_in(out)
    assert "capitals, test questions" in headline and "all knowledge (pooled), test questions" in headline
    assert f"{expected_acc(ids, 'none', 'none', None):.3f}" in headline
    ppl = headline[headline.index("<td>held-out word_perplexity</td>"):]
    cells = re.findall(r"<td>([^<]*)</td>", ppl[:ppl.index("</tr>")])[1:]
    assert {c.split(" ± ")[0] for c in cells} == {"20.00", "20.50", "21.00", "21.50"}
    assert "Text generated by model m: 5 of 50 passages were dropped" in page and "2 more as too short" in page


def test_the_budget_figure_draws_one_curve_per_group_and_single_budgets_too(run):
    root, out, _, _, _ = run
    data = Inputs.read(_summary(root), str(out), list(N))
    fig = budget_curves(data)
    accuracy_panel = fig.axes[0]
    assert len(accuracy_panel.containers) == len(GROUPS)
    xs = {c.get_label(): list(c.lines[0].get_xdata()) for c in accuracy_panel.containers}
    assert xs["q/lora"] == [0, 15 * 512, 30 * 512, 60 * 512]
    final = data.budget_curve[data.budget_curve.steps.isin([0, 60])]
    fig = budget_curves(dataclasses.replace(data, budget_curve=final))  # one budget: the final one alone
    assert [len(c.lines[0].get_xdata()) for c in fig.axes[1].containers] == [2] * len(GROUPS)
    fig = budget_curves(dataclasses.replace(data, budget_curve=final.iloc[:0]))
    assert "no recovered compressed model" in fig.axes[0].texts[0].get_text()


def test_summary_carries_steps_and_accepts_intermediate_checkpoints_without_cost(tmp_path):
    evals, costs = [], []
    for run, steps in (("g.seed0", 60), ("g.seed0.step15", None)):  # the second's steps come from the plan
        labels = {"model": "m", "compression": "q", "recovery": "g", "seed": 0, "steps": steps, "run": run}
        evals.append(tmp_path / f"{run}.json")
        evals[-1].write_text(json.dumps({"compress_recover": {**labels, "task": "capitals"},
                                         "results": {"capitals": {"acc,none": 0.5}},
                                         "n-samples": {"capitals": {"effective": 12}}}))
        costs.append(tmp_path / f"{run}.cost.json")
        costs[-1].write_text(json.dumps({**labels, "extra_params": 1, "extra_bytes": 0, "training_time_s": 1,
                                         "disk_bytes": 1, "latency": {"batch": {"median_s": 0.1},
                                                                      "generation": {"per_token_s": 0.01}}}))
    plan = {"none": None, "g.seed0": 60, "g.seed0.step15": 15}
    table = summarize(eval_files=list(map(str, evals)), cost_files=[str(costs[0])], out_csv=str(tmp_path / "s.csv"),
                      steps=plan)
    assert table.set_index("run").steps.to_dict() == {"g.seed0.step15": 15, "g.seed0": 60}
    assert pd.read_csv(tmp_path / "s.csv").set_index("run").latency_batch_s.isna().to_dict() == \
        {"g.seed0.step15": True, "g.seed0": False}
    with pytest.raises(ValueError, match="no cost.json for .*'g.seed0'"):
        summarize(eval_files=list(map(str, evals)), cost_files=[str(costs[1])], out_csv=str(tmp_path / "t.csv"),
                  steps=plan)
    with pytest.raises(ValueError, match=r"run\(s\) \['g.seed0.step15'\] state no training steps"):
        summarize(eval_files=list(map(str, evals)), cost_files=[str(costs[0])], out_csv=str(tmp_path / "t.csv"),
                  steps={"g.seed0": 60})
