"""The results snapshot reads a finished run through the results record, numbers as its CSVs wrote them.

- :func:`.snapshot.snapshot` of a record saved by :meth:`.results.Results.save` (and a
  summary): the pooled task only, the final budget's summary rows only, the anatomy, every
  number as its CSV text reads (an integral value an integer, an empty cell null);
- a CSV cell's number is the one its text gives, whatever dtype pandas read it into;
- the snapshot's typed layout reads and writes docs/results/snapshot.json unchanged;
- on an analysis of samples with content-free twins: the snapshot's content-free baseline,
  distance from the base model (one row per seed), one-to-one verdict and resampling units
  are the record's, the pages show them with every table number in the snapshot, and a
  snapshot of a run that predates them renders a line saying so.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from compress_recover.aggregate.analysis import run_analysis
from compress_recover.aggregate.results import (FLOAT_FORMAT, TABLE_SPECS, Results, Tables, analysis_path,
                                                summary_path)
from compress_recover.aggregate.results_pages import PREDATES, render_results_doc, render_results_readme
from compress_recover.aggregate.snapshot import Snapshot, _number, as_json, snapshot
from compress_recover.aggregate.stats.decisions import Damage
from compress_recover.aggregate.stats.methods import Methods
from compress_recover.aggregate.stats.settings import Settings
from compress_recover.aggregate.stats.verdict import Verdict
from compress_recover.docs import SNAPSHOT, read_snapshot
from compress_recover.io import read_jsonl
from samples import write_samples
from test_docs import in_snapshot, table_numbers
from test_explorer import run  # noqa: F401 (the fixture: an analysis of random answers on built relations)

NAN = math.nan
POOLED = "all_knowledge"


def _frame(spec, rows: list[dict]):
    return pd.DataFrame([{c: row.get(c, NAN) for c in spec.columns} | row for row in rows])


def _tables(**rows) -> Tables:
    return Tables(**{s.name: _frame(s, rows[s.name]) if s.name in rows else s.empty() for s in TABLE_SPECS})


def _record() -> Results:
    damage = Damage(base_acc=0.7, compressed_acc=0.5, damage=0.2, damage_upper=0.3, damage_low=0.1, holm_level=0.01,
                    confidence=0.99, p_value=0.01, p_holm=0.03, min_damage=0.02, no_measurable_loss=False, n=10,
                    lost_only=3, gained_only=1, family_size=3)
    cell = {"model": "m", "compression": "c1"}
    tables = _tables(
        accuracy=[{"model": "m", "compression": "none", "recovery": "none", "task": POOLED, "seeds": 1, "n": 10,
                   "acc": 0.7},
                  {**cell, "recovery": "none", "task": POOLED, "seeds": 1, "n": 10, "acc": 0.5},
                  {**cell, "recovery": "lora", "task": POOLED, "seeds": 2, "n": 10, "acc": 1.0},
                  {**cell, "recovery": "lora", "task": "capitals", "seeds": 2, "n": 5, "acc": 0.123}],
        decisions=[{**cell, "recovery": "lora", "method": "lora", "side": "parameters", "trained": True,
                    "decision": "undecided", "status": "ok", "failure": "", "note": "", "family_size": 3,
                    "runs": "lora.seed0|lora.seed1", "recovered_acc": 1.0, "recovery_fraction": 1 / 3,
                    "control_gain": NAN, "controlled_fraction": NAN, "raw_ci_low": -0.5, "raw_ci_high": 1.5,
                    "holm_level": 0.05 / 3}],
        recovery_fraction=[{**cell, "recovery": "lora", "task": POOLED, "ci_low": 0.1, "ci_high": 2e6},
                           {**cell, "recovery": "lora", "task": "capitals", "ci_low": 0.9, "ci_high": 0.95}],
        loss_model=[{**cell, "outcome": "lost", "fit": "total", "term": "popularity", "n": 10, "events": 4,
                     "coef": -0.25, "ci_low": -1.0, "ci_high": 0.5, "p_value": 0.5, "status": "pre-specified",
                     "note": ""},
                    {**cell, "outcome": "lost", "fit": "secondary", "term": "popularity", "n": 10, "events": 4,
                     "coef": 2.0, "status": "descriptive", "note": ""},
                    {**cell, "outcome": "lost", "fit": "secondary", "term": "logit(base confidence)", "n": 10,
                     "events": 4, "coef": -1.5, "ci_low": -2.5, "ci_high": -0.5, "status": "descriptive",
                     "note": "", "null_kl": 0.75, "null_draws": 20, "null_events": 6.5, "null_coef": -1.25,
                     "null_low": -2.0, "null_high": -0.5}],
        loss_anatomy=[{**cell, "task": "all", "outcome": "lost", "axis": "popularity", "bin": 2, "n": 5, "rate": 0.4,
                       "ci_low": 0.1, "ci_high": 0.8},
                      {**cell, "task": "all", "outcome": "lost", "axis": "popularity", "bin": 1, "n": 5, "rate": 0.0,
                       "ci_low": 0.0, "ci_high": 0.5},
                      {**cell, "task": "capitals", "outcome": "lost", "axis": "popularity", "bin": 1, "n": 2,
                       "rate": 0.5}],
        transitions=[{**cell, "task": "capitals", "base_answer": b, "compressed_answer": a, "count": n}
                     for b, a, n in [("Paris", "Lyon", 2), ("Rome", "Lyon", 1), ("Oslo", "NA", 3), ("Bern", "Basel", 1),
                                     ("Kyiv", "Berlin", 1), ("Riga", "Accra", 1), ("Baku", "Zagreb", 1)]],
        content_free=[{**cell, "recovery": "none", "task": POOLED, "seeds": 1, "n": 8, "acc": 0.5,
                       "acc_content_free": 0.25, "above_content_free": 0.25, "ci_low": -0.125, "ci_high": 0.5,
                       "from_prior": 0.375},
                      {**cell, "recovery": "none", "task": "capitals", "seeds": 1, "n": 4, "acc": 0.5},
                      {**cell, "recovery": "lora", "task": POOLED, "seeds": 2, "n": 0}],
        distance=[{**cell, "recovery": "none", "seed": "", "run": "none", "task": POOLED, "n": 10, "kl_mean": 0.125,
                   "kl_p90": 0.5, "kl_p99": 0.9, "at_risk": 7, "lost": 3, "auc_lost": 0.75, "auc_low": 0.5,
                   "auc_high": 1.0},
                  *({**cell, "recovery": "lora", "seed": str(s), "run": f"lora.seed{s}", "task": POOLED, "n": 10,
                     "kl_mean": 0.25 + s, "kl_p90": 1.5, "kl_p99": 2.0, "at_risk": 7, "lost": 2, "auc_lost": NAN}
                    for s in (0, 1)),
                  {**cell, "recovery": "none", "seed": "", "run": "none", "task": "capitals", "n": 5}])
    return Results(
        verdicts=[Verdict("m", "c1", "inconclusive", "undecided", damage, [])], rule="the rule",
        noninferiority_rule="", settings=Settings(), bootstrap_iters={"verdict": 1000}, seeds=[0, 1],
        methods=Methods({"lora": "lora"}, {"lora": "parameters"}, {"lora": True}),
        budget={"steps": 4, "seq_len": 16, "batch_size": 2}, final_steps=4,
        split={"seed": 3, "counts": {"t2": {"test": 4, "dev": 1}, "t1": {"dev": 2, "test": 5}}}, leaks={},
        failed_runs=[], tables=tables,
        sensitivity={"one_to_one": {"tasks": ["t1"], "questions": 5, "verdicts": [
            Verdict("m", "c1", "not recovered at this budget", "the fractions", damage, [])]}},
        resampling_units={"m": {"questions": 10, "clusters": 7, "largest": 3, "weighted_mean_size": 1.8},
                          "other": {"questions": 2, "clusters": 2, "largest": 1, "weighted_mean_size": 1.0}})


def _summary(path) -> None:
    rows = [{"model": "m", "compression": "c1", "recovery": "lora", "run": "lora.seed0", "metric": "word_perplexity",
             "value": 25.0, "extra_params": 4096, "base_precision": "float32", "dtype": "bfloat16"},
            {"model": "m", "compression": "c1", "recovery": "lora", "run": "lora.seed0.step2",
             "metric": "word_perplexity", "value": 99.5, "extra_params": NAN, "base_precision": "float32",
             "dtype": "bfloat16"},
            {"model": "m", "compression": "none", "recovery": "none", "run": "none", "metric": "acc", "value": 0.7,
             "extra_params": 0, "base_precision": "float32", "dtype": "float32"},  # auto resolved on another node
            {"model": "other", "compression": "none", "recovery": "none", "run": "none", "metric": "word_perplexity",
             "value": 3.5, "extra_params": 0, "base_precision": "bf16", "dtype": "float32"}]
    pd.DataFrame(rows).to_csv(path, index=False, float_format=FLOAT_FORMAT)


EXPECTED = {
    "commit": "abc1234",
    "what": "headline numbers of one run, written by `python -m compress_recover.docs snapshot`",
    "seeds": {"seed": 7, "data.split.seed": 3, "recovery.seeds": [0, 1]},
    "budget": {"batch_size": 2, "seq_len": 16, "steps": 4},
    "thresholds": {"alpha": 0.05, "bootstrap_iters": 1000, "min_damage": 0.02, "min_recovery_fraction": 0.5,
                   "min_tail_resamples": 20, "noninferiority_margin": 0.1, "power": 0.8},
    "questions": {"dev": 3, "test": 9, "per_task": {"t1": {"dev": 2, "test": 5}, "t2": {"dev": 1, "test": 4}}},
    "sides": {"lora": "parameters"},
    "trained": {"lora": True},
    "models": {"m": {
        "accuracy": {"none": {"none": 0.7}, "c1": {"none": 0.5, "lora": 1}},
        "n": 10,
        "remedies": {"c1": {"lora": {
            "side": "parameters", "trained": True, "runs": "lora.seed0|lora.seed1", "accuracy": 1,
            "raw_f": 0.333333, "raw_f_95": [0.1, 2000000], "control_gain": None, "controlled_f": None,
            "controlled_f_95": [None, None], "raw_f_holm": [-0.5, 1.5], "holm_level": 0.0166667, "family_size": 3,
            "decision": "undecided"}}},
        "verdicts": {"c1": "inconclusive"},
        "perplexity": {"c1": {"lora": 25}},
        "extra_params": {"c1": {"lora": 4096}, "none": {"none": 0}},
        "seeds_per_run": 2,
        "base_precision": "float32",
        "compute_dtype": "bfloat16, float32",
        "anatomy": {"c1": {
            "loss_model": {"term": "popularity", "coef": -0.25, "ci_95": [-1, 0.5], "p_value": 0.5, "n": 10,
                           "events": 4, "note": "", "fit": "total"},
            "confidence_gradient": {"coef": -1.5, "ci_95": [-2.5, -0.5], "events": 4, "null_kl": 0.75,
                                    "null_coef": -1.25, "null_95": [-2, -0.5], "null_draws": 20, "null_events": 6.5,
                                    "note": ""},
            "lost_rate": {"popularity": [{"quartile": 2, "rate": 0.4, "n": 5, "ci_95": [0.1, 0.8]},
                                         {"quartile": 1, "rate": 0, "n": 5, "ci_95": [0, 0.5]}]},
            "top_wrong_answers": [{"task": "capitals", "answer": a, "lost_questions": n}
                                  for a, n in [("Lyon", 3), ("NA", 3), ("Accra", 1), ("Basel", 1), ("Berlin", 1)]]}},
        "content_free": {"c1": {
            "none": {"n": 8, "seeds": 1, "accuracy": 0.5, "content_free": 0.25, "above": 0.25,
                     "above_95": [-0.125, 0.5], "from_prior": 0.375},
            "lora": {"n": 0, "seeds": 2, "accuracy": None, "content_free": None, "above": None,
                     "above_95": [None, None], "from_prior": None}}},
        "distance": {"c1": {
            "none": [{"seed": None, "run": "none", "n": 10, "kl_mean": 0.125, "kl_p90": 0.5, "at_risk": 7, "lost": 3,
                      "auc_lost": 0.75, "auc_95": [0.5, 1]}],
            "lora": [{"seed": s, "run": f"lora.seed{s}", "n": 10, "kl_mean": 0.25 + s, "kl_p90": 1.5, "at_risk": 7,
                      "lost": 2, "auc_lost": None, "auc_95": [None, None]} for s in (0, 1)]}},
        "one_to_one": {"tasks": ["t1"], "questions": 5, "verdicts": {"c1": "not recovered at this budget"},
                       "same": {"c1": False}},
        "resampling_units": {"questions": 10, "clusters": 7, "largest": 3, "weighted_mean_size": 1.8},
    }},
    "aggregate_commit": "def5678",
}


def test_the_snapshot_of_a_saved_record(tmp_path):
    results = tmp_path / "results"
    _record().save(analysis_path(results))
    _summary(summary_path(results))
    (results / "data" / "text").mkdir(parents=True)
    (results / "data" / "text" / "manifest.json").write_text(json.dumps({"seed": 7}))
    snap = snapshot(results, "abc1234", "def5678")
    # the file is json.dumps of it: the same keys in the same order, the same number types
    assert json.dumps(snap, indent=2) == json.dumps(EXPECTED, indent=2)


def test_the_caption_says_what_the_weights_were_computed_in():
    snap = Snapshot.from_dict(EXPECTED)
    assert "weights computed in bfloat16, float32. Commit abc1234" in render_results_readme(EXPECTED)
    snap.models["m"].compute_dtype = None  # a snapshot that predates the field says nothing of it
    assert "computed in" not in render_results_readme(as_json(snap))


@pytest.mark.parametrize("text", ["3", "0", "-0", "0.5", "1e-05", "1e+06", "2.5e+06", "2442241", "-7", "inf", ""])
def test_a_cell_is_the_number_its_text_reads(tmp_path, text):
    """_number gives what the text gives (an int without a decimal point, null when empty),
    whether pandas read the column as int, float (another cell empty) or with other numbers."""
    expected = None if text == "" else int(float(text)) if float(text).is_integer() and "." not in text \
        else float(text)
    for others in ([], [""], ["0.25"]):
        path = tmp_path / "t.csv"
        path.write_text("x,y\n" + "".join(f"{cell},1\n" for cell in [text, *others]))
        value = pd.read_csv(path, float_precision="round_trip").x.iloc[0]
        got = _number(value)
        assert got == expected and type(got) is type(expected), (text, others, value, got)


def test_the_committed_snapshot_reads_and_writes_back_unchanged():
    snap = read_snapshot()
    again = as_json(Snapshot.from_dict(snap))
    assert json.dumps(again, indent=2, ensure_ascii=False) + "\n" == SNAPSHOT.read_text()


# ---------------------------------------------------------------- the new sections, on an analysis

NEW_SECTIONS = ("content_free", "distance", "one_to_one", "resampling_units")


@pytest.fixture(scope="module")
def analysed_run(run, tmp_path_factory):  # noqa: F811
    """test_explorer's run analysed again with content-free twins for its built relations (each
    answer redrawn for about half the questions) into a ``results/`` folder with a summary: the
    record, its snapshot and the pages rendered from it."""
    import numpy as np

    root = tmp_path_factory.mktemp("snapshot")
    rng = np.random.default_rng(11)
    content_free = []
    for labels, path in run["kwargs"]["samples"]:
        if labels["task"] == "my_facts":
            continue
        rows = read_jsonl(path)
        for row in rows:
            if rng.random() < 0.5:
                row["filtered_resps"] = [[float(s), False] for s in rng.normal(-3, 1, len(row["filtered_resps"]))]
                row.pop("acc", None)
        content_free.append((labels, write_samples(root / f"cf-{len(content_free)}.jsonl", rows)))
    results = root / "results"
    run_analysis(**run["kwargs"], content_free=content_free, out_dir=str(analysis_path(results)),
                 popularity_csv=str(run["popularity"]))
    pd.DataFrame([{"model": "m", "compression": "none", "recovery": "none", "run": "none",
                   "metric": "word_perplexity", "value": 30.0, "extra_params": 0, "base_precision": "float32"}]
                 ).to_csv(summary_path(results), index=False)
    record = Results.load(analysis_path(results), summary=summary_path(results))
    snap = snapshot(results, "abc1234")
    return record, snap, render_results_doc(snap), render_results_readme(snap)


def _pooled(frame):
    return frame[frame.task == POOLED]


@pytest.mark.slow
def test_the_content_free_baseline_is_the_records_pooled_rows(analysed_run):
    record, snap, doc, _ = analysed_run
    kept = snap["models"]["m"]["content_free"]
    rows = _pooled(record.tables.content_free)
    assert len(rows) == sum(map(len, kept.values())) == 4  # the base, the compressed model, lora and idp
    for r in rows.itertuples(index=False):
        x = kept[r.compression][r.recovery]
        assert x["n"] == r.n > 0 and x["seeds"] == r.seeds
        assert (x["accuracy"], x["content_free"], x["above"], x["from_prior"]) == pytest.approx(
            (r.acc, r.acc_content_free, r.above_content_free, r.from_prior), abs=5e-7)
        assert x["above_95"] == pytest.approx([r.ci_low, r.ci_high], abs=5e-7)
        assert x["above_95"][0] <= x["above"] <= x["above_95"][1]
        assert f"| `{r.compression}`, `{r.recovery}` | {r.n} | {r.acc:.3f} | {r.acc_content_free:.3f} | " \
               f"{r.above_content_free:.3f} [".replace("-", "−") in doc
    assert "### Pooled test accuracy above the content-free baseline, `m`" in doc


@pytest.mark.slow
def test_the_distance_keeps_one_row_per_run(analysed_run):
    record, snap, doc, _ = analysed_run
    kept = snap["models"]["m"]["distance"]
    rows = _pooled(record.tables.distance)
    assert len(rows) == sum(len(runs) for per in kept.values() for runs in per.values()) > 0
    assert [d["seed"] for d in kept["q"]["idp"]] == [0, 1]  # two seeds: two rows, not their mean
    for r in rows.itertuples(index=False):
        (d,) = [d for d in kept[r.compression][r.recovery] if d["run"] == r.run]
        assert (d["n"], d["at_risk"], d["lost"]) == (r.n, r.at_risk, r.lost)
        assert (d["kl_mean"], d["kl_p90"], d["auc_lost"], *d["auc_95"]) == pytest.approx(
            (r.kl_mean, r.kl_p90, r.auc_lost, r.auc_low, r.auc_high), abs=5e-7)
        seed = "—" if r.seed == "" else r.seed
        assert f"| `{r.compression}`, `{r.recovery}` | {seed} | {r.kl_mean:.3f} | {r.kl_p90:.3f} | " \
               f"{r.lost} / {r.at_risk} | {r.auc_lost:.2f} [" in doc


@pytest.mark.slow
def test_the_one_to_one_verdict_and_the_resampling_units_are_the_records(analysed_run):
    record, snap, doc, readme = analysed_run
    model = snap["models"]["m"]
    sensitivity = record.sensitivity["one_to_one"]
    main = {v.compression: v.verdict for v in record.verdicts}
    assert sensitivity["verdicts"] and sensitivity["tasks"] == ["capitals"]  # city_country shares answers
    assert model["one_to_one"] == {"tasks": ["capitals"], "questions": sensitivity["questions"],
                                   "verdicts": {v.compression: v.verdict for v in sensitivity["verdicts"]},
                                   "same": {v.compression: v.verdict == main[v.compression]
                                            for v in sensitivity["verdicts"]}}
    for v in sensitivity["verdicts"]:
        same = "yes" if v.verdict == main[v.compression] else "no"
        assert f"| `{v.compression}` | {main[v.compression]} | {v.verdict} | {same} |" in doc
        assert f"`{v.compression}`: **{v.verdict}** (" in readme
    units = record.resampling_units["m"]
    assert model["resampling_units"] == pytest.approx(units) and units["clusters"] < units["questions"]
    line = f"form {units['clusters']} clusters (facts and shared answers, resampled whole), the largest " \
           f"{units['largest']} questions, size-weighted mean size {units['weighted_mean_size']:.2f}."
    assert line in doc and line in readme


@pytest.mark.slow
def test_every_number_of_the_new_pages_is_in_the_snapshot(analysed_run):
    _, snap, doc, readme = analysed_run
    for page in (doc, readme):
        numbers = table_numbers(page)
        assert numbers and [n for n in numbers if not in_snapshot(n, snap)] == []
    assert "Accuracy beside the content-free baseline" in readme
    # the section's numbers are checked against this snapshot, not against another one's
    assert [n for n in table_numbers(doc) if not in_snapshot(n, read_snapshot())] != []


@pytest.mark.slow
def test_a_snapshot_that_predates_the_new_sections_renders_a_line_for_each(analysed_run):
    _, snap, doc, readme = analysed_run
    old = json.loads(json.dumps(snap))
    for model in old["models"].values():
        for key in NEW_SECTIONS:
            del model[key]
    old_doc, old_readme = render_results_doc(old), render_results_readme(old)
    for what in ("the content-free baseline", "the verdict on the one-to-one relations alone",
                 "the distance from the base model"):
        assert PREDATES.format(what=what) in old_doc
    assert "Resampling units" not in old_doc + old_readme and "one-to-one" not in old_readme
    assert "content-free" not in old_readme
    # and the new snapshot reads back and renders the same through its typed layout
    assert render_results_doc(as_json(Snapshot.from_dict(snap))) == doc


def test_the_anatomy_says_which_term_is_the_test_and_shows_the_noise_null(tmp_path):
    """The pages name the pre-specified term as popularity's total effect and show the
    secondary confidence term beside its noise null; a snapshot whose run predates the
    total-effect test (the committed one may) says its term is the direct effect."""
    doc = render_results_doc(EXPECTED)
    assert "popularity's total effect, base confidence not held fixed" in doc
    assert ("| `c1` | 4 / 10 | −0.25 [−1.00, 0.50], p = 0.50 | −1.50 [−2.50, −0.50] · −1.25 [−2.00, −0.50] |"
            in doc)
    old = json.loads(json.dumps(EXPECTED))
    for anatomy in old["models"]["m"]["anatomy"].values():
        del anatomy["loss_model"]["fit"], anatomy["confidence_gradient"]
    doc = render_results_doc(old)
    assert "popularity's direct effect at equal confidence, not its total effect" in doc
    assert "| `c1` | 4 / 10 | −0.25 [−1.00, 0.50], p = 0.50 | 0.00 / 0.40 |" in doc
