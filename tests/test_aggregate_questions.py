"""aggregate.stats.questions: the per-question table read from lm-eval samples (the right choice's
probability, seeds, prompt pools, group tasks, the pooled task)."""

from __future__ import annotations

import numpy as np
import pytest

from compress_recover.aggregate.stats.questions import (ALL_KNOWLEDGE, choice_probability, choice_texts, question_record,
                                                  question_table, with_pooled_task)
from samples import CHOICES, METHODS, sample_row, write_samples


def softmax(x):
    e = np.exp(np.asarray(x, dtype=float) - np.max(x))
    return e / e.sum()


def test_p_right_is_the_right_choices_softmax_probability_unnormalised_and_per_character():
    row = sample_row(0, [-2.0, -3.0, -1.5, -4.0], target=0)   # Vilnius (7 chars) beats Paris (5 chars)
    r = question_record(row)
    e = np.exp([-2.0, -3.0, -1.5, -4.0])
    assert r["correct"] is False and r["p_right"] == pytest.approx(e[0] / e.sum())
    # per character: Paris -0.4, Rome -0.75, Vilnius -0.2143, Oslo -1.0
    norm = np.exp([-2.0 / 5, -3.0 / 4, -1.5 / 7, -4.0 / 4])
    assert r["p_right_norm"] == pytest.approx(norm[0] / norm.sum())
    assert choice_texts(row) == CHOICES  # the target delimiter is not counted, as in lm-eval's acc_norm
    # right iff the right choice has the largest probability, as lm-eval's acc and acc_norm;
    # with four choices that is not p > 0.5: p > 0.5 implies right, right does not imply p > 0.5
    rng = np.random.default_rng(0)
    right_below_half = 0
    for i in range(300):
        scores = list(rng.normal(-5, 2, 4))
        target = int(rng.integers(4))
        r = question_record(sample_row(i, scores, target=target))
        p, p_norm = softmax(scores), softmax([s / len(c) for s, c in zip(scores, CHOICES, strict=True)])
        assert r["p_right"] == pytest.approx(p[target]) and r["p_right_norm"] == pytest.approx(p_norm[target])
        assert r["correct"] == (p[target] == p.max()) == bool(sample_row(i, scores, target=target)["acc"])
        assert (p_norm[target] == p_norm.max()) == bool(sample_row(i, scores, target=target)["acc_norm"])
        assert r["p_right"] <= 0.5 or r["correct"]
        right_below_half += r["correct"] and r["p_right"] < 0.5
    assert right_below_half > 10


def test_choice_probability_is_scale_free_where_a_margin_in_nats_is_not():
    # sharpening every log-likelihood by a factor grows the mean margin in nats without bound,
    # while the mean probability of the right choice stays in [0, 1] and tends to the accuracy
    rng = np.random.default_rng(1)
    scores = rng.normal(-5, 1, (400, 4))
    scores[:, 0] += 1.0   # the right choice is favoured: the accuracy is well above chance

    def nats(s):   # the old margin: right choice (0) minus the best wrong one
        return np.mean(s[:, 0] - s[:, 1:].max(axis=1))

    def p_mean(s):
        return np.mean([choice_probability(q, [0]) for q in s])

    accuracy = np.mean(scores.argmax(axis=1) == 0)
    assert nats(50 * scores) == pytest.approx(50 * nats(scores))
    assert 0 <= p_mean(50 * scores) <= 1 and p_mean(50 * scores) == pytest.approx(accuracy, abs=0.01)
    assert abs(p_mean(scores) - accuracy) > 0.05   # at the model's own scale they differ
    # several right choices: their probabilities add; a question without a wrong choice has none
    assert choice_probability([0.0, 0.0, np.log(2.0)], [0, 1]) == pytest.approx(0.5)
    assert np.isnan(choice_probability([-1.0, -2.0], [0, 1]))
    assert choice_probability([-1000.0, -1001.0], [0]) == pytest.approx(1 / (1 + np.exp(-1)))   # no underflow


def test_p_right_reads_raw_resps_text_targets_and_the_tracker_layout():
    row = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target=1)
    del row["filtered_resps"]
    p = softmax([-1.0, -2.0, -3.0, -4.0])
    assert question_record(row)["p_right"] == pytest.approx(p[1])
    row = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target="Rome")
    assert question_record(row)["p_right"] == pytest.approx(p[1])
    tracker = sample_row(3, [-1.0, -2.0, -3.0, -4.0], target="1")
    tracker["arguments"] = {f"gen_args_{i}": {"arg_0": a[0], "arg_1": a[1]}
                            for i, a in enumerate(tracker["arguments"])}
    assert question_record(tracker)["p_right_norm"] == pytest.approx(softmax([-1 / 5, -2 / 4, -3 / 7, -4 / 4])[1])


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


