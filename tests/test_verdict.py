"""The verdict on hand-made per-question data with known answers: one test per branch of
the rule (no measurable loss, recoverable from the input side, recoverable only with new
parameters, not recovered at this budget, inconclusive), Holm's correction, non-inferiority,
seeds, the format control, margins."""

from __future__ import annotations

import json

import math

import numpy as np
import pandas as pd
import pytest

from compress_recover.aggregate.analysis import analyse
from compress_recover.aggregate.stats.methods import Methods
from compress_recover.aggregate.stats.questions import COLUMNS, QUESTION_COLUMNS, with_pooled_task
from compress_recover.aggregate.stats.settings import Settings
from compress_recover.aggregate.stats.verdict import decide, verdict_rule
from samples import damage_record, decision_record

METHODS = {"lora": "lora", "idp": "idp", "pt": "prompt_tuning"}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
BUDGET = {"steps": 60, "batch_size": 4, "seq_len": 128}


def right(n: int, *ranges) -> np.ndarray:
    """A correctness vector of n questions, right on the given index ranges."""
    v = np.zeros(n, dtype=bool)
    for r in ranges:
        v[list(r)] = True
    return v


def question_frame(cells: dict, margins: dict | None = None, model: str = "m", dev=()) -> pd.DataFrame:
    """The per-question table of ``cells`` ((compression, recovery, seed) -> correctness),
    the right choice's probability (``margins``) 0.7 / 0.1 unless given, with the pooled task;
    questions ``dev`` (indices) in the dev split, the others test; every run at the final
    budget (no steps label)."""
    rows = []
    for (comp, rec, seed), correct in cells.items():
        run = rec if seed is None else f"{rec}.seed{seed}"
        margin = (margins or {}).get((comp, rec, seed))
        for i, c in enumerate(correct):
            m = float(margin[i]) if margin is not None else (0.7 if c else 0.1)
            rows.append({"model": model, "compression": comp, "recovery": rec, "seed": seed, "run": run,
                         "task": "capitals", "doc_id": str(i), "split": "dev" if i in dev else "test",
                         "correct": bool(c), "p_right": m, "p_right_norm": m / 2, "pool_choice": float("nan"),
                         "pool_correct": "", "chosen": "right" if c else "wrong",
                         "choice_probs": json.dumps([m, 1 - m]), "question": f"Question {i}?",
                         # each question its own right answer: one shared by all would make
                         # them one resampling cluster (stats/clusters.py)
                         "choices": json.dumps([f"right {i}", f"wrong {i}"]), "answer": f"right {i}",
                         "popularity": float(i),
                         "popularity_measure": "the question's index"})
    table = pd.DataFrame(rows, columns=[*COLUMNS, *QUESTION_COLUMNS])
    table[["seed", "steps"]] = table[["seed", "steps"]].astype("Int64")
    return with_pooled_task(table, ["capitals"])


def analysed(cells: dict, margins: dict | None = None, **settings) -> dict:
    return analyse(question_frame(cells, margins), methods=Methods(METHODS, SIDES), settings=Settings(**settings),
                   seed=0, budget=BUDGET)


def one_verdict(result: dict, compression: str = "q") -> dict:
    (v,) = [v.as_dict() for v in result["verdicts"] if v.compression == compression]
    return v


def method(v: dict, recovery: str) -> dict:
    (m,) = [m for m in v["evidence"]["methods"] if m["recovery"] == recovery]
    return m


N = 400
BASE = right(N, range(360))             # base right on 360 of 400
COMP = right(N, range(160))             # compression loses 200 of them
CONTROL = {("none", "idp", 0): BASE, ("none", "lora", 0): BASE, ("none", "pt", 0): BASE}  # no format gain


def back(k: int, n: int = N, comp_right: int = 160) -> np.ndarray:
    """The compressed model plus k of the lost questions won back."""
    return right(n, range(comp_right + k))


def cells(**recs) -> dict:
    out = {("none", "none", None): BASE, ("q", "none", None): COMP, **CONTROL}
    out.update({("q", rec, 0): v for rec, v in recs.items()})
    return out


