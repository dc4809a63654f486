"""The knowledge suite and the text stage's leak filter."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import yaml

from compress_recover.data.facts import RELATIONS, question_fact
from compress_recover.data.knowledge_task import (DEFAULT_MAX_ANSWER_PRESENCE, MIN_APPEARANCES, answer_balance,
                                                 answer_cap, balanced_distractors, balanced_questions,
                                                 build_knowledge_task, frequency_rule_accuracy, make_questions)
from compress_recover.data.split import DEV, TEST, question_splits, split_settings
from compress_recover.io import read_jsonl
from compress_recover.data.leaks import LeakFilter
from compress_recover.data.text import build_text

from conftest import REPO

MIN_QUESTIONS = {"capitals": 150, "currencies": 150, "city_country": 150,
                 "element_symbol": 118, "element_name": 118}  # 118 elements exist


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(RELATIONS))
def test_questions_are_real_well_formed_and_deterministic(task):
    relation = RELATIONS[task]
    questions = make_questions(relation, num_choices=4, seed=0)
    assert len(questions) >= MIN_QUESTIONS[task]
    truth = {}
    for f in relation.load():
        truth.setdefault(f.subject, f.answer)
    answers = {f.answer for f in relation.load()}
    for q in questions:
        assert len(q["choices"]) == 4 and len(set(q["choices"])) == 4
        assert q["choices"][q["answer"]] == q["answer_text"] == truth[q["subject"]]
        # distractors come from the same relation
        assert set(q["choices"]) <= answers
        assert q["subject"] in q["question"]
    assert questions == make_questions(relation, num_choices=4, seed=0)
    assert questions != make_questions(relation, num_choices=4, seed=1)
    # the correct answer is not always in the same position
    assert len({q["answer"] for q in questions}) == 4


def test_known_facts_are_right():
    capitals = {q["subject"]: q["answer_text"] for q in make_questions(RELATIONS["capitals"], num_choices=4, seed=0)}
    assert capitals["France"] == "Paris" and capitals["Japan"] == "Tokyo"
    symbols = {q["subject"]: q["answer_text"] for q in
               make_questions(RELATIONS["element_symbol"], num_choices=4, seed=0)}
    assert symbols["Iron"] == "Fe" and symbols["Helium"] == "He"


# balanced choices (issue 34): no subject-blind rule beats chance

BALANCE_CHOICES = (2, 4, 5)


@pytest.fixture(scope="module")
def built_questions():
    """num_choices -> task -> (questions, balance record), every relation, the default cap."""
    return {k: {task: balanced_questions(relation, num_choices=k, seed=0) for task, relation in RELATIONS.items()}
            for k in BALANCE_CHOICES}


@pytest.mark.parametrize("k", BALANCE_CHOICES)
@pytest.mark.parametrize("task", sorted(RELATIONS))
def test_every_answer_is_right_in_one_in_num_choices_of_its_questions(built_questions, task, k):
    questions, record = built_questions[k][task]
    relation_answers = {f.answer for f in RELATIONS[task].load()}
    appears, right = Counter(), Counter()
    for q in questions:
        choices = q["choices"]
        assert len(choices) == k and len(set(choices)) == k
        assert choices[q["answer"]] == q["answer_text"] and set(choices) <= relation_answers
        appears.update(choices)
        right[q["answer_text"]] += 1
    # distractors come from the kept questions' right answers only, each exactly (k - 1) times per right
    assert record["spare_distractors"] == 0 and set(appears) == set(right)
    assert all(appears[a] == k * right[a] for a in appears), task
    frequent = [a for a in appears if appears[a] >= MIN_APPEARANCES]
    assert record["max_right_share"] == (max(right[a] / appears[a] for a in frequent) if frequent else None)
    assert all(right[a] / appears[a] <= 1 / k + 1e-12 for a in frequent)  # chance; uniform distractors: up to 0.92
    # the cap: no answer right in more questions than it allows, and the record adds up
    assert max(right.values()) <= record["answer_cap"] <= answer_cap(len(questions), num_choices=k,
                                                                         max_answer_presence=DEFAULT_MAX_ANSWER_PRESENCE)
    assert record["questions"] == len(questions) == record["candidates"] - record["removed_by_cap"]
    # the right answer's position is uniform: every position within 4 sd of its expected count
    n, p = len(questions), 1 / k
    positions = Counter(q["answer"] for q in questions)
    assert all(abs(positions[i] - n * p) <= 4 * (n * p * (1 - p)) ** 0.5 for i in range(k)), positions


def test_the_cap_drops_only_questions_of_the_skewed_answers(built_questions):
    for task, (questions, record) in built_questions[4].items():
        counts = Counter(f.answer for f in {f.subject: f for f in RELATIONS[task].load()}.values())
        removed = sum(max(0, n - record["answer_cap"]) for n in counts.values())
        assert record["removed_by_cap"] <= removed  # the subjects' first facts; ties in the data aside
    assert built_questions[4]["city_country"][1]["removed_by_cap"] > 0
    assert built_questions[4]["capitals"][1]["removed_by_cap"] == 0


def _dev_test(tasks: dict[str, list[dict]]):
    """task -> (dev questions, test questions) by the project's split (data.split's defaults)."""
    facts = {(t, str(i)): question_fact(q, t, str(i)) for t, qs in tasks.items() for i, q in enumerate(qs)}
    splits = question_splits({t: [str(i) for i in range(len(qs))] for t, qs in tasks.items()}, facts=facts,
                             **split_settings({}))
    return {t: ([q for i, q in enumerate(qs) if splits[(t, str(i))] == DEV],
                [q for i, q in enumerate(qs) if splits[(t, str(i))] == TEST]) for t, qs in tasks.items()}


@pytest.mark.parametrize("k", BALANCE_CHOICES)
def test_the_most_frequent_dev_answer_does_not_beat_chance_on_test(built_questions, k):
    """Fitted on the dev questions, scored on the test ones: at chance where answers repeat
    (uniform distractors gave 0.63 on currencies and 0.56 on city_country with 4 choices), never
    above it (with one fact per answer a dev answer is never a test answer: below chance)."""
    chance = 1 / k
    for task, (dev, test) in _dev_test({t: qs for t, (qs, _) in built_questions[k].items()}).items():
        accuracy = frequency_rule_accuracy(dev, test)
        assert accuracy <= chance + 0.05, (task, accuracy)
        if task in ("currencies", "city_country"):
            assert abs(accuracy - chance) <= 0.05, (task, accuracy)


def test_the_frequency_rule_and_the_balance_read_what_they_name():
    def q(choices, answer):
        return {"choices": choices, "answer": choices.index(answer)}

    dev = [q(["a", "b"], "a"), q(["a", "c"], "a"), q(["b", "c"], "b")]
    # "a" (2 dev rights) beats "b" (1): right; "c" (0) loses to "b": wrong; "d"/"e" (0, 0) tie: half
    test = [q(["b", "a"], "a"), q(["c", "b"], "c"), q(["d", "e"], "d")]
    assert frequency_rule_accuracy(dev, test) == pytest.approx(1.5 / 3)
    assert frequency_rule_accuracy(dev, []) is None
    balance = answer_balance(dev + test, min_appearances=3)
    # a: right in all 3 of its appearances, b: 1 of 4, c: 1 of 3 (d and e appear once)
    assert balance == {"questions": 6, "answers": 4, "frequent_answers": 3, "max_right_share": 1.0}
    assert answer_balance(dev, min_appearances=10)["max_right_share"] is None


def test_the_cap_follows_the_kept_questions_and_max_questions_keeps_its_number():
    relation = RELATIONS["city_country"]
    questions, record = balanced_questions(relation, num_choices=4, seed=0, max_questions=40)
    assert len(questions) == 40 and record["candidates"] == 40
    assert record["answer_cap"] == answer_cap(40, num_choices=4, max_answer_presence=DEFAULT_MAX_ANSWER_PRESENCE)
    right = Counter(q["answer_text"] for q in questions)
    assert max(right.values()) <= record["answer_cap"]
    assert {c for q in questions for c in q["choices"]} == set(right)  # no answer of a dropped question
    assert questions == balanced_questions(relation, num_choices=4, seed=0, max_questions=40)[0]
    loose = balanced_questions(relation, num_choices=4, seed=0, max_answer_presence=1.0)[1]
    assert loose["answer_cap"] > record["answer_cap"] and loose["removed_by_cap"] < \
        balanced_questions(relation, num_choices=4, seed=0)[1]["removed_by_cap"]


def test_an_answer_presence_outside_its_range_is_refused_by_name():
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="data.max_answer_presence"):
            make_questions(RELATIONS["capitals"], num_choices=4, seed=0, max_answer_presence=bad)


def test_too_few_answers_to_balance_fill_from_the_relation_and_say_so():
    rng = random.Random(0)
    rights = ["a", "a", "b"]  # 3 distractors a question, 2 kept answers: balance is infeasible
    out, spare = balanced_distractors(rights, 3, rng, spare=["a", "b", "c", "d", "e"])
    assert spare > 0
    for right, others in zip(rights, out, strict=True):
        assert len(others) == 3 == len(set(others)) and right not in others


def test_the_default_cap_is_the_schemas():
    schema = yaml.safe_load((REPO / "compress_recover" / "schema" / "config.schema.yaml").read_text())
    data = schema["properties"]["data"]["properties"]
    assert data["max_answer_presence"]["default"] == DEFAULT_MAX_ANSWER_PRESENCE


@pytest.mark.slow
def test_task_folder_is_a_loadable_lm_eval_task(tmp_path):
    out = tmp_path / "capitals"
    manifest = build_knowledge_task(task="capitals", out_dir=str(out), num_choices=4, seed=0, max_questions=12)
    assert manifest["questions"] == 12
    config = yaml.safe_load((out / "capitals.yaml").read_text())
    assert config["task"] == "capitals" and config["output_type"] == "multiple_choice"
    assert json.loads((out / "manifest.json").read_text())["chance_accuracy"] == 0.25

    from lm_eval.tasks import TaskManager, get_task_dict

    task = get_task_dict(["capitals"], TaskManager(include_path=str(out)))["capitals"]
    docs = list(task.test_docs())
    assert len(docs) == 12
    assert task.doc_to_choice(docs[0])[task.doc_to_target(docs[0])] == docs[0]["answer_text"]


@pytest.mark.slow
def test_suite_names_do_not_shadow_lm_eval_builtins():
    from lm_eval.tasks import TaskManager

    assert not set(RELATIONS) & set(TaskManager().all_tasks)


def test_leak_filter_catches_subject_with_answer_only():
    leaks = LeakFilter([("Australia", "Canberra"), ("Helium", "He"), ("Indium", "In")])
    assert leaks.leaks("Parliament in Canberra, the capital of Australia, sat late.") == [("Australia", "Canberra")]
    assert leaks.leaks("australia's capital CANBERRA") == [("Australia", "Canberra")]
    assert leaks.leaks("Canberra hosted the talks.") == []
    assert leaks.leaks("Australia won the match.") == []
    # short symbols match case-sensitively: the word "in" is not the symbol In
    assert leaks.leaks("Indium is used in screens.") == []
    assert leaks.leaks("Helium (He) is light.") == [("Helium", "He")]
    # whole words only: "Canberran" is not "Canberra"
    assert leaks.leaks("An Australia-based Canberran.") == []


def test_build_text_drops_leaks_and_splits_disjointly(tmp_path):
    task_dir = tmp_path / "capitals"
    build_knowledge_task(task="capitals", out_dir=str(task_dir), num_choices=4, seed=0)
    src = tmp_path / "corpus.txt"
    clean = [f"Passage {i} tells of the weather, the river and the harvest in a small town." for i in range(20)]
    leaky = ["The prime minister flew from Canberra to Perth, and Australia watched the news closely."]
    src.write_text("\n\n".join(clean + leaky))
    report = build_text(corpus="file", path=str(src), task_dirs=[str(task_dir)], out_dir=str(tmp_path / "text"),
                        heldout_fraction=0.25, min_chars=20, seed=0)
    assert report["dropped_leaks"] == 1 and report["passages_total"] == 21
    train = read_jsonl(tmp_path / "text" / "train.jsonl")
    heldout = read_jsonl(tmp_path / "text" / "heldout.jsonl")
    assert len(train) == 15 and len(heldout) == 5
    assert not {r["id"] for r in train} & {r["id"] for r in heldout}
    assert all("Canberra" not in r["text"] for r in train + heldout)


def test_build_text_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.text.path"):
        build_text(corpus="file", path=str(tmp_path / "missing.txt"), task_dirs=[], out_dir=str(tmp_path / "t"),
                   heldout_fraction=0.1, min_chars=1, seed=0)
    assert not (tmp_path / "t").exists()


def test_a_demonym_names_its_country_for_the_filter_and_for_the_analysis_check():
    from compress_recover.aggregate.stats.leak_check import RegexLeakMatcher
    from compress_recover.data.facts import country_demonyms
    from compress_recover.data.leaks import LeakFilter

    demonyms = country_demonyms()
    assert "Australian" in demonyms["Australia"] and len(demonyms) > 150
    pairs = [("Australia", "Canberra"), ("Guinea-Bissau", "Bissau"), ("Helium", "He")]
    texts = {
        "The Australian capital, Canberra, was quiet.": [("Australia", "Canberra")],
        "australians love canberra": [],  # a plural is another word
        "Canberra is a planned city.": [],
        "Flights from Guinea Bissau to Bissau": [("Guinea-Bissau", "Bissau")],
        "helium is written he": [],  # symbols match case-sensitively
        "Helium is written He": [("Helium", "He")],
    }
    primary, independent = LeakFilter(pairs), RegexLeakMatcher(pairs, demonyms)
    for text, expected in texts.items():
        assert primary.leaks(text) == expected, text
        assert independent.leaks(text) == expected, text


def test_the_analysis_catches_a_leak_the_text_filter_let_through(tmp_path):
    """The analysis checks the kept text with its own matcher: a passage written into the
    text after filtering (or missed by a broken filter) stops the analysis, naming it."""
    import json

    from compress_recover.aggregate.stats.leak_check import LeakError, check_leaks

    task = tmp_path / "capitals"
    task.mkdir()
    (task / "capitals.jsonl").write_text(json.dumps({"subject": "Australia", "answer_text": "Canberra"}) + "\n")
    text = tmp_path / "text"
    text.mkdir()
    (text / "train.jsonl").write_text(json.dumps({"id": 3, "text": "Australian officials met in Canberra."}) + "\n")
    (text / "heldout.jsonl").write_text("")
    (text / "leak_report.json").write_text(json.dumps({"dropped_leaks": 0, "passages_total": 1, "train_passages": 1,
                                                       "heldout_passages": 0}))
    with pytest.raises(LeakError, match=r"1 passage\(s\) of .*text name a question's subject and answer"):
        check_leaks(text, [str(task)])
