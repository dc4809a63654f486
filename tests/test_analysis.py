"""The per-question table read from lm-eval samples (margins, seeds, prompt pools), the
bootstrap, Holm, McNemar, flips, the prompt-pool ablation and the analysis rule's files,
on hand-made samples with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from compress_recover.aggregate.stats import (ALL_KNOWLEDGE, accuracy_draws, build_grids, choice_texts, flips, holm,
                                              lower_bound, mcnemar_exact, paired_tests, pool_ablation,
                                              question_record, question_table, share_at_or_above, share_below,
                                              sign_flip_p, t_interval, upper_bound, with_pooled_task)

METHODS = {"none": "none", "lora": "lora", "idp": "idp", "pt": "prompt_tuning"}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
CHOICES = ["Paris", "Rome", "Vilnius", "Oslo"]


def sample_row(doc_id: int, scores, target: int = 0, choices=CHOICES, **extra) -> dict:
    """A multiple-choice sample row in the layout lm-eval 0.4 writes (our evaluate step
    dumps it as is): arguments (context, " " + choice), resps, filtered_resps, acc."""
    context = f"Question {doc_id}?\nAnswer:"
    pred = int(np.argmax(scores))
    norm = int(np.argmax([s / len(c) for s, c in zip(scores, choices, strict=True)]))
    return {"doc_id": doc_id, "doc": {"choices": list(choices), "answer": target}, "target": target,
            "arguments": [[context, f" {c}"] for c in choices],
            "resps": [[[s, False]] for s in scores], "filtered_resps": [[s, False] for s in scores],
            "filter": "none", "metrics": ["acc", "acc_norm"],
            "acc": float(pred == target), "acc_norm": float(norm == target), **extra}


def write_samples(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


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


def test_mcnemar_exact_matches_the_binomial_test():
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b in [(0, 0), (1, 0), (6, 1), (3, 3), (10, 2), (0, 12), (40, 25)]:
        expected = 1.0 if a + b == 0 else scipy_stats.binomtest(a, a + b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)


# 10 questions. base right on 0-7; compression loses 2-7 (6 lost) and gains 9.
BASE = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
COMP = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
LORA = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]   # wins back 2
IDP = [1, 0, 1, 1, 1, 0, 0, 0, 0, 1]    # wins back 2, 3, 4; breaks 1
IDP2 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]   # a second seed: wins back 2, 3


def _grids(tmp_path, cells):
    entries = []
    for (comp, rec, seed), answers in cells.items():
        labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed, "task": "capitals"}
        rows = [sample_row(i, [0.0, -1.0, -1.0, -1.0] if a else [-1.0, 0.0, -1.0, -1.0]) for i, a in enumerate(answers)]
        entries.append((labels, write_samples(tmp_path / f"{comp}-{rec}-{seed}.jsonl", rows)))
    return build_grids(with_pooled_task(question_table(entries, METHODS), ["capitals"]))


CELLS = {("none", "none", None): BASE, ("q", "none", None): COMP, ("q", "lora", 0): LORA, ("q", "idp", 0): IDP,
         ("q", "idp", 1): IDP2}


def test_flips_count_kept_lost_recovered_and_broken_per_seed(tmp_path):
    table = flips(_grids(tmp_path, CELLS))
    got = {(r.category, r.recovery, r.seed): r.count for r in table[table.task == "capitals"].itertuples()}
    assert got == {("kept", "", ""): 2, ("lost", "", ""): 6, ("gained", "", ""): 1,
                   ("recovered", "idp", "0"): 3, ("broken", "idp", "0"): 1,
                   ("recovered", "idp", "1"): 2, ("broken", "idp", "1"): 0,
                   ("recovered", "lora", "0"): 1, ("broken", "lora", "0"): 0,
                   ("recovered_by_several", "", ""): 1}   # question 2: lora, and idp on both seeds


def test_paired_tests_per_seed_and_input_vs_parameter_side(tmp_path):
    cells = {**CELLS, ("q", "pt", 0): COMP, ("none", "idp", 0): BASE}
    tests = paired_tests(_grids(tmp_path, cells), methods=METHODS, sides=SIDES)
    tests = tests[tests.task == "capitals"]
    by = {(r.comparison, r.b, r.b_seed): r for r in tests.itertuples()}
    comp = by[("compression", "q/none", "")]
    assert (comp.a_only, comp.b_only) == (6, 1) and comp.p_value == pytest.approx(mcnemar_exact(6, 1))
    assert (by[("recovery", "q/idp", "0")].a_only, by[("recovery", "q/idp", "0")].b_only) == (1, 3)
    assert (by[("recovery", "q/idp", "1")].a_only, by[("recovery", "q/idp", "1")].b_only) == (0, 2)
    assert by[("control", "none/idp", "0")].p_value == 1.0
    vs = tests[tests.comparison == "input_vs_parameters"]
    # every input-side recovery against every parameter-side one, seed by seed
    assert sorted(zip(vs.a, vs.b, vs.b_seed, strict=True)) == [("q/lora", "q/idp", "0"), ("q/lora", "q/pt", "0")]


def test_question_bootstrap_is_paired_and_seeded(tmp_path):
    grid = _grids(tmp_path, {**CELLS, ("none", "idp", 0): BASE})[("m", "capitals")]
    a = accuracy_draws(grid, 500, seed=0)
    assert a[("q", "idp")].shape == (500, 2) and a[("none", "none")].shape == (500, 1)
    np.testing.assert_array_equal(a[("q", "idp")], accuracy_draws(grid, 500, seed=0)[("q", "idp")])
    assert not np.array_equal(a[("q", "idp")], accuracy_draws(grid, 500, seed=1)[("q", "idp")])
    # paired: every model is scored on the same resampled questions, so two models with the same
    # answers have the same accuracy on every resample (independent resamples would differ)
    np.testing.assert_array_equal(a[("none", "none")], a[("none", "idp")])
    assert a[("none", "none")].std() > 0.05
    d = a[("none", "none")][:, 0] - a[("q", "none")][:, 0]
    assert d.mean() == pytest.approx(0.5, abs=0.03)


def test_bounds_agree_exactly_with_the_bootstrap_p_values():
    rng = np.random.default_rng(3)
    for _ in range(200):
        draws = np.round(rng.normal(0.5, 0.2, int(rng.integers(50, 400))), 2)
        draws[rng.random(len(draws)) < 0.05] = np.nan
        a, t = float(rng.uniform(0.001, 0.2)), float(rng.choice(draws[~np.isnan(draws)]))
        assert (lower_bound(draws, a) >= t) == (share_below(draws, t) <= a)
        assert (upper_bound(draws, a) < t) == (share_at_or_above(draws, t) <= a)


def test_holm_adjusted_p_values_and_levels():
    adjusted, levels, rejected = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted 0.005 (<= .05/4), 0.01 (<= .05/3), 0.03 (> .05/2: stop)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert levels == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert rejected == [True, False, False, True]
    assert holm([0.04], 0.05) == ([0.04], [0.05], [True])
    assert holm([0.03, 0.04], 0.05)[2] == [False, False]  # 0.03 > 0.025: Holm stops at once


def test_sign_flip_and_t_interval():
    # ten positive differences: exact two-sided p = 2 / 2^10
    assert sign_flip_p(np.ones(10), iters=20000, seed=0) == pytest.approx(2 / 1024, abs=0.001)
    assert sign_flip_p(np.zeros(10), iters=100, seed=0) == 1.0
    d = np.array([0.5, -0.2, 0.3, 0.1, 0.4])
    low, high = t_interval(d)
    half = 2.776445 * d.std(ddof=1) / math.sqrt(5)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_prompt_pool_ablation_numbers(tmp_path):
    import pandas as pd

    def frame(chosen, forced, correct):
        return pd.DataFrame({"model": "m", "compression": "q", "recovery": "idp", "seed": 0, "run": "idp.seed0",
                             "task": "t", "doc_id": [str(i) for i in range(len(chosen))], "correct": correct,
                             "margin": 0.0, "margin_norm": 0.0, "pool_choice": np.asarray(chosen, dtype=float),
                             "pool_correct": forced})

    # prompt 2 answers every question right, the others none; the model chose 2 on half the questions
    n = 40
    chosen = [2] * 20 + [0] * 10 + [1] * 10
    table = frame(chosen, ["0010"] * n, [True] * 20 + [False] * 20)
    (row,) = pool_ablation(table, seed=0).itertuples()
    assert row.chosen_counts == "10/10/20/0" and row.pool_size == 4
    assert row.acc_as_chosen == 0.5 and row.acc_chosen_forced == 0.5
    assert row.acc_random_expected == 0.25 and row.acc_best_fixed_crossfit == 1.0 and row.best_fixed_prompts == "2|2"
    assert row.acc_any_prompt == 1.0 and row.acc_per_prompt == "0.000/0.000/1.000/0.000"
    assert 0.1 < row.acc_random_prompt < 0.4   # one seeded draw per question
    # prompts that are all coin flips: the in-sample best is optimistic, the cross-fitted one is not
    rng = np.random.default_rng(5)
    n = 400
    forced = ["".join(rng.choice(["0", "1"], 8)) for _ in range(n)]
    table = frame(list(rng.integers(0, 8, n)), forced, [f[0] == "1" for f in forced])
    (row,) = pool_ablation(table, seed=0).itertuples()
    assert row.acc_best_fixed_in_sample > row.acc_random_expected + 0.02
    assert abs(row.acc_best_fixed_crossfit - row.acc_random_expected) < 0.05
    assert (pool_ablation(table, seed=0).acc_random_prompt == row.acc_random_prompt).all()  # seeded


def test_leak_check_fails_when_a_kept_passage_names_subject_and_answer(tmp_path):
    from compress_recover.aggregate.analysis import LeakError, check_leaks

    task = tmp_path / "capitals"
    task.mkdir()
    (task / "capitals.jsonl").write_text(json.dumps({"subject": "Lithuania", "answer_text": "Vilnius"}) + "\n")
    text = tmp_path / "text"
    text.mkdir()
    (text / "leak_report.json").write_text(json.dumps({"dropped_leaks": 3, "passages_total": 10,
                                                       "train_passages": 6, "heldout_passages": 1}))
    (text / "heldout.jsonl").write_text(json.dumps({"id": 1, "text": "Rain fell on Lithuania."}) + "\n")
    (text / "train.jsonl").write_text(json.dumps({"id": 0, "text": "The weather was mild."}) + "\n")
    assert check_leaks(text, [str(task)])["remaining_leaks"] == 0
    (text / "train.jsonl").write_text(json.dumps({"id": 7, "text": "Vilnius is the capital of Lithuania."}) + "\n")
    with pytest.raises(LeakError, match="1 passage"):
        check_leaks(text, [str(task)])
