"""The analysis rule end to end on hand-made sample files (strict JSON, every table), and
the figures and the report drawn from it: the rule and the verdict first, the base
model's precision beside "base", the base model first, one colour per recovery method."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from compress_recover.aggregate.analysis import run_analysis
from compress_recover.aggregate.figures import FIGURES, Inputs, accuracy_vs_compression, run_figures
from compress_recover.aggregate.report import run_report
from compress_recover.recover.colours import method_colour

METHODS = {"none": "none", "lora": "lora", "lora.seed0": "lora", "lora.seed1": "lora", "idp": "idp",
           "idp.seed0": "idp", "idp.seed1": "idp"}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
BUDGET = {"steps": 60, "batch_size": 4, "seq_len": 128}
PRECISION = "Q4_1 GGUF, dequantized to float32"
N = 120


def _row(i: int, right: bool, pool: int | None = None) -> dict:
    scores = [-1.0, -2.0, -3.0] if right else [-2.0, -1.0, -3.0]
    row = {"doc_id": i, "target": 0, "arguments": [["Q?", " a"], ["Q?", " bb"], ["Q?", " ccc"]],
           "resps": [[[s, False]] for s in scores], "filtered_resps": [[s, False] for s in scores],
           "acc": float(right), "acc_norm": float(right)}
    if pool is not None:
        row["idp_prompt"] = pool
        row["idp_prompt_loglikelihoods"] = [scores, [-2.0, -1.0, -3.0]]  # prompt 1 forced is always wrong
    return row


def _cells() -> dict:
    base = np.arange(N) < 100
    comp = np.arange(N) < 40
    out = {("none", "none", None): base, ("q", "none", None): comp}
    for seed in (0, 1):
        out[("q", "lora", seed)] = np.arange(N) < 90 + seed
        out[("q", "idp", seed)] = np.arange(N) < 50 + seed
        out[("none", "lora", seed)] = base
        out[("none", "idp", seed)] = base
    return out


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    samples, summary = [], []
    for (comp, rec, seed), right in _cells().items():
        run = rec if seed is None else f"{rec}.seed{seed}"
        path = root / "samples" / f"{comp}-{run}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps(_row(i, bool(r), 0 if rec == "idp" else None)) + "\n"
                                for i, r in enumerate(right)))
        labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed, "run": run, "task": "capitals"}
        samples.append((labels, str(path)))
        for metric, value in (("acc", right.mean()), ("word_perplexity", 30.0 - 10 * right.mean())):
            summary.append({**{k: labels[k] for k in ("model", "compression", "recovery", "seed", "run")},
                            "task": "capitals" if metric == "acc" else "heldout_ppl",
                            "subtask": "capitals" if metric == "acc" else "heldout_ppl", "metric": metric,
                            "filter": "none", "value": value, "stderr": 0.01, "n": N,
                            "extra_params": 0 if rec == "none" else 1000, "extra_bytes": 0, "training_time_s": 1.0,
                            "disk_bytes": 1e6, "latency_batch_s": 0.1, "latency_token_s": 0.01,
                            "base_precision": PRECISION})
    text = root / "text"
    text.mkdir()
    (text / "leak_report.json").write_text(json.dumps({"dropped_leaks": 0, "passages_total": 2,
                                                       "train_passages": 1, "heldout_passages": 1}))
    for split in ("train", "heldout"):
        (text / f"{split}.jsonl").write_text(json.dumps({"id": 0, "text": "Mild weather."}) + "\n")
    task = root / "capitals"
    task.mkdir()
    (task / "capitals.jsonl").write_text(json.dumps({"subject": "Lithuania", "answer_text": "Vilnius"}) + "\n")
    out = root / "analysis"
    verdict = run_analysis(samples=samples, knowledge_tasks=["capitals"], task_dirs=[str(task)], text_dir=str(text),
                           methods=METHODS, sides=SIDES, budget=BUDGET, seed=0, out_dir=str(out),
                           report={"alpha": 0.05, "min_recovery_fraction": 0.5, "bootstrap_iters": 500,
                                   "noninferiority_margin": 0.1, "power": 0.8, "attention_analysis": False},
                           seeds=[0, 1]).verdict_json()
    summary_csv = root / "summary.csv"
    pd.DataFrame(summary).to_csv(summary_csv, index=False)
    return root, out, verdict, summary_csv


def test_run_analysis_writes_every_table_and_strict_json(analysed):
    root, out, verdict, _ = analysed
    text = (out / "verdict.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    (v,) = verdict["verdicts"]
    # lora: (90.5 - 40) / 60 = 0.84 recovers; idp: (50.5 - 40) / 60 = 0.18 fails
    assert v["verdict"] == "recoverable only with new parameters"
    assert "about the trained adapter(s), not the method (fewer than 3 seeds)" in v["reason"]
    lora = next(m for m in v["evidence"]["methods"] if m["recovery"] == "lora")
    assert lora["seeds"] == [0, 1] and lora["fraction"] == pytest.approx(50.5 / 60)
    assert lora["fraction_used"] == "controlled" and lora["control_seeds"] == [0, 1]
    assert verdict["seeds"] == [0, 1] and verdict["thresholds"]["noninferiority_margin"] == 0.1
    for name in ("questions", "accuracy", "recovery_fraction", "decisions", "noninferiority", "format_control",
                 "margin_tests", "paired_tests", "flips", "prompt_pool_ablation"):
        assert (out / f"{name}.csv").exists(), name
    questions = pd.read_csv(out / "questions.csv")
    assert len(questions) == 2 * N * len(_cells())   # capitals and the pooled task
    assert questions.iloc[0][["compression", "recovery"]].tolist() == ["none", "none"]  # base first
    acc = pd.read_csv(out / "accuracy.csv")
    lora_acc = acc[(acc.recovery == "lora") & (acc.compression == "q") & (acc.task == "capitals")].iloc[0]
    assert lora_acc.acc == pytest.approx(90.5 / N) and lora_acc.acc_sd == pytest.approx(np.std([90, 91], ddof=1) / N)
    ablation = pd.read_csv(out / "prompt_pool_ablation.csv")
    row = ablation[(ablation.task == "capitals") & (ablation.compression == "q") & (ablation.seed == 0)].iloc[0]
    assert row.chosen_counts == f"{N}/0" and row.acc_best_fixed_crossfit == pytest.approx(50 / N)
    assert "acc_any_prompt" not in ablation   # dropped (aggregate.stats.ablation)


def test_figures_give_each_recovery_method_one_colour(analysed):
    root, out, _, summary_csv = analysed
    data = Inputs.read(str(summary_csv), str(out), ["capitals"])
    fig = accuracy_vs_compression(data)
    lines = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines() if
             not line.get_label().startswith("_")}
    containers = {c.get_label(): c.lines[0].get_color() for c in fig.axes[0].containers}
    colours = lines or containers
    assert colours["lora"] == method_colour("lora") and colours["idp"] == method_colour("idp")
    assert colours["none"] == method_colour("none")
    assert len({method_colour(m) for m in ("lora", "idp", "prompt_tuning", "none")}) == 4
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "none (base)"


def test_report_puts_rule_and_verdict_first_and_states_the_base_precision(analysed):
    root, out, _, summary_csv = analysed
    figures = {name: str(root / f"{name}.png") for name in FIGURES}
    run_figures(summary_csv=str(summary_csv), analysis_dir=str(out), knowledge_tasks=["capitals"], out_files=figures)
    cost = {"model": "m", "compression": "none", "recovery": "none", "extra_params": 0, "extra_bytes": 0,
            "training_time_s": 0, "disk_bytes": 1e6, "latency": {"batch": {"median_s": 0.1},
                                                                 "generation": {"per_token_s": 0.01}},
            "library_versions": {"numpy": np.__version__}}
    (root / "cost.json").write_text(json.dumps(cost))
    pool = {"routing": "gumbel", "trained_with": "131/109", "text_before": "64/0", "text_after": "30/34",
            "text_entropy": 0.9993, "confusion": ""}
    (root / "cost_idp.json").write_text(json.dumps({**cost, "compression": "q", "recovery": "idp", "run": "idp.seed0",
                                                    "pool": pool, "extra_params": 1000}))
    (root / "cost_lora.json").write_text(json.dumps({**cost, "compression": "q", "recovery": "lora", "run": "lora.seed0",
                                                     "extra_params": 21000, "latency": {
                                                         "batch": {"median_s": 0.2}, "generation": {"per_token_s": 0.02}},
                                                     "latency_kernels": ["TorchQuantLinear"]}))
    page_file = root / "report.html"
    run_report(summary_csv=str(summary_csv), analysis_dir=str(out), figures=figures,
               cost_files=[str(root / f) for f in ("cost.json", "cost_idp.json", "cost_lora.json")], config={"seed": 0},
               knowledge_tasks=["capitals"], out_html=str(page_file))
    page = page_file.read_text()
    label = "recoverable only with new parameters"
    # the reader's order: the verdict in a sentence, the explorer, the evidence by topic, the rule last
    assert page.index("At a glance") < page.index(f"m / q: {label}.") < page.index("id='explorer'") \
        < page.index("Verdict: the evidence per method") < page.index(f"m / q: {label}</h3>") \
        < page.index("Accuracy and perplexity") < page.index("Pictures") < page.index("<b>Rule.</b>")
    # the verdict's div takes its class from the label, and the style sheet has that class
    assert '<div class="verdict recoverable-only-with-new-parameters">' in page
    assert ".recoverable-only-with-new-parameters{" in page
    assert "one Holm family at alpha" in page and "is descriptive" in page and "a method that wins back nothing" in page
    assert f"Base ({PRECISION})" in page and f"none/none = base ({PRECISION})" in page
    assert "further compression of that" in page and "Holm" in page and "non-inferior" in page.lower()
    assert "Prompt pools" in page and "Paired margins" in page and "Format control" in page
    pools = page[page.index("<h2>Prompt pools</h2>"):]
    assert "examples trained per prompt" in pools and "131/109" in pools and "0.999" in pools
    # every one of idp.seed0's 120 test questions on q was answered by prompt 0, trained with 131 examples
    assert "test questions answered by a prompt trained with &lt; 16 examples" in pools
    assert "<td>0 of 120</td><td>131</td>" in pools
    # the cost table: the pool's 1,000 extra parameters are two prompts', one of which answered
    costs = page[page.index("id='costs'"):page.index("cost claims beside ours")]
    assert "extra params used" in costs and "<td>1000</td><td>500</td>" in costs
    # the paper's claims beside ours: LoRA 21,000 / IDP 1,000 extra parameters, IDP at half LoRA's latency
    claims = page[page.index("cost claims beside ours"):]
    assert "21x" in claims and "-50%" in claims and "-60%" in claims and "idp vs lora" in claims
    assert page.count("data:image/png;base64,") == len(FIGURES)
    # the accuracy table: base model's column first, mean ± sd over the two seeds
    table = page[page.index("Accuracy and perplexity"):page.index("Knowledge recovery vs")]
    headers = table[table.index("<thead>"):table.index("</thead>")]
    assert headers.index("none/none") < headers.index("none/idp") < headers.index("q/none") < headers.index("q/idp")
    assert f"{90.5 / N:.3f} ± {np.std([90, 91], ddof=1) / N:.3f}" in table
