"""aggregate.questions: the per-question table read from lm-eval samples (margins, seeds, prompt pools, group tasks, the pooled task)."""

from __future__ import annotations

import numpy as np
import pytest

from compress_recover.aggregate.questions import (ALL_KNOWLEDGE, choice_texts, question_record, question_table,
                                                  with_pooled_task)
from samples import CHOICES, METHODS, sample_row, write_samples


def test_margins_are_right_minus_best_wrong_unnormalised_and_per_character():
    row = sample_row(0, [-2.0, -3.0, -1.5, -4.0], target=0)   # Vilnius (7 chars) beats Paris (5 chars)
    r = question_record(row)
    assert r["correct"] is False and r["margin"] == pytest.approx(-2.0 + 1.5)
    # per character: Paris -0.4, Rome -0.75, Vilnius -0.2143, Oslo -1.0
    assert r["margin_norm"] == pytest.approx(-2.0 / 5 - (-1.5 / 7))
    assert choice_texts(row) == CHOICES  # the target delimiter is not counted, as in lm-eval's acc_norm
    # the sign of each margin agrees with lm-eval's acc and acc_norm
    rng = np.random.default_rng(0)
    for i in range(200):
        row = sample_row(i, list(rng.normal(-5, 2, 4)), target=int(rng.integers(4)))
        r = question_record(row)
        assert (r["margin"] > 0) == bool(row["acc"]) and (r["margin_norm"] > 0) == bool(row["acc_norm"])


def test_margin_reads_raw_resps_text_targets_and_the_tracker_layout():
    row = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target=1)
    del row["filtered_resps"]
    assert question_record(row)["margin"] == pytest.approx(-2.0 + 1.0)
    row = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target="Rome")
    assert question_record(row)["margin"] == pytest.approx(-1.0)
    tracker = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target="1")
    tracker["arguments"] = {f"gen_args_{i}": {"arg_0": a[0], "arg_1": a[1]}
                            for i, a in enumerate(tracker["arguments"])}
    assert question_record(tracker)["margin_norm"] == pytest.approx(-2.0 / 4 + 1.0 / 5)


def test_question_table_keeps_seeds_runs_and_the_prompt_pool(tmp_path):
    forced = [[-1.0, -2.0, -3.0, -4.0], [-2.0, -1.0, -3.0, -4.0], [-3.0, -2.0, -1.0, -4.0]]
    rows = [sample_row(0, forced[2][:], target=0, idp_prompt=2, idp_prompt_loglikelihoods=forced),
            sample_row(1, [-1.0, -2.0, -3.0, -4.0], target=0, idp_prompt=0)]
    entries = [({"model": "m", "compression": "q", "recovery": "idp", "seed": 1, "run": "idp.seed1",
                 "task": "capitals"}, write_samples(tmp_path / "a.jsonl", rows)),
               ({"model": "m", "compression": "none", "recovery": "none", "seed": None, "run": "none",
                 "task": "capitals"}, write_samples(tmp_path / "b.jsonl", [sample_row(0, [0, -1, -1, -1]),
                                                                           sample_row(1, [0, -1, -1, -1])]))]
    table = question_table(entries, METHODS)
    idp = table[table.recovery == "idp"].set_index("doc_id")
    assert list(idp.seed) == [1, 1] and set(idp.run) == {"idp.seed1"}
    assert idp.loc["0", "pool_choice"] == 2 and idp.loc["0", "pool_correct"] == "100"  # only prompt 0 is right
    assert idp.loc["1", "pool_choice"] == 0 and idp.loc["1", "pool_correct"] == ""     # no ablation scores
    base = table[table.recovery == "none"]
    assert base.seed.isna().all() and base.pool_choice.isna().all()
    # without "run" the label is made from recovery and seed
    entries[0][0].pop("run")
    assert set(question_table(entries, METHODS).run) == {"idp.seed1", "none"}


def test_a_group_task_keeps_its_subtasks_questions_apart(tmp_path):
    rows = [{**sample_row(0, [0, -1, -1, -1]), "task": sub} for sub in ("mmlu_a", "mmlu_b")]
    labels = {"model": "m", "compression": "none", "recovery": "none", "task": "mmlu"}
    table = question_table([(labels, write_samples(tmp_path / "g.jsonl", rows))])
    assert sorted(table.doc_id) == ["mmlu_a:0", "mmlu_b:0"]


def test_pooled_task_concatenates_every_knowledge_question(tmp_path):
    entries = [({"model": "m", "compression": "none", "recovery": "none", "task": t},
                write_samples(tmp_path / f"{t}.jsonl", [sample_row(i, [0, -1, -1, -1]) for i in range(k)]))
               for t, k in (("capitals", 2), ("currencies", 3))]
    pooled = with_pooled_task(question_table(entries), ["capitals", "currencies"])
    assert (pooled.task == ALL_KNOWLEDGE).sum() == 5 and pooled[pooled.task == ALL_KNOWLEDGE].doc_id.is_unique
