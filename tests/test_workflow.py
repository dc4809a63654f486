"""The whole DAG through Snakemake on a tiny config: results, reruns and bad input."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
import yaml

from compress_recover.aggregate.stats.verdict import VERDICTS
from compress_recover.aggregate.figures import FIGURES
from tinyflow import planned_jobs, snakemake, tiny_config

pytestmark = pytest.mark.workflow


def test_summary_has_every_cell_task_and_metric(finished_run):
    workdir, _ = finished_run
    table = pd.read_csv(workdir / "results" / "summary.csv", keep_default_na=False, na_values=[""])
    cells = set(zip(table.model, table.compression, table.run, strict=True))
    finals = [f"{r}.seed{s}" for r in ("lora", "prompt_tuning-gen", "idp-mix0.5") for s in (0, 1)]
    runs = ["none", *finals, *(f"{r}.step2" for r in finals)]  # each run at step 4 and its checkpoint at 2
    computed = ["eora.seed0", "fewshot.seed0", "fewshot.seed1"]  # training-free: no steps; EoRA ignores the seed
    assert cells == {("tiny", "none", "none"), *(("tiny", "gptq-w4g32", r) for r in runs + computed)}
    # recovery is the entry, seed its training seed (empty without training), run the folder, steps its budget
    for recovery, seed, run, steps in set(zip(table.recovery, table.seed, table.run, table.steps, strict=True)):
        base = recovery if recovery == "none" else f"{recovery}.seed{int(seed)}"
        assert run == (base if recovery == "none" or steps == 4 or pd.isna(steps) else f"{base}.step{int(steps)}")
        assert (recovery == "none") == pd.isna(seed) and pd.isna(steps) == (recovery in ("none", "eora", "fewshot"))
    # each row says which side of the 2 x 2 its remedy is on, and whether it trains
    sides = table.drop_duplicates("recovery").set_index("recovery")
    assert sides.loc["eora", ["side", "trained"]].tolist() == ["parameters", False]
    assert sides.loc["fewshot", ["side", "trained"]].tolist() == ["input", False]
    assert sides.loc["lora", ["side", "trained"]].tolist() == ["parameters", True] and pd.isna(sides.loc["none", "side"])
    assert set(table.base_precision) == {"float32 safetensors, loaded as float32"}
    assert set(table.task) == {"capitals", "element_symbol", "heldout_ppl"}
    knowledge, ppl = table[table.task != "heldout_ppl"], table[table.task == "heldout_ppl"]
    assert set(knowledge.metric) == {"acc", "acc_norm"}
    assert set(ppl.metric) == {"word_perplexity", "byte_perplexity", "bits_per_byte"}
    assert len(knowledge) == 17 * 2 * 2 and len(ppl) == 17 * 3
    assert (knowledge.n == 12).all()
    assert knowledge.value.between(0, 1).all() and (knowledge.stderr > 0).all()
    assert (ppl[ppl.metric == "word_perplexity"].value > 1).all()
    # cost columns: nothing extra without recovery, the adapter's size with it, latency measured
    first = table[~table.run.str.contains(".step", regex=False)].groupby("run").first()  # checkpoints: no cost job
    assert first.loc["none", "extra_params"] == 0 and (first.drop(["none", "fewshot.seed0", "fewshot.seed1"])[
        "extra_params"] > 0).all()
    # few-shot adds no parameter, only input: its latency is timed on the longer input
    fewshot = json.loads((workdir / "results/tiny/gptq-w4g32/fewshot.seed0/cost.json").read_text())
    assert first.loc["fewshot.seed0", "extra_params"] == 0 and fewshot["input_tokens_added"] > 0
    assert fewshot["latency"]["batch"]["seq_len"] == 16 + fewshot["input_tokens_added"] and fewshot["trained"] is False
    # EoRA adds what LoRA of its rank would, and is computed from the compression's calibration blocks
    eora = json.loads((workdir / "results/tiny/gptq-w4g32/eora.seed0/adapter/manifest.json").read_text())
    assert first.loc["eora.seed0", "extra_params"] == eora["trainable_parameters"] > 0 and eora["trained"] is False
    assert eora["details"]["calibration"]["from"] == "the compression's" and \
        eora["details"]["calibration_output_error_ratio"] < 1
    costed = table[table.run.isin(first.index)]
    assert (costed.latency_batch_s > 0).all() and (costed.latency_token_s > 0).all()
    assert first.loc["idp-mix0.5.seed1", "extra_params"] == 2 * 2 * 64
    idp = json.loads((workdir / "results/tiny/gptq-w4g32/idp-mix0.5.seed0/adapter/manifest.json").read_text())
    # distillation read the teacher's cached logits (one cache per model), computed by the uncompressed model
    assert idp["objective"]["loss"] == "mix" and idp["teacher"] == "results/tiny/none/teacher_logits"
    assert idp["teacher_logits"]["teacher"] == "results/tiny/none/checkpoint" and idp["teacher_logits"]["top_k"] > 0
    # prompt tuning trained on the text the uncompressed model wrote, leak-filtered
    pt = json.loads((workdir / "results/tiny/gptq-w4g32/prompt_tuning-gen.seed0/adapter/manifest.json").read_text())
    assert pt["text"] == "results/tiny/none/generated_text" and pt["budget"]["budget_steps"] == [2, 4]
    generated = json.loads((workdir / "results/tiny/none/generated_text/leak_report.json").read_text())
    assert generated["model"] == "tiny" and generated["train_passages"] > 0 and "dropped_leaks" in generated
    step = json.loads((workdir / "results/tiny/gptq-w4g32/lora.seed0.step2/adapter/manifest.json").read_text())
    assert step["budget"]["steps"] == 2 and step["losses"] == lora_losses(workdir)[:2]
    # each seed trained with its own seed, and the evaluation is labelled with it
    lora = [json.loads((workdir / f"results/tiny/gptq-w4g32/lora.seed{s}/adapter/manifest.json").read_text())
            for s in (0, 1)]
    assert [m["budget"]["seed"] for m in lora] == [0, 1] and lora[0]["losses"] != lora[1]["losses"]
    labels = json.loads((workdir / "results/tiny/gptq-w4g32/lora.seed1/eval/capitals.json").read_text())
    assert {k: labels["compress_recover"][k] for k in ("recovery", "seed", "run")} == {
        "recovery": "lora", "seed": 1, "run": "lora.seed1"}
    # each row's value is the mean of its per-question samples
    row = table[(table.compression == "gptq-w4g32") & (table.run == "lora.seed0") & (table.task == "capitals")
                & (table.metric == "acc")].iloc[0]
    samples = [json.loads(line) for line in
               (workdir / "results/tiny/gptq-w4g32/lora.seed0/eval/capitals.samples.jsonl").read_text().splitlines()]
    assert row.value == pytest.approx(sum(s["acc"] for s in samples) / len(samples), abs=1e-6)
    # every stage left its manifest and its log
    assert (workdir / "results/tiny/gptq-w4g32/checkpoint/manifest.json").exists()
    assert (workdir / "results/tiny/gptq-w4g32/lora.seed0/adapter/adapter_model.safetensors").exists()
    assert "dropped_leaks" in (workdir / "results/data/text/leak_report.json").read_text()
    assert (workdir / "logs/tiny/gptq-w4g32/compress.log").stat().st_size > 0


def lora_losses(workdir):
    return json.loads((workdir / "results/tiny/gptq-w4g32/lora.seed0/adapter/manifest.json").read_text())["losses"]


def _reversed_keys(value):
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(sorted(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def test_rerun_is_a_no_op_even_with_keys_reordered(finished_run):
    workdir, config = finished_run
    assert planned_jobs(snakemake(workdir, config, "--dry-run")) == {}
    assert planned_jobs(snakemake(workdir, _reversed_keys(config), "--dry-run", sort_keys=False)) == {}


def test_changing_lora_rank_reschedules_only_the_lora_branch(finished_run):
    workdir, config = finished_run
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["recovery"]["methods"][1]["rank"] = 2
    # both seeds of the entry rerun
    assert planned_jobs(snakemake(workdir, changed, "--dry-run")) == {
        "recover_lora": 2, "evaluate": 4, "cost": 2, "summary": 1, "analysis": 1, "attention": 1, "figures": 1,
        "report": 1, "all": 1, "total": 14}
    # the original config is still complete
    assert planned_jobs(snakemake(workdir, config, "--dry-run")) == {}


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(colour="blue"), "colour"),
    (lambda c: c["models"]["tiny"].update(source="ftp"), "ftp"),
    (lambda c: c["compression"]["methods"][1].update(bits=5), "bits"),
    (lambda c: c["models"].update(x={"source": "local", "path": "/no/such/dir"}), "models.x.path"),
    (lambda c: c["compression"]["methods"].append({"method": "wanda", "sparsity": 1.5}), "sparsity"),
    (lambda c: c["compression"]["methods"].append({"method": "sparsegpt", "n_m": "4:2"}),
     "compression.methods[2].n_m"),
    (lambda c: c["compression"]["methods"].append({"method": "gptq", "group_size": 128}),
     "compression.methods[2].group_size: 128 does not divide"),
])
def test_bad_config_stops_before_any_job(tmp_path, mutate, message):
    config = tiny_config(tmp_path / "unused")
    config["models"]["tiny"] = {"source": "embedded"}
    mutate(config)
    proc = snakemake(tmp_path, config)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_offline_hub_model_fails_with_its_name_and_leaves_nothing(tmp_path):
    config = tiny_config(tmp_path / "unused")
    config["models"] = {"remote": {"source": "hub", "id": "HuggingFaceTB/SmolLM2-135M", "revision": "main",
                                   "allow_floating_revision": True}}
    target = "results/remote/none/checkpoint"
    proc = snakemake(tmp_path, config, target, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    log = (tmp_path / "logs/remote/none/download.log").read_text()
    assert "model 'remote'" in log and "HuggingFaceTB/SmolLM2-135M" in log and "offline" in log
    assert not (tmp_path / target).exists()
    assert planned_jobs(snakemake(tmp_path, config, target, "--dry-run")) == {"download": 1, "total": 1}


def test_analysis_and_report_from_the_tiny_run(finished_run):
    workdir, _ = finished_run
    verdict = json.loads((workdir / "results/analysis/verdict.json").read_text())
    (v,) = verdict["verdicts"]
    assert v["compression"] == "gptq-w4g32"
    assert v["verdict"] in VERDICTS
    # the evidence recomputed from questions.csv: pooled test questions, final budget (4 steps)
    qs = pd.read_csv(workdir / "results/analysis/questions.csv")
    final = qs[(qs.task == "all_knowledge") & (qs.split == "test") & (qs.steps.isna() | (qs.steps == 4))]
    run_acc = final.groupby(["compression", "recovery", "run"]).correct.mean()
    e = v["evidence"]
    base_acc, comp_acc = run_acc[("none", "none", "none")], run_acc[("gptq-w4g32", "none", "none")]
    assert e["base_acc"] == pytest.approx(base_acc) and e["compressed_acc"] == pytest.approx(comp_acc)
    assert e["damage"] == pytest.approx(base_acc - comp_acc) and e["n"] == final.doc_id[final.run == "none"].nunique()
    # the pool's prompts trained with 8 examples in all (4 steps x 2): below report.pool_min_examples, so
    # the pool's runs are shown but excluded from the decisions; a distilling pool is also a reference
    excluded = [m for m in e["methods"] if m["status"] == "failed"]
    assert [m["recovery"] for m in excluded] == ["idp-mix0.5"]
    assert excluded[0]["decision"].startswith("excluded (") and "undertrained prompts: " in excluded[0]["decision"]
    assert {m["recovery"]: m["reference"] for m in e["methods"] if m["reference"]} == {
        "eora": "the uncompressed weights", "idp-mix0.5": "the uncompressed model's logits"}
    for m in e["methods"]:
        if m["status"] == "failed":
            continue
        recovered = run_acc.loc[("gptq-w4g32", m["recovery"])].mean()  # mean over the seeds' runs
        assert m["recovered_acc"] == pytest.approx(recovered)
        raw = (recovered - comp_acc) / (base_acc - comp_acc) if base_acc > comp_acc else None
        assert (m["recovery_fraction"] is None) if raw is None else m["recovery_fraction"] == pytest.approx(raw)
        # 2 seeds: claims about the runs (EoRA ignores the seed: one run)
        assert len(m["seeds"]) == (1 if m["recovery"] == "eora" else 2)
        assert m["claim"] == {"eora": "training-free run", "fewshot": "training-free runs"}.get(m["recovery"],
                                                                                               "trained adapters")
    # the verdict follows from its evidence: no measurable loss exactly when the bound is below min_damage
    assert (v["verdict"] == "no measurable loss") == (e["damage_upper"] < e["min_damage"])
    assert verdict["leaks"]["remaining_leaks"] == 0 and verdict["leaks"]["dropped_leaks"] >= 0
    flips = pd.read_csv(workdir / "results/analysis/flips.csv", keep_default_na=False)
    pooled = flips[(flips.task == "all_knowledge") & (flips.category.isin(["kept", "lost", "gained"]))]
    questions = pd.read_csv(workdir / "results/analysis/questions.csv")
    base = questions[(questions.compression == "none") & (questions.split == "test")
                     & (questions.task != "all_knowledge")]
    # kept + lost = the TEST questions the base model got right (the flips, as every headline
    # table, read the test split only)
    assert len(base) == 2 * (12 - 5) and set(questions.split) == {"dev", "test"}  # 5 of 12 per task in dev (40%)
    assert pooled[pooled.category.isin(["kept", "lost"])]["count"].sum() == int(base.correct.sum())
    # the budget curve starts at the compressed model and has every listed step of every method
    curve = pd.read_csv(workdir / "results/analysis/budget_curve.csv")
    assert {(r, s) for r, s in zip(curve.recovery, curve.steps, strict=True)} >= {
        ("lora", 2), ("lora", 4), ("prompt_tuning-gen", 2), ("prompt_tuning-gen", 4), ("idp-mix0.5", 4)}
    assert (curve[curve.steps == 0].recovered_acc == curve[curve.steps == 0].compressed_acc).all()
    # the self-generated text was leak-checked by the analysis as well
    (generated,) = verdict["leaks"]["generated"]
    assert generated["model"] == "tiny" and generated["remaining_leaks"] == 0
    assert (workdir / "results/summary.parquet").exists()
    parquet = pd.read_parquet(workdir / "results/summary.parquet")
    parquet["seed"] = parquet["seed"].astype(float)  # Int64 with <NA>; the CSV reads back floats with NaN
    pd.testing.assert_frame_equal(parquet, pd.read_csv(workdir / "results/summary.csv"), check_dtype=False, rtol=1e-5)
    page = (workdir / "results/report.html").read_text()
    assert page.index("At a glance") < page.index("id='explorer'") < page.index("Verdict: the evidence") \
        < page.index("Accuracy and perplexity") < page.index("Pictures") < page.index("<b>Rule.</b>")
    # the content-free baseline: every run (few-shot ones too) paired on every test question, beside accuracy
    cf = pd.read_csv(workdir / "results/analysis/content_free.csv")
    pooled_cf = cf[cf.task == "all_knowledge"]
    assert (pooled_cf.n == e["n"]).all() and len(pooled_cf) == final.groupby(["compression", "recovery"]).ngroups
    assert ((pooled_cf.above_content_free - (pooled_cf.acc - pooled_cf.acc_content_free)).abs() < 1e-5).all()
    assert "id='content-free'" in page and "Accuracy above the content-free baseline" in page
    # the 2 x 2 view: EoRA and few-shot (training-free) beside the trained remedies, each cell's best with cost
    view = page[page.index("id='remedies'"):page.index("Budget curves")]
    for cell in ("<td>training-free</td><td>input</td><td>fewshot</td>",
                 "<td>training-free</td><td>parameters</td><td>eora</td>",
                 "<td>trained</td><td>parameters</td><td>lora</td>"):
        assert cell in view, cell
    # every figure (FIGURES) and the attention plot, inlined; nothing fetched from a network; under 5 MB
    assert page.count("data:image/png;base64,") == len(FIGURES) + 1 and "http://" not in page and "https://" not in page
    assert len(page.encode()) < 5_000_000
    ppl = pd.read_csv(workdir / "results/summary.csv")
    assert (ppl[ppl.metric == "word_perplexity"].value > 1).all() and (ppl.task == "heldout_ppl").any()


def test_snakemake_report_collects_the_figures(finished_run, tmp_path):
    workdir, config = finished_run
    out = tmp_path / "snakemake-report.zip"
    proc = snakemake(workdir, config, "--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(out).namelist()
    assert sum(n.endswith(".png") for n in names) >= 4, names


def _browser():
    from browser import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (REQUIRE_BROWSER=1)")
        pytest.skip("chromium not installed; .ci/run installs it and sets REQUIRE_BROWSER=1")
    return Browser, binary


SET = """((id, value) => { const e = document.getElementById(id); e.value = value;
    e.dispatchEvent(new Event(e.tagName === 'INPUT' ? 'input' : 'change')); })"""


def _status_questions(workdir) -> tuple[str, int, int]:
    """From questions.csv alone, with pandas: the test questions of the compressed model that
    the base model answers right and the compressed one wrong (lost; kept when the tiny
    model loses none), and those of them whose question text contains "capital" (the
    explorer's search also reads the answers shown: none of them contains it, checked)."""
    from compress_recover.aggregate.results import QUESTIONS

    q = QUESTIONS.read(workdir / "results/analysis")
    q = q[(q.task != "all_knowledge") & (q.split == "test") & (q.recovery == "none")]
    assert not q.answer.str.lower().str.contains("capital").any()
    assert not q.chosen.str.lower().str.contains("capital").any()
    base = q[q.compression == "none"].set_index(["task", "doc_id"])
    comp = q[q.compression == "gptq-w4g32"].set_index(["task", "doc_id"]).reindex(base.index)
    right, still = base.correct.astype(bool), comp.correct.astype(bool)
    status, chosen = ("lost", base[right & ~still]) if (right & ~still).any() else ("kept", base[right & still])
    return status, len(chosen), int(chosen.question.str.lower().str.contains("capital").sum())


def test_report_renders_in_a_real_browser(finished_run):
    """Chromium opens the report: the verdict sentence first, every image, no console error,
    no table wider than the page; the explorer's status filter and text search show as many
    rows as questions.csv says, its counts equal flips.csv's, "answered from the prior" shows as
    many as questions.csv's from_prior, and a row opens its choices."""
    Browser, binary = _browser()
    workdir, _ = finished_run
    report = workdir / "results/report.html"
    profile = workdir / "chromium-profile"
    profile.mkdir(exist_ok=True)
    browser = Browser(binary, profile)
    flips = pd.read_csv(workdir / "results/analysis/flips.csv", keep_default_na=False)
    flips = flips[(flips.task == "all_knowledge") & (flips.compression == "gptq-w4g32")]
    status, chosen, chosen_capitals = _status_questions(workdir)
    try:
        browser.open(report.resolve().as_uri())
        state = browser.evaluate("""(() => {
            const imgs = [...document.images];
            return {images: imgs.length,
                    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
                    tables: document.querySelectorAll('table').length,
                    verdicts: [...document.querySelectorAll('.verdict h3')].map(h => h.textContent),
                    firstHeading: document.querySelector('h2').textContent,
                    sentence: document.querySelector('#glance ~ .verdict').textContent,
                    pageWidth: document.documentElement.scrollWidth, window: window.innerWidth,
                    rows: document.querySelectorAll('#ex-body tr.ex-row').length,
                    count: document.getElementById('ex-count').textContent};
        })()""")
        browser.screenshot(workdir / "results" / "report_screenshot.png")
        browser.evaluate(f"{SET}('ex-status', 'status:{status}')")
        by_status = browser.evaluate("document.querySelectorAll('#ex-body tr.ex-row').length")
        browser.evaluate(f"{SET}('ex-search', 'CAPITAL')")
        by_both = browser.evaluate("[document.querySelectorAll('#ex-body tr.ex-row').length, "
                                   "document.getElementById('ex-count').textContent]")
        browser.evaluate(f"{SET}('ex-search', '')")
        browser.evaluate("document.querySelector('#ex-body tr.ex-row').click()")
        choices = browser.evaluate("document.querySelectorAll('#ex-body tr.ex-detail table tr').length - 1")
        explorer_top = browser.evaluate("document.getElementById('explorer').getBoundingClientRect().top + scrollY")
        browser.screenshot(workdir / "results" / "explorer_screenshot.png",
                           {"x": 0, "y": explorer_top, "width": 1400, "height": 1000})
        counts = {}
        for option in ("won:lora", "broken:prompt_tuning-gen", "several"):
            browser.evaluate(f"{SET}('ex-status', '{option}')")
            counts[option] = browser.evaluate("document.querySelectorAll('#ex-body tr.ex-row').length")
        browser.evaluate(f"{SET}('ex-status', '')")
        for option in ("fp:tiny/gptq-w4g32/none", "not:tiny/gptq-w4g32/none"):
            browser.evaluate(f"{SET}('ex-prior', '{option}')")
            counts[option] = browser.evaluate("document.querySelectorAll('#ex-body tr.ex-row').length")
        errors = browser.errors()
    finally:
        browser.close()
    assert state["images"] == len(FIGURES) + 1 and state["broken"] == 0, state
    assert state["tables"] >= 5 and state["firstHeading"] == "At a glance"
    assert "tiny / gptq-w4g32:" in state["sentence"] and "Compression lost" in state["sentence"]
    assert len(state["verdicts"]) == 1 and "gptq-w4g32" in state["verdicts"][0]
    assert state["pageWidth"] <= state["window"], state  # wide tables scroll inside their box
    test = pd.read_csv(workdir / "results/analysis/split.csv").split.eq("test").sum()
    assert state["rows"] == test and state["count"] == f"{test} of {test} test questions", state
    assert by_status == chosen == int(flips[flips.category == status]["count"].iloc[0]) > 0
    assert by_both == [chosen_capitals, f"{chosen_capitals} of {test} test questions"] and chosen_capitals <= chosen
    assert choices == 4
    # two seeds: the explorer shows the majority, the flips table's majority rows

    def flip(category, recovery, seed):
        row = flips[(flips.category == category) & (flips.recovery == recovery) & (flips.seed.astype(str) == seed)]
        return int(row["count"].iloc[0])

    assert counts["won:lora"] == flip("recovered", "lora", "majority")
    assert counts["broken:prompt_tuning-gen"] == flip("broken", "prompt_tuning-gen", "majority")
    assert counts["several"] == flip("recovered_by_several", "", "")
    # "answered from the prior" by the compressed model: questions.csv's from_prior, counted with pandas
    from compress_recover.aggregate.results import QUESTIONS

    q = QUESTIONS.read(workdir / "results/analysis")
    comp = q[(q.task != "all_knowledge") & (q.split == "test") & (q.compression == "gptq-w4g32")
             & (q.recovery == "none")]
    assert comp.from_prior.notna().all()
    assert counts["fp:tiny/gptq-w4g32/none"] == int(comp.from_prior.eq(True).sum())
    assert counts["not:tiny/gptq-w4g32/none"] == int(comp.from_prior.eq(False).sum())
    assert counts["fp:tiny/gptq-w4g32/none"] + counts["not:tiny/gptq-w4g32/none"] == test
    assert not errors, errors
    assert (workdir / "results/report_screenshot.png").stat().st_size > 10_000
    assert (workdir / "results/explorer_screenshot.png").stat().st_size > 10_000


def test_a_task_text_is_shown_as_text_never_run(finished_run, tmp_path):
    """A custom task's question "<script>...</script>" and a choice carrying an onerror
    handler, put into questions.csv and rendered by the report step: the explorer shows both
    as text (found by the search, in the row and its choices) and nothing runs."""
    import json

    from compress_recover.aggregate.report import run_report

    Browser, binary = _browser()
    workdir, config = finished_run
    results = workdir / "results"
    analysis = tmp_path / "analysis"
    shutil.copytree(results / "analysis", analysis)
    questions = pd.read_csv(analysis / "questions.csv", keep_default_na=False, dtype=str)
    first = (questions.task == "capitals") & (questions.doc_id == questions[questions.task == "capitals"].doc_id.iloc[0])
    script, trap = "<script>window.__ran = 1</script>Which?", '<img src=x onerror="window.__ran = 2">'
    choices = json.loads(questions[first].choices.iloc[0])
    choices[1] = trap
    questions.loc[first, "question"] = script
    questions.loc[first, "choices"] = json.dumps(choices)
    questions.to_csv(analysis / "questions.csv", index=False)
    out = tmp_path / "report.html"
    run_report(summary_csv=str(results / "summary.csv"), analysis_dir=str(analysis),
               figures={name: str(results / "figures" / f"{name}.png") for name in FIGURES},
               cost_files=[str(p) for p in sorted(results.rglob("cost.json"))], config=config,
               knowledge_tasks=config["data"]["knowledge_tasks"], out_html=str(out))
    page = out.read_text()
    assert "<script>window.__ran" not in page and "<img src=x" not in page  # escaped in the embedded JSON
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(binary, profile)
    try:
        browser.open(out.resolve().as_uri())
        browser.evaluate(f"{SET}('ex-split', {json.dumps(questions[first].split.iloc[0])})")
        browser.evaluate(f"{SET}('ex-search', 'window.__ran = 1')")
        shown = browser.evaluate("[...document.querySelectorAll('#ex-body tr.ex-row td.ex-q')].map(t => t.textContent)")
        browser.evaluate("document.querySelector('#ex-body tr.ex-row').click()")
        detail = browser.evaluate("document.querySelector('#ex-body tr.ex-detail').textContent")
        ran = browser.evaluate("typeof window.__ran")
        errors = browser.errors()
    finally:
        browser.close()
    assert shown == [script] and trap in detail and ran == "undefined"
    assert not errors, errors
