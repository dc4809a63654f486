"""Recovery fraction, flips, McNemar and the verdict on hand-made samples with known answers."""

from __future__ import annotations

import json
import math

import pytest

from compress_recover.aggregate.stats import (ALL_KNOWLEDGE, bootstrap_fraction, correctness_table, flips, mcnemar_exact,
                                              paired_tests, recovery_fractions, verdicts, with_pooled_task)

METHODS = {"none": "none", "lora": "lora", "idp": "idp"}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
BUDGET = {"steps": 60, "batch_size": 4, "seq_len": 128}


def _samples(tmp_path, name, answers):
    f = tmp_path / f"{name}.jsonl"
    f.write_text("".join(json.dumps({"doc_id": i, "acc": float(a), "acc_norm": 0.0}) + "\n"
                         for i, a in enumerate(answers)))
    return str(f)


def _table(tmp_path, cells, task="capitals"):
    entries = []
    for (comp, rec), answers in cells.items():
        labels = {"model": "m", "compression": comp, "recovery": rec, "task": task}
        entries.append((labels, _samples(tmp_path, f"{comp}-{rec}-{task}", answers)))
    return correctness_table(entries)


# 10 questions. base right on 0-7; compression loses 2-7 (6 lost) and gains 9.
BASE = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
COMP = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
LORA = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]   # wins back 2
IDP = [1, 0, 1, 1, 1, 0, 0, 0, 0, 1]    # wins back 2, 3, 4; breaks 1


def test_mcnemar_exact_matches_the_binomial_test():
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b in [(0, 0), (1, 0), (6, 1), (3, 3), (10, 2), (0, 12), (40, 25)]:
        expected = 1.0 if a + b == 0 else scipy_stats.binomtest(a, a + b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)


def test_flips_count_kept_lost_recovered_and_broken(tmp_path):
    table = _table(tmp_path, {("none", "none"): BASE, ("q", "none"): COMP, ("q", "lora"): LORA, ("q", "idp"): IDP})
    got = {(r.category, r.recovery): r.count for r in flips(table).itertuples()}
    assert got == {("kept", ""): 2, ("lost", ""): 6, ("gained", ""): 1,
                   ("recovered", "idp"): 3, ("broken", "idp"): 1,
                   ("recovered", "lora"): 1, ("broken", "lora"): 0,
                   ("recovered_by_several", ""): 1}


def test_recovery_fraction_and_its_interval(tmp_path):
    table = _table(tmp_path, {("none", "none"): BASE, ("q", "none"): COMP, ("q", "lora"): LORA, ("q", "idp"): IDP})
    fr = recovery_fractions(table, iters=2000, seed=0).set_index("recovery")
    # base 0.8, compressed 0.3: idp 0.5 -> (0.5 - 0.3) / 0.5 = 0.4; lora 0.4 -> 0.2
    assert fr.loc["idp", "recovery_fraction"] == pytest.approx(0.4)
    assert fr.loc["lora", "recovery_fraction"] == pytest.approx(0.2)
    assert fr.loc["none", "recovery_fraction"] == 0.0
    row = fr.loc["idp"]
    assert row.ci_low <= 0.4 <= row.ci_high and row.ci_high - row.ci_low > 0.1
    again = recovery_fractions(table, iters=2000, seed=0).set_index("recovery")
    assert again.loc["idp", "ci_low"] == row.ci_low  # seeded


def test_recovery_fraction_is_undefined_without_damage():
    import numpy as np

    same = np.array([1, 0, 1, 1], dtype=bool)
    out = bootstrap_fraction(same, same, np.array([1, 1, 1, 1], dtype=bool), iters=100, seed=0)
    assert math.isnan(out["recovery_fraction"]) and math.isnan(out["ci_low"])
    better = bootstrap_fraction(same, np.ones(4, dtype=bool), same, iters=100, seed=0)
    assert math.isnan(better["recovery_fraction"])