def test_recoverable_from_the_input_side_when_an_input_side_method_recovers():
    v = one_verdict(analysed(cells(idp=back(180), lora=back(0))))
    assert v["verdict"] == "recoverable from the input side" and "idp" in v["reason"]
    assert "about the trained adapter(s), not the method (fewer than 3 seeds): idp (seed 0)" in v["reason"]
    idp = method(v, "idp")
    assert idp["decision"] == "recovers" and idp["fraction"] == pytest.approx(0.9)
    assert idp["ci_low"] >= 0.5 and idp["fraction_used"] == "controlled"
    assert method(v, "lora")["decision"] == "fails"


def test_dev_questions_enter_no_decision():
    # the 100 dev questions (160-259) are all lost by compression and won back by idp: on every
    # question F = 180 / 200 = 0.9; on the 300 test questions F = (240 - 160) / (260 - 160) = 0.8
    table = question_frame(cells(idp=back(180), lora=back(0)), dev=set(range(160, 260)))
    idp = method(one_verdict(analyse(table, methods=Methods(METHODS, SIDES), settings=Settings(), seed=0,
                                     budget=BUDGET)), "idp")
    assert idp["n"] == 300 and idp["fraction"] == pytest.approx(0.8)


def test_recoverable_only_with_new_parameters_when_only_they_recover_and_every_prompt_fails():
    v = one_verdict(analysed(cells(idp=back(0), pt=back(10), lora=back(180))))
    assert v["verdict"] == "recoverable only with new parameters"
    assert method(v, "lora")["decision"] == "recovers"
    assert {method(v, r)["decision"] for r in ("idp", "pt")} == {"fails"}
    assert "lora" in v["reason"] and "idp" in v["reason"] and "pt" in v["reason"]


def test_not_only_new_parameters_while_an_input_side_method_is_undecided():
    # lora recovers, idp sits near the threshold with a wide interval (few questions)
    few = {("none", "none", None): right(40, range(36)), ("q", "none", None): right(40, range(16)),
           ("none", "idp", 0): right(40, range(36)), ("none", "lora", 0): right(40, range(36)),
           ("q", "lora", 0): right(40, range(36)), ("q", "idp", 0): right(40, range(27))}
    v = one_verdict(analysed(few))
    assert method(v, "lora")["decision"] == "recovers" and method(v, "idp")["decision"] == "undecided"
    assert v["verdict"] == "inconclusive"


def test_not_recovered_at_this_budget_is_positive_evidence():
    v = one_verdict(analysed(cells(idp=back(0), lora=back(2))))
    assert v["verdict"] == "not recovered at this budget"
    assert all(m["decision"] == "fails" and m["ci_high"] < 0.5 and m["ci_low"] <= 0
               for m in v["evidence"]["methods"])
    assert "positive evidence" in v["reason"] and "30,720 tokens" in v["reason"]


def test_partly_recovered_when_every_method_fails_but_one_wins_back_more_than_none():
    # both fail the threshold; lora's simultaneous interval is above 0: part of the loss comes back
    v = one_verdict(analysed(cells(idp=back(0), lora=back(30))))
    assert v["verdict"] == "partly recovered at this budget"
    lora, idp = method(v, "lora"), method(v, "idp")
    assert lora["decision"] == idp["decision"] == "fails" and lora["ci_low"] > 0 >= idp["ci_low"]
    assert "lora wins back more than none" in v["reason"]
    # beside F, the won-back share of the lost questions against the never-known ones it gets right
    assert lora["won_back"] == pytest.approx(30 / lora["lost_questions"]) and lora["never_known_right"] == 0
    assert "lost questions against" in v["reason"]


def test_no_measurable_loss_when_the_damage_bound_is_below_the_minimum():
    # compression swaps 2 right answers for 2 others: damage 0, upper bound well below 0.02
    comp = BASE.copy()
    comp[[0, 1]] = False
    comp[[370, 371]] = True
    base_cells = {("none", "none", None): BASE, ("q", "none", None): comp, ("q", "idp", 0): BASE}
    v = one_verdict(analysed(base_cells))
    assert v["verdict"] == "no measurable loss"
    assert v["evidence"]["damage"] == 0 and v["evidence"]["damage_upper"] < 0.02
    # a small loss on few questions is not "no loss": its bound is above min_damage
    few = {("none", "none", None): right(40, range(36)), ("q", "none", None): right(40, range(35)),
           ("q", "idp", 0): right(40, range(36))}
    v = one_verdict(analysed(few))
    assert v["verdict"] != "no measurable loss" and v["evidence"]["damage_upper"] >= 0.02


