"""The results snapshot reads a finished run through the results record, numbers as its CSVs wrote them.

- :func:`.snapshot.snapshot` of a record saved by :meth:`.results.Results.save` (and a
  summary): the pooled task only, the final budget's summary rows only, the anatomy, every
  number as its CSV text reads (an integral value an integer, an empty cell null);
- a CSV cell's number is the one its text gives, whatever dtype pandas read it into;
- the snapshot's typed layout reads and writes docs/results/snapshot.json unchanged.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from compress_recover.aggregate.results import (FLOAT_FORMAT, TABLE_SPECS, Results, Tables, analysis_path,
                                                summary_path)
from compress_recover.aggregate.snapshot import Snapshot, _number, as_json, snapshot
from compress_recover.aggregate.stats.decisions import Damage
from compress_recover.aggregate.stats.methods import Methods
from compress_recover.aggregate.stats.settings import Settings
from compress_recover.aggregate.stats.verdict import Verdict
from compress_recover.docs import SNAPSHOT, read_snapshot

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
        loss_model=[{**cell, "outcome": "lost", "term": "popularity", "n": 10, "events": 4, "coef": -0.25,
                     "ci_low": -1.0, "ci_high": 0.5, "p_value": 0.5, "status": "pre-specified", "note": ""},
                    {**cell, "outcome": "lost", "term": "base confidence", "n": 10, "events": 4, "coef": 2.0,
                     "status": "descriptive"}],
        loss_anatomy=[{**cell, "task": "all", "outcome": "lost", "axis": "popularity", "bin": 2, "n": 5, "rate": 0.4,
                       "ci_low": 0.1, "ci_high": 0.8},
                      {**cell, "task": "all", "outcome": "lost", "axis": "popularity", "bin": 1, "n": 5, "rate": 0.0,
                       "ci_low": 0.0, "ci_high": 0.5},
                      {**cell, "task": "capitals", "outcome": "lost", "axis": "popularity", "bin": 1, "n": 2,
                       "rate": 0.5}],
        transitions=[{**cell, "task": "capitals", "base_answer": b, "compressed_answer": a, "count": n}
                     for b, a, n in [("Paris", "Lyon", 2), ("Rome", "Lyon", 1), ("Oslo", "NA", 3), ("Bern", "Basel", 1),
                                     ("Kyiv", "Berlin", 1), ("Riga", "Accra", 1), ("Baku", "Zagreb", 1)]])
    return Results(
        verdicts=[Verdict("m", "c1", "inconclusive", "undecided", damage, [])], rule="the rule",
        noninferiority_rule="", settings=Settings(), bootstrap_iters={"verdict": 1000}, seeds=[0, 1],
        methods=Methods({"lora": "lora"}, {"lora": "parameters"}, {"lora": True}),
        budget={"steps": 4, "seq_len": 16, "batch_size": 2}, final_steps=4,
        split={"seed": 3, "counts": {"t2": {"test": 4, "dev": 1}, "t1": {"dev": 2, "test": 5}}}, leaks={},
        failed_runs=[], tables=tables)


def _summary(path) -> None:
    rows = [{"model": "m", "compression": "c1", "recovery": "lora", "run": "lora.seed0", "metric": "word_perplexity",
             "value": 25.0, "extra_params": 4096, "base_precision": "float32"},
            {"model": "m", "compression": "c1", "recovery": "lora", "run": "lora.seed0.step2",
             "metric": "word_perplexity", "value": 99.5, "extra_params": NAN, "base_precision": "float32"},
            {"model": "m", "compression": "none", "recovery": "none", "run": "none", "metric": "acc", "value": 0.7,
             "extra_params": 0, "base_precision": "float32"},
            {"model": "other", "compression": "none", "recovery": "none", "run": "none", "metric": "word_perplexity",
             "value": 3.5, "extra_params": 0, "base_precision": "bf16"}]
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
        "anatomy": {"c1": {
            "loss_model": {"term": "popularity", "coef": -0.25, "ci_95": [-1, 0.5], "p_value": 0.5, "n": 10,
                           "events": 4, "note": ""},
            "lost_rate": {"popularity": [{"quartile": 2, "rate": 0.4, "n": 5, "ci_95": [0.1, 0.8]},
                                         {"quartile": 1, "rate": 0, "n": 5, "ci_95": [0, 0.5]}]},
            "top_wrong_answers": [{"task": "capitals", "answer": a, "lost_questions": n}
                                  for a, n in [("Lyon", 3), ("NA", 3), ("Accra", 1), ("Basel", 1), ("Berlin", 1)]]}},
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
