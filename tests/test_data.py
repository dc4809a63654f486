"""The knowledge suite and the text stage's leak filter."""

from __future__ import annotations

import json

import pytest
import yaml

from compress_recover.data.facts import RELATIONS
from compress_recover.data.knowledge_task import build_knowledge_task, make_questions
from compress_recover.io import read_jsonl
from compress_recover.data.leaks import LeakFilter
from compress_recover.data.text import build_text

MIN_QUESTIONS = {"capitals": 150, "currencies": 150, "city_country": 150,
                 "element_symbol": 118, "element_name": 118}  # 118 elements exist


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