def test_inconclusive_when_the_interval_straddles_the_threshold_with_a_power_estimate():
    few = {("none", "none", None): right(40, range(36)), ("q", "none", None): right(40, range(16)),
           ("q", "idp", 0): right(40, range(28)), ("q", "lora", 0): right(40, range(28))}  # F = 0.6 each
    v = one_verdict(analysed(few))
    assert v["verdict"] == "inconclusive"
    idp = method(v, "idp")
    assert idp["decision"] == "undecided" and idp["ci_low"] < 0.5 <= idp["ci_high"]
    # power at the pre-specified effect (F = 0 against the threshold 0.5), not the observed 0.6: 40 questions
    # would show "fails" for a method that wins back nothing; this one is undecided because F sits near 0.5
    power = idp["power"]
    assert power["alternatives"] == {"fails": 0.0, "recovers": 0.8}
    assert 0 < power["questions_needed"] == power["fails"]["facts_needed"] <= 40 and "facts" in v["reason"]
    assert power["seeds_needed"] is None and "fewer than 3 seeds" in power["note"]


def _holm_cells(extra_compressions: int) -> dict:
    """q: idp wins back 62 of 100 lost questions (F = 0.62, p ~ 0.016 alone); q1..: F = 0.5."""
    n = 200
    out = {("none", "none", None): right(n, range(160)), ("q", "none", None): right(n, range(60)),
           ("q", "idp", 0): right(n, range(122))}
    for i in range(1, extra_compressions + 1):
        out[(f"q{i}", "none", None)] = right(n, range(60))
        out[(f"q{i}", "idp", 0)] = right(n, range(110))
    return out


def test_holm_turns_a_single_test_win_into_inconclusive():
    # one Holm family over every confirmatory claim: each compression's no-loss test (never rejected here: the
    # damage is 0.5, p = 1) and each recovery's test
    fixed = {"bootstrap_iters": 4000, "min_tail_resamples": 1}  # the same resamples in both runs
    alone = analysed(_holm_cells(0), **fixed)
    v = one_verdict(alone)
    idp = method(v, "idp")
    assert v["evidence"]["p_value"] == 1.0 and v["evidence"]["family_size"] == 2
    assert v["verdict"] == "recoverable from the input side" and idp["family_size"] == 2
    assert idp["holm_level"] == pytest.approx(0.05 / 2) and idp["p_holm"] == pytest.approx(2 * idp["p_value"])
    assert 0.05 / 8 < idp["p_value"] <= 0.05 / 2
    grid = analysed(_holm_cells(3), **fixed)
    v = one_verdict(grid)
    idp4 = method(v, "idp")
    assert idp4["p_value"] == idp["p_value"] and idp4["family_size"] == 8
    assert idp4["holm_level"] == pytest.approx(0.05 / 8) and idp4["p_holm"] == pytest.approx(8 * idp["p_value"])
    assert idp4["decision"] == "undecided" and v["verdict"] == "inconclusive"
    assert idp4["ci_low"] < 0.5 <= idp4["ci_high"] and idp["ci_low"] >= 0.5
    assert idp4["confidence"] == pytest.approx(1 - 0.05 / 8)


@pytest.mark.slow
def test_noninferiority_met_and_not_met():
    met = one_verdict(analysed(cells(idp=back(176), lora=back(180))))["evidence"]["noninferiority"]
    (t,) = met
    assert (t["input"], t["parameters"]) == ("idp", "lora")
    assert t["difference"] == pytest.approx(-0.02) and t["lower_bound"] > -0.1 and t["result"] == "non-inferior"
    (t,) = one_verdict(analysed(cells(idp=back(100), lora=back(180))))["evidence"]["noninferiority"]
    assert t["difference"] == pytest.approx(-0.4) and t["lower_bound"] <= -0.1 and t["result"] == "not shown"
    # within the margin on average, but too few questions to show it
    few = {("none", "none", None): right(40, range(36)), ("q", "none", None): right(40, range(16)),
           ("q", "idp", 0): right(40, range(32)), ("q", "lora", 0): right(40, range(33))}
    (t,) = one_verdict(analysed(few))["evidence"]["noninferiority"]
    assert t["difference"] == pytest.approx(-0.05) and t["result"] == "not shown"


