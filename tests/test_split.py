"""The dev/test split of the knowledge questions: disjoint and covering, stratified per task,
deterministic, stable when tasks are added, changed by its seed, held-out tasks all test."""

from __future__ import annotations

import hashlib

import pytest

from compress_recover.data.split import question_splits, split_counts, split_settings

QUESTIONS = {"capitals": [str(i) for i in range(40)], "currencies": [str(i) for i in range(13)],
             "element_symbol": [f"q{i}" for i in range(7)]}


def dev_of(splits: dict, task: str) -> set[str]:
    return {d for (t, d), s in splits.items() if t == task and s == "dev"}


def test_every_question_gets_exactly_one_split():
    splits = question_splits(QUESTIONS, dev_fraction=0.25, seed=0)
    assert set(splits) == {(t, d) for t, ids in QUESTIONS.items() for d in ids}
    assert set(splits.values()) == {"dev", "test"}


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_each_task_puts_round_fraction_times_n_in_dev(fraction):
    splits = question_splits(QUESTIONS, dev_fraction=fraction, seed=3)
    counts = split_counts(splits)
    for task, ids in QUESTIONS.items():
        assert counts[task] == {"dev": round(fraction * len(ids)), "test": len(ids) - round(fraction * len(ids))}


def test_dev_is_the_lowest_sha256_ranks_of_seed_task_and_id():
    splits = question_splits({"capitals": QUESTIONS["capitals"]}, dev_fraction=0.25, seed=7)
    ranked = sorted(QUESTIONS["capitals"], key=lambda d: hashlib.sha256(f"7:capitals:{d}".encode()).hexdigest())
    assert dev_of(splits, "capitals") == set(ranked[:10])


def test_the_split_is_deterministic_and_stable_when_a_task_is_added():
    one = question_splits({"capitals": QUESTIONS["capitals"]}, dev_fraction=0.25, seed=0)
    again = question_splits({"capitals": list(reversed(QUESTIONS["capitals"]))}, dev_fraction=0.25, seed=0)
    more = question_splits(QUESTIONS, dev_fraction=0.25, seed=0)
    assert one == again
    assert {k: v for k, v in more.items() if k[0] == "capitals"} == one


def test_the_seed_changes_the_split():
    a = question_splits(QUESTIONS, dev_fraction=0.25, seed=0)
    b = question_splits(QUESTIONS, dev_fraction=0.25, seed=1)
    assert dev_of(a, "capitals") != dev_of(b, "capitals")
    assert len(dev_of(a, "capitals")) == len(dev_of(b, "capitals")) == 10


def test_held_out_tasks_are_all_test_and_the_others_keep_their_split():
    plain = question_splits(QUESTIONS, dev_fraction=0.5, seed=0)
    held = question_splits(QUESTIONS, dev_fraction=0.5, seed=0, held_out_tasks=["currencies"])
    assert split_counts(held)["currencies"] == {"dev": 0, "test": 13}
    assert {k: v for k, v in held.items() if k[0] != "currencies"} == \
        {k: v for k, v in plain.items() if k[0] != "currencies"}


def test_dev_fraction_zero_puts_everything_in_test():
    splits = question_splits(QUESTIONS, dev_fraction=0.0, seed=0)
    assert set(splits.values()) == {"test"}
    assert split_settings(None)["dev_fraction"] == 0.0  # no split configured: no dev set


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match=r"held_out_tasks: \['capital'\]"):
        question_splits(QUESTIONS, held_out_tasks=["capital"])
    with pytest.raises(ValueError, match="dev_fraction must be in"):
        question_splits(QUESTIONS, dev_fraction=1.0)
    with pytest.raises(ValueError, match="unknown key"):
        split_settings({"dev_share": 0.2})
    assert split_settings({"seed": 4}) == {"dev_fraction": 0.25, "seed": 4, "held_out_tasks": []}


# --------------------------------------------------------------------------- whole facts

# a relation and its exact inverse (the same 40 facts), a task sharing 10 facts with it, one sharing none
FACT_QUESTIONS = {"symbol": [f"s{i}" for i in range(40)], "name": [f"n{i}" for i in range(40)],
                  "cities": [f"c{i}" for i in range(30)], "currencies": [f"q{i}" for i in range(20)]}
FACTS = {**{("symbol", f"s{i}"): f"element {i}" for i in range(40)},
         **{("name", f"n{i}"): f"element {39 - i}" for i in range(40)},
         **{("cities", f"c{i}"): f"element {i}" if i < 10 else f"city {i}" for i in range(30)}}


def fact_splits(**kw) -> dict:
    return question_splits(FACT_QUESTIONS, **{"dev_fraction": 0.25, "seed": 0, "facts": FACTS, **kw})


def test_the_split_puts_each_fact_in_one_split_whichever_tasks_ask_it():
    for seed in range(20):
        splits = fact_splits(seed=seed)
        by_fact: dict[str, set] = {}
        for key, split in splits.items():
            by_fact.setdefault(FACTS.get(key, f"{key[0]}:{key[1]}"), set()).add(split)
        assert all(len(s) == 1 for s in by_fact.values())
        counts = split_counts(splits)
        assert counts["symbol"]["dev"] == counts["name"]["dev"] <= round(0.25 * 40)
        assert counts["currencies"]["dev"] == 5  # shares nothing: exactly stratified
        assert 0 < counts["cities"]["dev"] <= round(0.25 * 30)  # test wins a disagreement on a shared fact
        # an exact inverse alone ranks the same facts the same way: both keep round(0.25 * 40),
        # the facts ranked lowest by the sha256 of "<seed>:<fact>"
        pair = question_splits({t: FACT_QUESTIONS[t] for t in ("symbol", "name")}, dev_fraction=0.25, seed=seed,
                               facts=FACTS)
        ranked = sorted((f"element {i}" for i in range(40)),
                        key=lambda f: hashlib.sha256(f"{seed}:{f}".encode()).hexdigest())
        for task in ("symbol", "name"):
            assert {FACTS[k] for k, s in pair.items() if k[0] == task and s == "dev"} == set(ranked[:10])


def test_adding_a_task_moves_only_the_facts_it_shares_and_only_to_test():
    alone = question_splits({"symbol": FACT_QUESTIONS["symbol"]}, dev_fraction=0.25, seed=2, facts=FACTS)
    both = question_splits({t: FACT_QUESTIONS[t] for t in ("symbol", "cities")}, dev_fraction=0.25, seed=2,
                           facts=FACTS)
    moved = {k for k in alone if alone[k] != both[k]}
    assert all(alone[k] == "dev" and both[k] == "test" and FACTS[k] in {f"element {i}" for i in range(10)}
               for k in moved)


def test_a_held_out_task_holds_out_every_question_of_its_facts():
    splits = fact_splits(held_out_tasks=["name"])
    counts = split_counts(splits)
    assert counts["name"] == counts["symbol"] == {"dev": 0, "test": 40}  # its inverse is held out too
    assert all(splits[("cities", f"c{i}")] == "test" for i in range(10))  # and so is every shared fact
    plain = fact_splits()
    assert {k: v for k, v in splits.items() if k[0] == "currencies" or k in {("cities", f"c{i}") for i in range(10, 30)}} \
        == {k: v for k, v in plain.items() if k[0] == "currencies" or k in {("cities", f"c{i}") for i in range(10, 30)}}