# --------------------------------------------------------------------------- facts

def test_a_relation_and_its_inverse_share_their_facts_and_a_capital_asked_as_a_city_shares_one():
    from compress_recover.data.facts import RELATIONS, fact_key, question_fact
    from compress_recover.data.knowledge_task import make_questions

    def facts(task):
        return {question_fact(q, task, q["id"]) for q in make_questions(RELATIONS[task], num_choices=4, seed=0)}

    symbol, name = facts("element_symbol"), facts("element_name")
    assert len(symbol) == 118 and symbol == name  # Iron -> Fe and Fe -> Iron: one fact each
    assert fact_key("Iron", "Fe") == fact_key("fe", " IRON ") == "fe | iron" in symbol
    capitals, cities = facts("capitals"), facts("city_country")
    assert fact_key("Afghanistan", "Kabul") in capitals & cities  # the capital Kabul, the city Kabul
    assert 40 < len(capitals & cities) < len(capitals)
    assert not facts("currencies") & capitals  # a currency shares answers, not facts


def test_a_custom_task_names_its_own_facts_else_each_question_is_its_own():
    from compress_recover.data.facts import question_fact

    assert question_fact({"fact": "paris-france", "subject": "x", "answer_text": "y"}, "mine", "3") == "paris-france"
    assert question_fact({"question": "2+2?"}, "mine", "3") == "mine:3"
    assert question_fact(None, "mine", "4") == question_fact({"fact": " "}, "mine", "4") == "mine:4"
    assert question_fact({"subject": "Oslo", "answer_text": "Norway"}, "cities", "0") == "norway | oslo"


def test_the_question_table_carries_facts_and_splits_whole_facts(tmp_path):
    def row(i, subject, answer):
        r = sample_row(i, [0, -1, -1, -1])
        r["doc"].update(subject=subject, answer_text=answer)
        return r

    symbols = [("Iron", "Fe"), ("Helium", "He"), ("Gold", "Au"), ("Tin", "Sn")]
    tasks = {"element_symbol": [row(i, s, a) for i, (s, a) in enumerate(symbols)],
             "element_name": [row(i, a, s) for i, (s, a) in enumerate(reversed(symbols))],
             "custom": [{**sample_row(i, [0, -1, -1, -1]), "doc": {"fact": f"c{i // 2}"}} for i in range(4)],
             "plain": [sample_row(i, [0, -1, -1, -1]) for i in range(3)]}
    entries = [({"model": "m", "compression": "none", "recovery": "none", "task": t},
                write_samples(tmp_path / f"{t}.jsonl", rows)) for t, rows in tasks.items()]
    table = question_table(entries, split={"dev_fraction": 0.5, "seed": 1})
    facts = table.set_index(["task", "doc_id"]).fact
    assert facts[("element_symbol", "0")] == facts[("element_name", "3")] == "fe | iron"
    assert list(table[table.task == "custom"].fact) == ["c0", "c0", "c1", "c1"]
    assert list(table[table.task == "plain"].fact) == ["plain:0", "plain:1", "plain:2"]
    assert (table.groupby("fact").split.nunique() == 1).all()  # a fact is dev or test, never both
    assert set(table[table.task == "element_symbol"].split) == {"dev", "test"}
    pooled = with_pooled_task(table, ["element_symbol", "element_name", "custom"])
    pool = pooled[pooled.task == ALL_KNOWLEDGE]
    assert pool.fact.nunique() == 6 and (pool.groupby("fact").size() == 2).all()  # the pool keeps the facts

    from compress_recover.aggregate.stats.grid import build_grids

    grid = build_grids(pooled)[("m", ALL_KNOWLEDGE)]
    assert len(set(grid.question_facts)) == 6
    assert sorted(set(grid.question_tasks)) == ["custom", "element_name", "element_symbol"]
    held = question_table(entries, split={"dev_fraction": 0.5, "seed": 1, "held_out_tasks": ["element_name"]})
    assert set(held[held.task.str.startswith("element")].split) == {"test"}  # its inverse is held out too