@pytest.mark.slow
def test_seeds_widen_the_interval():
    rng = np.random.default_rng(1)
    lost = np.arange(160, 360)

    def run_with(vectors):
        c = {("none", "none", None): BASE, ("q", "none", None): COMP}
        c.update({("q", "idp", s): v for s, v in enumerate(vectors)})
        return method(one_verdict(analysed(c, bootstrap_iters=2000, min_tail_resamples=1)), "idp")

    def won(k):
        v = COMP.copy()
        v[rng.choice(lost, k, replace=False)] = True
        return v

    one = run_with([won(120)])
    same = run_with([one_v := back(120)] * 3)
    spread = run_with([won(60), won(120), won(180)])  # same mean fraction, seeds disagree
    assert one["fraction"] == pytest.approx(0.6) and spread["fraction"] == pytest.approx(0.6)
    assert spread["fraction_sd"] == pytest.approx(0.3)
    width = lambda m: m["ci_high"] - m["ci_low"]  # noqa: E731
    assert width(spread) > 2 * width(one)
    assert same["seeds"] == [0, 1, 2] and one_v.sum() == 280
    # identical seeds add no seed variance: the t interval on the question draws alone, the percentile one's width
    assert width(same) == pytest.approx(width(run_with([one_v])), rel=0.03)


@pytest.mark.slow
def test_format_control_is_subtracted_and_flagged_when_missing():
    # compression loses 80 (base 360 -> 280); idp wins back 56 (raw 0.7) but gains 40 on the uncompressed
    # model too (control gain 0.1): controlled (56 - 40) / 80 = 0.2, too low to recover; "fails" needs the
    # raw fraction below too (0.7 >= 0.5), so idp is undecided, not failed
    base, comp = BASE, right(N, range(280))
    control_idp = right(N, range(360), range(360, 400))   # 400 right: +40 over base
    c = {("none", "none", None): base, ("q", "none", None): comp, ("q", "idp", 0): right(N, range(336)),
         ("q", "lora", 0): right(N, range(352)), ("none", "idp", 0): control_idp, ("none", "lora", 0): base}
    result = analysed(c)
    v = one_verdict(result)
    idp = method(v, "idp")
    assert idp["control_gain"] == pytest.approx(0.1) and idp["recovery_fraction"] == pytest.approx(0.7)
    assert idp["fraction"] == pytest.approx(0.2) and idp["fraction_used"].startswith("both")
    assert idp["controlled_fraction"] == pytest.approx(0.2) and idp["controlled_ci_low"] < 0.5
    assert idp["raw_ci_high"] >= 0.5 and idp["ci_low"] == idp["controlled_ci_low"]
    assert idp["ci_high"] == idp["raw_ci_high"]
    assert idp["decision"] == "undecided" and v["verdict"] == "inconclusive"
    control = result["format_control"].set_index(["task", "recovery"]).loc[("all_knowledge", "idp")]
    assert control.control_gain == pytest.approx(0.1) and control.ci_low > 0
    # without the control runs the raw fraction decides, flagged
    del c[("none", "idp", 0)], c[("none", "lora", 0)]
    v = one_verdict(analysed(c))
    idp = method(v, "idp")
    assert idp["fraction_used"] == "raw (no control run)" and math.isnan(idp["control_gain"])
    assert idp["fraction"] == pytest.approx(0.7) and idp["decision"] == "recovers"
    assert v["verdict"] == "recoverable from the input side"


