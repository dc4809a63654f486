"""The content-free baseline: the masked variant of a built task (data.content_free) and its
pairing with the questions (aggregate.stats.content_free)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compress_recover.aggregate.stats.content_free import (CONTENT_FREE_COLUMNS, content_free_table, prior_table,
                                                           with_priors)
from compress_recover.aggregate.stats.questions import question_table, with_pooled_task
from compress_recover.data.content_free import DocsMasker, mask_docs, variant_name
from compress_recover.data.knowledge_task import build_knowledge_task
from compress_recover.io import read_jsonl, verify_folder
from compress_recover.aggregate.analysis import run_analysis
from samples import CHOICES, METHODS, sample_row, write_samples
from test_explorer import run  # noqa: F401 (the fixture)


def test_the_variant_masks_the_subject_and_keeps_choices_answer_and_order(tmp_path):
    build_knowledge_task(task="capitals", out_dir=str(tmp_path / "capitals"), num_choices=4, seed=0,
                         max_questions=20, content_free_mask="X")
    verify_folder(tmp_path / "capitals")  # the variant's files are part of the folder's manifest
    docs = read_jsonl(tmp_path / "capitals" / "capitals.jsonl")
    masked = mask_docs(docs, task="capitals", mask="X")
    assert len(masked) == len(docs) == 20
    for doc, twin in zip(docs, masked, strict=True):
        assert doc["subject"] in doc["question"] and doc["subject"] not in twin["question"]
        assert twin["question"] == doc["question"].replace(doc["subject"], "X")
        assert {k: v for k, v in twin.items() if k != "question"} == {k: v for k, v in doc.items() if k != "question"}
    # lm-eval reads the variant from the same folder: same docs, same order, subject masked
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(tmp_path / "capitals"), include_defaults=False)
    tasks = get_task_dict(["capitals", variant_name("capitals")], manager)
    scored = list(tasks[variant_name("capitals")].test_docs())
    assert [d["question"] for d in scored] == [d["question"] for d in masked]
    assert [(d["choices"], d["answer"], d["id"]) for d in scored] == [(d["choices"], d["answer"], d["id"]) for d in docs]
    assert [d["question"] for d in tasks["capitals"].test_docs()] == [d["question"] for d in docs]


def test_a_doc_without_its_subject_is_refused_naming_the_task():
    doc = {"question": "What is the capital of France?", "choices": CHOICES, "answer": 0}
    with pytest.raises(ValueError, match=r"task mine_content_free, doc 1: .*'subject' field, which is missing"):
        DocsMasker("mine_content_free", "X")([{**doc, "subject": "France"}, doc])
    # a subject the question does not name: the masked question would still be the question
    with pytest.raises(ValueError, match=r"task mine, doc 0: subject 'Spain' appears in none of \['question'\]"):
        mask_docs([{**doc, "subject": "Spain"}], task="mine", mask="X")


def _entries(tmp_path, answers: dict, tag: str, task: str = "capitals"):
    """(labels, samples file) per run: ``answers`` maps (compression, recovery, seed) to the
    index of the chosen choice per question (the right one is 0)."""
    entries = []
    for (comp, rec, seed), chosen in answers.items():
        labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed, "task": task}
        rows = [sample_row(i, [0.0 if j == c else -1.0 for j in range(4)], choices=[f"{x} {i}" for x in CHOICES])
                for i, c in enumerate(chosen)]
        entries.append((labels, write_samples(tmp_path / f"{tag}-{comp}-{rec}-{seed}.jsonl", rows)))
    return entries


# 6 questions; the right choice is 0. The compressed model answers 4 of them as it does
# with the subject masked (from the prior): 2 of those right, 2 wrong.
WITH = {("none", "none", None): [0, 0, 0, 0, 0, 1], ("q", "none", None): [0, 0, 1, 2, 3, 0]}
MASKED = {("none", "none", None): [1, 0, 2, 2, 2, 2], ("q", "none", None): [0, 0, 1, 2, 0, 1]}


def test_pairing_gives_the_prior_and_the_accuracy_above_it(tmp_path):
    table = question_table(_entries(tmp_path, WITH, "k"), METHODS)
    paired = with_priors(table, prior_table(_entries(tmp_path, MASKED, "cf")))
    comp = paired[paired.compression == "q"].sort_values("doc_id", key=lambda d: d.astype(int))
    assert list(comp.from_prior) == [True, True, True, True, False, False]
    assert list(comp.prior_correct) == [True, True, False, False, True, False]
    assert list(comp.prior_choice) == [f"{CHOICES[c]} {i}" for i, c in enumerate(MASKED[("q", "none", None)])]
    pooled = with_pooled_task(paired, ["capitals"]).assign(split="test")
    out = content_free_table(pooled, iters=400, seed=0)
    assert list(out.columns) == CONTENT_FREE_COLUMNS and len(out) == 4  # 2 models x (task, pooled)
    row = out[(out.compression == "q") & (out.task == "capitals")].iloc[0]
    assert row.n == 6 and row.acc == pytest.approx(3 / 6) and row.acc_content_free == pytest.approx(3 / 6)
    assert row.above_content_free == 0 and row.from_prior == pytest.approx(4 / 6)
    base = out[(out.compression == "none") & (out.task == "all_knowledge")].iloc[0]
    assert base.acc == pytest.approx(5 / 6) and base.acc_content_free == pytest.approx(1 / 6)
    assert base.above_content_free == pytest.approx(4 / 6) and base.from_prior == pytest.approx(1 / 6)
    # the interval is a fact bootstrap of the difference: it holds the estimate, within [-1, 1]
    for r in out.itertuples():
        assert -1 <= r.ci_low <= r.above_content_free <= r.ci_high <= 1
    again = content_free_table(pooled, iters=400, seed=0)
    pd.testing.assert_frame_equal(out, again)  # seeded


def test_the_interval_covers_a_known_difference(tmp_path):
    """Simulated runs with a known accuracy gap over a content-free baseline: the 95% interval
    holds it about 95% of the time (facts are the questions here)."""
    rng = np.random.default_rng(3)
    hits, trials = 0, 60
    for t in range(trials):
        n = 80
        right = rng.random(n) < 0.7
        prior_right = rng.random(n) < 0.4
        frame = pd.DataFrame({"model": "m", "compression": "none", "recovery": "none", "run": "none",
                              "task": "t", "doc_id": [str(i) for i in range(n)], "fact": [f"f{i}" for i in range(n)],
                              "correct": right, "prior_correct": prior_right.astype(object),
                              "from_prior": (right == prior_right).astype(object)})
        row = content_free_table(frame, iters=300, seed=t).iloc[0]
        hits += row.ci_low <= 0.3 <= row.ci_high
    assert hits / trials >= 0.85


def test_runs_without_a_variant_are_empty_not_guessed(tmp_path):
    table = question_table(_entries(tmp_path, WITH, "k"), METHODS)
    only_base = {k: v for k, v in MASKED.items() if k[1] == "none" and k[0] == "none"}
    paired = with_priors(table, prior_table(_entries(tmp_path, only_base, "cf")))
    comp = paired[paired.compression == "q"]
    assert comp.prior_correct.isna().all() and comp.from_prior.isna().all() and comp.prior_choice.isna().all()
    out = content_free_table(paired.assign(split="test"), iters=100, seed=0)
    row = out[out.compression == "q"].iloc[0]
    assert row.n == 0 and np.isnan(row.acc_content_free) and np.isnan(row.above_content_free)
    assert out[out.compression == "none"].iloc[0].n == 6
    # no content-free evaluation at all: every column empty
    assert with_priors(table, None).from_prior.isna().all()


def test_a_variant_missing_a_question_or_changing_choices_is_refused(tmp_path):
    table = question_table(_entries(tmp_path, WITH, "k"), METHODS)
    short = {k: v[:5] for k, v in MASKED.items()}
    with pytest.raises(ValueError, match=r"m / none / none: the content-free variant of task capitals has no question 5 \(2 missing\)"):
        with_priors(table, prior_table(_entries(tmp_path, short, "cf")))
    priors = prior_table(_entries(tmp_path, MASKED, "cf2"))
    priors.loc[0, "_choices"] = json.dumps(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="asks other choices"):
        with_priors(table, priors)


@pytest.mark.slow
def test_the_analysis_pairs_the_content_free_runs_and_the_explorer_filters_them(run, tmp_path):  # noqa: F811
    """run_analysis with content-free samples for the built tasks only (the custom task
    my_facts has none): questions.csv carries each run's content-free choice, content_free.csv
    its accuracies (the custom task's rows empty), and the explorer's "answered from the
    prior" equals questions.csv's from_prior."""
    from compress_recover.aggregate.explorer import explorer_data
    from compress_recover.aggregate.results import Results

    rng = np.random.default_rng(5)
    content_free = []
    for labels, path in run["kwargs"]["samples"]:
        if labels["task"] == "my_facts":
            continue
        rows = read_jsonl(path)
        for row in rows:  # a content-free answer: the same as with the subject for about half the questions
            if rng.random() < 0.5:
                row["filtered_resps"] = [[float(s), False] for s in rng.normal(-3, 1, len(row["filtered_resps"]))]
                row.pop("acc", None)
        content_free.append((labels, write_samples(tmp_path / f"cf-{len(content_free)}.jsonl", rows)))
    results = run_analysis(**run["kwargs"], content_free=content_free, out_dir=str(tmp_path / "analysis"),
                           popularity_csv=str(run["popularity"]))
    loaded = Results.load(tmp_path / "analysis")
    q = loaded.tables.questions
    built = q[q.task.isin(["capitals", "city_country"])]
    assert built.from_prior.notna().all() and q[q.task == "my_facts"].from_prior.isna().all()
    assert (built.from_prior == (built.chosen == built.prior_choice)).all()
    assert built.from_prior.mean() > 0.5  # about half kept, and some of the redrawn answers agree by chance
    cf = loaded.tables.content_free
    pd.testing.assert_frame_equal(cf, results.tables.content_free, check_dtype=False)
    assert (cf[cf.task == "my_facts"].n == 0).all() and cf[cf.task == "my_facts"].acc_content_free.isna().all()
    test = q[(q.split == "test") & q.steps.isin([pd.NA, 4]).fillna(True)]
    base = cf[(cf.compression == "none") & (cf.task == "all_knowledge")].iloc[0]
    mine = test[(test.compression == "none") & (test.task == "all_knowledge") & test.from_prior.notna()]
    assert base.n == len(mine) and base.acc == pytest.approx(mine.correct.mean())
    assert base.acc_content_free == pytest.approx(mine.prior_correct.astype(float).mean())
    assert base.from_prior == pytest.approx(mine.from_prior.astype(float).mean())
    data = explorer_data(q, loaded.final_steps)
    assert data["prior"]
    column = "m/q/none"
    shown = sum(1 for x in data["questions"] if x["s"] == "test" and x["r"].get(column, [None] * 6)[5] == 1)
    expected = test[(test.compression == "q") & (test.recovery == "none") & (test.task != "all_knowledge")]
    assert shown == int(expected.from_prior.eq(True).sum()) > 0


# --------------------------------------------------------------------------- a user's task

def _user_task(folder, task: str = "my_facts", **yaml_extra):
    """A user's multiple-choice task folder (conftest.write_choice_task), its docs naming their
    subject in ``subject`` inside their question ``q``, demonstrations in a split of their own;
    ``yaml_extra``: lines appended to the task's YAML."""
    from conftest import write_choice_task

    rows = [{"q": f"Which is the capital of {c}?", "a": i % 2, "subject": c}
            for i, c in enumerate(["France", "Peru", "Chad", "Laos"])]
    shots = [{"q": "Which is the capital of Spain?", "a": 0, "subject": "Spain"}]
    write_choice_task(folder, task, rows, ["Paris", "Lima"], demonstrations=shots)
    if yaml_extra:
        path = folder / f"{task}.yaml"
        path.write_text(path.read_text() + "".join(f"{line}\n" for line in yaml_extra.values()))
    return folder, rows


def _load(folder, *tasks):
    from lm_eval.tasks import TaskManager, get_task_dict

    return get_task_dict(list(tasks), TaskManager(include_path=str(folder), include_defaults=False))


def test_a_user_task_gets_a_variant_folder_that_includes_its_yaml(tmp_path, monkeypatch):
    """The variant of a data.task_dirs task: lm-eval reads it from its own folder, the user's
    docs with the subject masked in the named field, the same choices, answers and order, and
    unmasked demonstrations; the manifest names the included YAML and hashes the user's files."""
    from compress_recover.data.content_free_task import build_content_free_task

    monkeypatch.chdir(tmp_path)  # relative paths, as Snakemake's workdir gives them
    _user_task(tmp_path / "my_tasks")
    (tmp_path / "my_tasks" / "__pycache__").mkdir()
    (tmp_path / "my_tasks" / "__pycache__" / "x.pyc").write_bytes(b"\0")  # never a source
    out = "results/data/content_free_tasks/my_facts"
    manifest = build_content_free_task(task="my_facts", task_dir="my_tasks", out_dir=out, mask="X",
                                       subject_field="subject", masked_fields=["q"])
    assert manifest["include"] == "../../../../my_tasks/my_facts.yaml"  # relative: the project may move
    assert set(manifest["sources_sha256"]) == {"my_facts.yaml", "my_facts.jsonl", "my_facts.demonstrations.jsonl"}
    verify_folder(out)
    variant = variant_name("my_facts")
    mine = list(_load("my_tasks", "my_facts")["my_facts"].test_docs())
    task = _load(out, variant)[variant]
    masked = list(task.test_docs())
    assert [d["q"] for d in masked] == [d["q"].replace(d["subject"], "X") for d in mine]
    assert all(d["subject"] not in d["q"] for d in masked)
    assert [{k: v for k, v in d.items() if k != "q"} for d in masked] == [
        {k: v for k, v in d.items() if k != "q"} for d in mine]
    assert [task.doc_to_choice(d) for d in masked] == [["Paris", "Lima"]] * 4
    assert [d["q"] for d in task.fewshot_docs()] == ["Which is the capital of Spain?"]  # demonstrations unmasked
    # a changed task changes the folder's content (the evaluation's reuse key reads every file)
    (tmp_path / "my_tasks" / "my_facts.jsonl").write_text("")
    again = build_content_free_task(task="my_facts", task_dir="my_tasks", out_dir=out, mask="X",
                                    subject_field="subject", masked_fields=["q"])
    assert again["sources_sha256"]["my_facts.jsonl"] != manifest["sources_sha256"]["my_facts.jsonl"]


def test_a_user_task_the_variant_cannot_include_is_refused_naming_task_and_folder(tmp_path):
    from compress_recover.data.content_free_task import build_content_free_task
    from compress_recover.registry import ConfigError

    def build(folder):
        return build_content_free_task(task="my_facts", task_dir=str(folder), out_dir=str(tmp_path / "out"),
                                       mask="X", subject_field="subject", masked_fields=["q"])

    own = _user_task(tmp_path / "own", process="process_docs: !function utils.process")[0]
    with pytest.raises(ConfigError, match=rf"entry of {re.escape(str(own))}: task 'my_facts' .* sets its own "
                                          "process_docs"):
        build(own)
    tagged = _user_task(tmp_path / "tagged", fewshot="fewshot_config:\n  sampler: !function utils.sampler")[0]
    with pytest.raises(ConfigError, match=rf"entry of {re.escape(str(tagged))}: task 'my_facts' .*fewshot_config "
                                          r"\['sampler'\] holds a tagged \(!function\) value"):
        build(tagged)
    with pytest.raises(ConfigError, match=rf"task 'nope' is defined by 0 YAML files of {re.escape(str(own))}"):
        build_content_free_task(task="nope", task_dir=str(own), out_dir=str(tmp_path / "out"), mask="X",
                                subject_field="subject")
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("field, message", [
    ("topic", r"doc 0: the content-free variant masks the doc's 'topic' field, which is missing"),
    ("a_name", r"doc 0: subject 'Lyon' appears in none of \['q'\]")])
def test_a_user_doc_without_its_subject_fails_its_evaluation_before_the_model_loads(tmp_path, field, message):
    """The per-doc refusal (DocsMasker) reaches the user through the evaluate job's preflight,
    naming the variant, the doc, the variant's folder and what to drop."""
    from compress_recover.data.content_free_task import build_content_free_task
    from compress_recover.evaluate.evaluate import TaskUnavailableError, preflight_task

    folder, _ = _user_task(tmp_path / "my_tasks")
    data = folder / "my_facts.jsonl"
    data.write_text("".join(json.dumps({**row, "a_name": "Lyon"}) + "\n" for row in read_jsonl(data)))
    out = tmp_path / "variant"
    build_content_free_task(task="my_facts", task_dir=str(folder), out_dir=str(out), mask="X", subject_field=field,
                            masked_fields=["q"])
    with pytest.raises(TaskUnavailableError, match=rf"{re.escape(str(out))}.*task my_facts_content_free, {message}"
                                                   r".*drop subject_field from the data.task_dirs entry of "
                                                   rf"{re.escape(str(folder))}"):
        preflight_task(variant_name("my_facts"), str(out))


def _dag_config(task_dirs):
    from tinyflow import tiny_config

    config = tiny_config(Path("unused"))
    config["models"] = {"tiny": {"source": "embedded"}}  # nothing is downloaded in a dry run
    config["recovery"].update(seeds=[0], methods=[{"method": "none"}, {"method": "eora", "rank": 2}])
    config["data"]["task_dirs"] = task_dirs
    return config


@pytest.mark.slow
def test_a_task_dirs_entry_with_subject_field_is_evaluated_and_paired_through_the_dag(tmp_path):
    """The plan adds the variant of an entry naming its subject_field (not of one without it,
    nor with data.content_free_mask null); the DAG builds its folder (rule content_free_task),
    every evaluate job scores it from there, and the analysis gets its samples labelled with
    the user's task, as the built tasks' variants."""
    from compress_recover.registry import ConfigError
    from test_budget_text import _by_rule, build_plan
    from tinyflow import dag_jobs

    _user_task(tmp_path / "mine")
    _user_task(tmp_path / "other", task="other_facts")
    entries = [{"path": str(tmp_path / "mine"), "tasks": ["my_facts"], "knowledge": True, "subject_field": "subject",
                "masked_fields": ["q"]},
               {"path": str(tmp_path / "other"), "tasks": ["other_facts"], "knowledge": True}]
    plan = build_plan(_dag_config(entries))
    assert plan.custom_content_free() == ["my_facts"]
    assert plan.content_free() == {"capitals_content_free": "capitals", "my_facts_content_free": "my_facts",
                                   "element_symbol_content_free": "element_symbol"}
    evaluated = plan.evaluated_tasks()
    assert "my_facts_content_free" in evaluated and "other_facts_content_free" not in evaluated
    off = _dag_config(entries)
    off["data"]["content_free_mask"] = None
    assert build_plan(off).content_free() == {}
    # subject_field asks for a knowledge task, and one the variant can include
    plain = _dag_config([{**entries[0], "knowledge": False}])
    with pytest.raises(ConfigError, match=r"data\.task_dirs\[0\]\.subject_field: .*knowledge: true"):
        build_plan(plain)
    _user_task(tmp_path / "own", process="process_docs: !function utils.process")
    with pytest.raises(ConfigError, match=r"data\.task_dirs\[0\]\.subject_field: .*sets its own process_docs"):
        build_plan(_dag_config([{**entries[0], "path": str(tmp_path / "own")}]))

    jobs = dag_jobs(tmp_path, _dag_config(entries))
    variant_dir = "results/data/content_free_tasks/my_facts"
    built = _by_rule(jobs, "content_free_task")
    assert list(built) == ["task=my_facts"]
    job = built["task=my_facts"]
    assert job["outputs"] == [variant_dir] and job["params"]["task_dir"] == str(tmp_path / "mine")
    assert job["params"]["subject"] == {"masked_fields": ["q"], "subject_field": "subject"}
    assert sorted(job["inputs"]) == sorted(str(f) for f in (tmp_path / "mine").iterdir())
    evaluate = _by_rule(jobs, "evaluate")["compression=gptq-w4g32,model=tiny,recovery=none"]
    specs = {s["task"]: s["task_dir"] for s in evaluate["params"]["tasks"]}
    assert specs["my_facts_content_free"] == variant_dir and specs["my_facts"] == str(tmp_path / "mine")
    assert "other_facts_content_free" not in specs and variant_dir in evaluate["inputs"]
    assert "results/tiny/gptq-w4g32/none/eval/my_facts_content_free.samples.jsonl" in evaluate["outputs"]
    analysis = jobs[("analysis", "")]
    cells = analysis["params"]["content_free_cells"]
    assert sorted({c["task"] for c in cells}) == ["capitals", "element_symbol", "my_facts"]
    paired = dict(zip([(c["compression"], c["run"], c["task"]) for c in cells], analysis["input"]["content_free"],
                      strict=True))
    assert paired[("gptq-w4g32", "eora.seed0", "my_facts")] == \
        "results/tiny/gptq-w4g32/eora.seed0/eval/my_facts_content_free.samples.jsonl"


@pytest.mark.slow
def test_the_analysis_pairs_a_user_tasks_variant_as_a_built_ones(run, tmp_path):  # noqa: F811
    """Content-free samples of the custom task my_facts, labelled with my_facts as the DAG
    labels them (rule analysis's content_free_cells): its questions get their priors and its
    rows of content_free.csv their counts, as the built tasks'."""
    content_free = []
    for labels, path in run["kwargs"]["samples"]:
        rows = read_jsonl(path)
        for row in rows[::2]:  # half the questions answered otherwise without the subject
            row["filtered_resps"] = [[s, False] for s in ([0.0, -1.0, -1.0, -1.0] if row["acc"] < 0.5 else
                                                          [-1.0, 0.0, -1.0, -1.0])]
            row.pop("acc")
        content_free.append((labels, write_samples(tmp_path / f"cf-{len(content_free)}.jsonl", rows)))
    results = run_analysis(**run["kwargs"], content_free=content_free, out_dir=str(tmp_path / "analysis"),
                           popularity_csv=str(run["popularity"]))
    q = results.tables.questions
    mine = q[q.task == "my_facts"]
    assert len(mine) and mine.from_prior.notna().all()
    assert list(mine.from_prior) == [int(d) % 2 == 1 for d in mine.doc_id]  # the odd questions kept their answer
    cf = results.tables.content_free
    assert (cf[cf.task == "my_facts"].n > 0).all() and cf[cf.task == "my_facts"].acc_content_free.notna().all()


def test_a_users_template_that_shows_no_masked_field_is_refused_before_any_job(tmp_path):
    """A prompt that reads the subject from a field the variant does not mask would leave
    the subject in the content-free prompt: refused naming the task, the template and the key."""
    import yaml

    from compress_recover.data.content_free_task import variant_source
    from compress_recover.registry import ConfigError

    folder = tmp_path / "my_tasks"
    folder.mkdir()
    (folder / "t.jsonl").write_text('{"subject": "France", "q": "Capital of France?", "choices": ["Paris", "Rome"], '
                                    '"answer": 0}\n')
    config = {"task": "my_facts", "dataset_path": "json",
              "dataset_kwargs": {"data_files": {"test": str(folder / "t.jsonl")}}, "test_split": "test",
              "output_type": "multiple_choice", "doc_to_text": "Capital of {{subject}}?",
              "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}"}
    (folder / "my_facts.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"task 'my_facts'.*doc_to_text 'Capital of \{\{subject\}\}\?' reads none "
                                          r"of the masked fields \['question'\].*masked_fields"):
        variant_source(folder, "my_facts")
    variant_source(folder, "my_facts", ["subject"])  # masking the field the prompt reads
    config["doc_to_text"] = "{{q}}"
    (folder / "my_facts.yaml").write_text(yaml.safe_dump(config))
    variant_source(folder, "my_facts", ["q"])
    with pytest.raises(ConfigError, match="reads none of the masked fields"):
        variant_source(folder, "my_facts", ["question"])


def test_the_subject_is_masked_as_a_whole_word_only():
    docs = [{"subject": "W", "question": "Question: Which chemical element has the symbol W?\nAnswer:"}]
    assert mask_docs(docs, task="element_name", mask="X")[0]["question"] == \
        "Question: Which chemical element has the symbol X?\nAnswer:"
    with pytest.raises(ValueError, match="subject 'Ca' appears in none"):  # only inside "Capital"
        mask_docs([{"subject": "Ca", "question": "Capital?"}], task="t", mask="X")