def test_paired_tests_and_input_vs_parameter_side(tmp_path):
    cells = {("none", "none"): BASE, ("q", "none"): COMP, ("q", "lora"): LORA, ("q", "idp"): IDP,
             ("q", "pt"): COMP}
    tests = paired_tests(_table(tmp_path, cells), methods={**METHODS, "pt": "prompt_tuning"}, sides=SIDES)
    by = {(r.comparison, r.b): r for r in tests.itertuples()}
    comp = by[("compression", "q/none")]
    assert (comp.a_only, comp.b_only) == (6, 1) and comp.p_value == pytest.approx(mcnemar_exact(6, 1))
    idp = by[("recovery", "q/idp")]
    assert (idp.a_only, idp.b_only) == (1, 3)
    # every input-side recovery against every parameter-side one, whatever the methods are called
    vs = tests[tests.comparison == "input_vs_parameters"]
    assert sorted(zip(vs.a, vs.b, strict=True)) == [("q/lora", "q/idp"), ("q/lora", "q/pt")]
    assert (by[("input_vs_parameters", "q/idp")].a_only, by[("input_vs_parameters", "q/idp")].b_only) == (1, 2)


def _verdict(tmp_path, base, comp, recs, alpha=0.05, minimum=0.5):
    cells = {("none", "none"): base, ("q", "none"): comp, **{("q", r): a for r, a in recs.items()}}
    table = with_pooled_task(_table(tmp_path, cells), ["capitals"])
    fr = recovery_fractions(table, iters=200, seed=0)
    tests = paired_tests(table, methods=METHODS, sides=SIDES)
    (v,) = verdicts(fr, tests, methods=METHODS, sides=SIDES, alpha=alpha, min_recovery_fraction=minimum,
                    budget=BUDGET)
    return v


N = 40
BASE40 = [1] * 36 + [0] * 4
COMP40 = [1] * 6 + [0] * 34          # loses 30: significant damage
BACK40 = [1] * 30 + [0] * 10         # wins back 24 of 30 (fraction 0.8)


def test_verdict_displaced_when_a_prompt_wins_knowledge_back(tmp_path):
    v = _verdict(tmp_path, BASE40, COMP40, {"idp": BACK40, "lora": COMP40})
    assert v["verdict"] == "displaced" and "idp" in v["reason"]
    assert v["evidence"]["p_compression"] < 1e-6


def test_verdict_forgotten_when_only_new_parameters_win_it_back(tmp_path):
    v = _verdict(tmp_path, BASE40, COMP40, {"idp": COMP40, "lora": BACK40})
    assert v["verdict"] == "forgotten"


def test_verdict_inconclusive_when_nothing_wins_enough(tmp_path):
    small = [1] * 16 + [0] * 24      # wins back 10 of 30: p = 0.002 but fraction 0.33 < 0.5
    v = _verdict(tmp_path, BASE40, COMP40, {"idp": small, "lora": COMP40})
    assert v["verdict"] == "inconclusive" and "budget is too small to decide" in v["reason"]
    (idp,) = [m for m in v["evidence"]["methods"] if m["recovery"] == "idp"]
    assert idp["p_value"] < 0.01 and idp["recovery_fraction"] == pytest.approx(1 / 3) and not idp["wins"]


def test_verdict_no_loss_when_compression_did_no_measurable_damage(tmp_path):
    v = _verdict(tmp_path, BASE40, BASE40[:35] + [0] + BASE40[36:], {"idp": BASE40})
    assert v["verdict"] == "no measurable loss"


def test_pooled_task_concatenates_every_knowledge_question(tmp_path):
    a = _table(tmp_path, {("none", "none"): [1, 0]}, task="capitals")
    b = _table(tmp_path, {("none", "none"): [1, 1, 0]}, task="currencies")
    import pandas as pd

    pooled = with_pooled_task(pd.concat([a, b]), ["capitals", "currencies"])
    assert (pooled.task == ALL_KNOWLEDGE).sum() == 5 and pooled[pooled.task == ALL_KNOWLEDGE].doc_id.is_unique


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