def test_margin_test_sees_what_right_or_wrong_does_not():
    # the recovery answers the same questions right, but the right choice's probability grows by 0.1
    rng = np.random.default_rng(0)
    comp_margin = np.where(COMP, 0.6, 0.2) + rng.normal(0, 0.02, N)
    c = {("none", "none", None): BASE, ("q", "none", None): COMP, ("q", "idp", 0): COMP}
    margins = {("q", "none", None): comp_margin, ("q", "idp", 0): comp_margin + 0.1}
    result = analysed(c, margins)
    v = one_verdict(result)
    idp = method(v, "idp")
    (mcnemar,) = idp["mcnemar"]
    assert mcnemar["p_value"] == 1.0
    (test,) = [t for t in idp["margin_test"] if t["metric"] == "p_right"]
    assert test["mean_difference"] == pytest.approx(0.1) and test["ci_low"] <= 0.1 <= test["ci_high"]
    assert test["p_value"] < 0.002 and test["improved"] == N
    # symmetric noise around the compressed margins: no evidence
    noise = rng.normal(0, 0.1, N)
    margins[("q", "idp", 0)] = comp_margin + noise - noise.mean()
    (test,) = [t for t in method(one_verdict(analysed(c, margins)), "idp")["margin_test"] if t["metric"] == "p_right"]
    assert abs(test["mean_difference"]) < 1e-12 and test["p_value"] > 0.5


@pytest.mark.slow
def test_decisions_are_deterministic_for_a_seed():
    a = analysed(cells(idp=back(110), lora=back(90)))
    b = analysed(cells(idp=back(110), lora=back(90)))
    pd.testing.assert_frame_equal(a["decisions"], b["decisions"])
    other = analyse(question_frame(cells(idp=back(110), lora=back(90))), methods=Methods(METHODS, SIDES),
                    settings=Settings(), seed=1, budget=BUDGET)
    assert not a["decisions"].ci_low.equals(other["decisions"].ci_low)


def test_decide_branches_directly():
    damage = damage_record()

    def m(rec, side, decision):
        return decision_record(rec, side, decision, power={"questions_needed": 10, "power": 0.8})

    assert decide(damage_record(no_measurable_loss=True), [], BUDGET)[0] == "no measurable loss"
    assert decide(damage, [m("a", "input", "recovers"), m("b", "parameters", "fails")],
                  BUDGET)[0] == "recoverable from the input side"
    assert decide(damage, [m("a", "input", "fails"), m("b", "parameters", "recovers")],
                  BUDGET)[0] == "recoverable only with new parameters"
    assert decide(damage, [m("a", "input", "fails"), m("b", "parameters", "fails")],
                  BUDGET)[0] in ("not recovered at this budget", "partly recovered at this budget")
    assert decide(damage, [m("a", "input", "undecided"), m("b", "parameters", "recovers")],
                  BUDGET)[0] == "inconclusive"
    # a parameter-side win with no input-side method tried cannot tell the input side from new parameters
    verdict, reason = decide(damage, [m("b", "parameters", "recovers")], BUDGET)
    assert verdict == "inconclusive" and "no input-side method" in reason


def test_the_rule_names_its_thresholds_and_the_sides():
    rule = verdict_rule(Methods(sides=SIDES), Settings(min_recovery_fraction=0.4, min_damage=0.03), BUDGET)
    for words in ("Holm", "min_recovery_fraction (0.4)", "min_damage (0.03", "idp, prompt_tuning", "(lora;",
                  "are resampled with replacement", "control gain", "never clipped at 0",
                  "lower bounds at alpha_i / 2 of both F_c and the raw F", "upper bounds at alpha_i / 2 of both",
                  "ONE Holm family at alpha = 0.05", "exactly the claims the verdict's label reads",
                  "non-inferiority", "is descriptive", "Welch-Satterthwaite", "(k + 1) / (B + 1)",
                  "Bonferroni level", "fewer than 3 seeds", "trained adapter(s), not the method",
                  "(F = 0) and one that wins back 0.8", "capped at the facts the tasks have",
                  "NOT RECOVERED AT THIS BUDGET (60 steps", "PARTLY RECOVERED", "INCONCLUSIVE",
                  "RECOVERABLE FROM THE INPUT SIDE", "RECOVERABLE ONLY WITH NEW PARAMETERS, with the methods and "
                  "capacities tried", "NO MEASURABLE LOSS", "REFERENCES", "this compressed checkpoint",
                  "knowledge DISPLACED", "knowledge FORGOTTEN", "does not show forgetting"):
        assert words in rule, words


def test_undefined_fraction_without_damage_is_undecided_not_an_error():
    # 20 questions: compression swaps two right answers for two others; damage 0 but too few questions
    # to bound it below min_damage, and no damage means no recovery fraction
    base = right(20, range(12))
    comp = right(20, range(2, 14))
    v = one_verdict(analysed({("none", "none", None): base, ("q", "none", None): comp, ("q", "idp", 0): base,
                              ("q", "lora", 0): base}))
    assert v["evidence"]["damage"] == 0 and v["evidence"]["damage_upper"] > 0.02
    idp = method(v, "idp")
    assert math.isnan(idp["fraction"]) and idp["decision"] == "undecided" and idp["p_value"] == 1.0
    assert v["verdict"] == "inconclusive" and "no estimate" in idp["power"]["note"]


def test_a_method_is_not_credited_for_what_it_breaks_on_the_uncompressed_model():
    # idp loses 40 on the uncompressed model (control gain -0.1): subtracting it lifts idp's controlled
    # fraction from 0.25 to 0.75. "recovers" needs the raw fraction too (below: no), and "fails" needs the
    # controlled one too (above: no): with a negative control gain neither claim is the easy one, so
    # idp is undecided (the old rule read "fails" on the raw fraction alone and called it failed)
    base, comp = BASE, right(N, range(280))
    c = {("none", "none", None): base, ("q", "none", None): comp, ("q", "idp", 0): right(N, range(300)),
         ("none", "idp", 0): right(N, range(320))}
    v = one_verdict(analysed(c))
    idp = method(v, "idp")
    assert idp["control_gain"] == pytest.approx(-0.1) and idp["recovery_fraction"] == pytest.approx(0.25)
    assert idp["controlled_fraction"] == pytest.approx(0.75) and idp["controlled_ci_low"] >= 0.5
    assert idp["raw_ci_high"] < 0.5
    assert idp["decision"] == "undecided" and v["verdict"] == "inconclusive"


@pytest.mark.slow
def test_the_one_to_one_sensitivity_verdict_is_the_verdict_on_those_relations_alone():
    from compress_recover.aggregate.results import json_safe
    from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE
    from compress_recover.aggregate.stats.sensitivity import one_to_one_tasks

    data = cells(idp=back(180), lora=back(0))
    capitals = question_frame(data)
    capitals = capitals[capitals.task == "capitals"]
    # a relation whose questions share one right answer, where compression loses nothing
    shared = question_frame({k: BASE for k in data})
    shared = shared[shared.task == "capitals"]
    shared = shared.assign(
        task="city_country", answer="China",
        choices=[json.dumps(["China", f"wrong {i}"]) for i in shared.doc_id])
    both = with_pooled_task(pd.concat([capitals, shared], ignore_index=True), ["capitals", "city_country"])
    assert one_to_one_tasks(both) == ["capitals"]
    result = analyse(both, methods=Methods(METHODS, SIDES), settings=Settings(), seed=0, budget=BUDGET)
    alone = analysed(data)
    row = result["sensitivity"]["one_to_one"]
    assert row["tasks"] == ["capitals"] and row["questions"] == N
    # the pooled verdict sees city_country too (half the damage); the sensitivity row is
    # exactly the analysis of capitals alone, number for number
    pooled = one_verdict(result)
    assert pooled["evidence"]["damage"] == pytest.approx(alone_damage(alone) / 2)
    (sens,) = [v.as_dict() for v in row["verdicts"]]
    expected = one_verdict(alone)
    for m in expected["evidence"]["methods"]:  # the descriptive tests are attached to the verdict only
        m["margin_test"], m["mcnemar"] = [], []
    assert json.dumps(json_safe(sens), sort_keys=True) == json.dumps(json_safe(expected), sort_keys=True)
    assert sens["verdict"] == "recoverable from the input side"
    assert set(both[both.task == ALL_KNOWLEDGE].doc_id.str.split(":").str[0]) == {"capitals", "city_country"}


def alone_damage(result: dict) -> float:
    return one_verdict(result)["evidence"]["damage"]


def test_a_relation_with_a_few_shared_answers_is_one_to_one_without_them():
    from compress_recover.aggregate.stats.sensitivity import one_to_one_questions

    def rows(task, answers):
        return [{"task": task, "doc_id": str(i), "answer": a, "choices": json.dumps([a, "other"])}
                for i, a in enumerate(answers)]

    capitals = [f"city {i}" for i in range(38)] + ["Jerusalem", "Jerusalem"]  # 2 of 40 share: 5%
    currencies = [f"coin {i}" for i in range(30)] + ["Euro"] * 10            # 10 of 40 share
    table = pd.DataFrame(rows("capitals", capitals) + rows("currencies", currencies))
    tasks, kept = one_to_one_questions(table)
    assert tasks == ["capitals"]
    assert kept == {f"capitals:{i}" for i in range(38)}  # the two Jerusalem questions left out
    # a task whose choices have no texts cannot be checked: never one-to-one
    table.loc[table.task == "capitals", "choices"] = "null"
    assert one_to_one_questions(table) == ([], set())


@pytest.mark.slow
def test_a_reference_never_decides_a_side_and_gets_its_own_label():
    # eora (its information: the uncompressed weights) recovers; every method of the two sides fails.
    # Without the reference rule this read "recoverable only with new parameters"; eora is outside the
    # family (marginal 95%), beside the verdict with its own label
    methods = Methods({**METHODS, "eora": "eora"}, {**SIDES, "eora": "parameters"},
                      references={"eora": "the uncompressed weights"})
    c = cells(idp=back(0), lora=back(2), eora=back(190))
    result = analyse(question_frame(c), methods=methods, settings=Settings(), seed=0, budget=BUDGET)
    (v,) = [v for v in result["verdicts"] if v.compression == "q"]
    assert v.verdict == "not recovered at this budget"
    eora = next(m for m in v.methods if m.recovery == "eora")
    assert eora.decision == "recovers" and eora.reference == "the uncompressed weights"
    assert eora.family_size is None and eora.interval_confidence == pytest.approx(0.95)
    assert v.reference.startswith("recoverable from the uncompressed model (reference")
    sides = [m for m in v.methods if not m.reference]
    assert {m.family_size for m in sides} == {1 + len(sides)}  # the no-loss test and the two sides' methods
    assert all(t["parameters"] != "eora" for t in v.noninferiority)  # a reference is on neither side
    # the same data with eora registered as a side's method: the label it could wrongly give
    plain = analyse(question_frame(c), methods=Methods({**METHODS, "eora": "eora"}, {**SIDES, "eora": "parameters"}),
                    settings=Settings(), seed=0, budget=BUDGET)
    assert next(v for v in plain["verdicts"] if v.compression == "q").verdict == "recoverable only with new parameters"


def test_mixed_decisions_decide_no_label_they_do_not_support():
    # each case kills a mutant of decide(): "all input-side methods fail" read as "any", and "every
    # method fails" read as "some method fails"
    damage = damage_record()

    def m(rec, side, decision):
        return decision_record(rec, side, decision, power={"questions_needed": 10, "power": 0.8})

    one_input_undecided = [m("a", "input", "fails"), m("c", "input", "undecided"), m("b", "parameters", "recovers")]
    assert decide(damage, one_input_undecided, BUDGET)[0] == "inconclusive"
    one_param_undecided = [m("a", "input", "fails"), m("b", "parameters", "undecided")]
    assert decide(damage, one_param_undecided, BUDGET)[0] == "inconclusive"
    assert decide(damage, [m("a", "input", "fails"), m("b", "parameters", "fails"), m("c", "parameters", "undecided")],
                  BUDGET)[0] == "inconclusive"
    # partly: every method fails, one with its interval above 0
    above = decision_record("b", "parameters", "fails", ci=(0.05, 0.4), power=None)
    at_zero = decision_record("a", "input", "fails", ci=(-0.1, 0.3), power=None)
    assert decide(damage, [at_zero, above], BUDGET)[0] == "partly recovered at this budget"
    assert decide(damage, [at_zero], BUDGET)[0] == "not recovered at this budget"
    # a reference that recovers, beside sides that fail: the sides decide
    ref = decision_record("e", "parameters", "recovers", reference="the uncompressed weights")
    assert decide(damage, [at_zero, ref], BUDGET)[0] == "not recovered at this budget"
    assert decide(damage, [m("a", "input", "fails"), ref], BUDGET)[0] != "recoverable only with new parameters"


def _pool_analysis(examples: dict):
    """idp wins back 180 of 200 lost questions, every idp test question answered by prompt 1;
    analysed with ``examples`` (run -> examples each prompt trained with) and a minimum of 16."""
    frame = question_frame(cells(idp=back(180), lora=back(0)))
    frame.loc[frame.recovery == "idp", "pool_choice"] = 1.0
    return analyse(frame, methods=Methods(METHODS, SIDES), settings=Settings(), seed=0, budget=BUDGET,
                   pool_examples=examples, min_examples=16)


@pytest.mark.slow
def test_a_pool_run_answered_by_undertrained_prompts_is_shown_but_excluded_from_the_decisions():
    # idp wins back 180 of 200 lost questions, but every test question was answered by prompt 1, which
    # trained with 3 examples: a random prefix, not a trained prompt. The decision leaves it out (idp not
    # tried: lora alone decides nothing about the input side), the accuracy table still shows it
    examples = {("m", "q", "idp.seed0"): [237, 3], ("m", "none", "idp.seed0"): [120, 120]}
    result = _pool_analysis(examples)
    v = one_verdict(result)
    idp = method(v, "idp")
    assert idp["status"] == "failed" and idp["decision"].startswith("excluded (undertrained prompts: 400 of 400")
    assert v["verdict"] != "recoverable from the input side" and "idp was excluded from the decisions" in v["reason"]
    assert "idp" in set(result["accuracy"].recovery)  # shown
    # trained enough (16 examples): decided as before
    examples[("m", "q", "idp.seed0")] = [224, 16]
    result = _pool_analysis(examples)
    assert one_verdict(result)["verdict"] == "recoverable from the input side"


def test_the_power_sentence_reads_a_decision_read_back_from_json():
    # verdict.json writes an infinite need as "inf"; the report reads the decision back from it
    from compress_recover.aggregate.stats.verdict import power_text

    power = {"target": 0.8, "fails": {"power_now": 0.43, "facts_needed": "inf", "seeds_needed": None},
             "recovers": {"power_now": 0.9, "facts_needed": 120, "seeds_needed": "inf"}}
    text = power_text(decision_record("pt", "input", "undecided", power=power))
    assert "a method that wins back nothing fails with probability 0.43 here (80% needs more facts than the " \
           "tasks have)" in text
    assert "one that wins back 0.8 recovers with probability 0.90 here (80% needs 120 facts or no number of " \
           "seeds alone)" in text


def test_a_reference_above_zero_and_below_the_threshold_is_partly_recovered_from_the_uncompressed_model():
    from compress_recover.aggregate.stats.verdict import reference_label

    ref = decision_record("eora", "parameters", "fails", ci=(0.09, 0.41), reference="the uncompressed weights",
                          estimates={"won_back": 0.27, "lost_questions": 141, "never_known_right": 0.05,
                                     "never_known": 261})
    assert reference_label([ref]).startswith("partly recovered from the uncompressed model at this rank")
    ref.ci_low = -0.1
    assert reference_label([ref]).startswith("not recovered from the uncompressed model at this rank")
    assert reference_label([decision_record("lora", "parameters", "fails")]) == ""


def test_an_excluded_control_run_is_still_shown_in_the_format_control():
    # the control run (idp on the uncompressed model) answered by an undertrained prompt too: the decisions
    # leave both runs out, and the descriptive tables still read every run's own draws
    result = _pool_analysis({("m", "q", "idp.seed0"): [237, 3], ("m", "none", "idp.seed0"): [237, 3]})
    assert "idp was excluded from the decisions" in one_verdict(result)["reason"]
    control = result["format_control"].set_index(["task", "recovery"]).loc[("all_knowledge", "idp")]
    assert control.control_acc == pytest.approx(CONTROL[("none", "idp", 0)].mean())
    assert control.ci_low <= control.control_gain <= control.ci_high
