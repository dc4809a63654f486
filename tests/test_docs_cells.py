"""Every number of the results tables of README.md and docs/results.md is the snapshot's value
of its own cell: the row's compression and remedy, the column's quantity.

tests/test_docs.py checks that the generated blocks are what the renderer makes of the
snapshot (stale) and that each table number is *some* value of the snapshot; neither
catches a renderer that puts a number in the wrong cell (a swapped column, another
compression's accuracy), and "some value" accepts most wrong two-decimal numbers (the
snapshot holds hundreds). Here each table is read back by its header and row labels and
each cell compared with the snapshot path it stands for, independently of
:mod:`compress_recover.aggregate.results_pages`. A table this module does not know fails,
so a new one is taught here. The end of the file tests ``python -m compress_recover.docs
snapshot`` (:func:`compress_recover.docs.main`), which writes the snapshot these pages are
rendered from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from compress_recover import docs

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "docs" / "results.md"]
NUMBER = re.compile(r"(?<![\w.])[−-]?\d[\d,]*(?:\.\d+)?(?![\w])")  # as test_docs.table_numbers reads a cell


@dataclass
class Table:
    heading: str  # the last "### " heading above it ("" for none)
    header: list[str]
    rows: list[list[str]]


def tables(text: str) -> list[Table]:
    """The markdown tables of ``text`` with the heading above each."""
    found, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("### "):
            heading = lines[i][4:].strip()
        if lines[i].startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            found.append(Table(heading, block[0], block[2:]))
            continue
        i += 1
    return found


def results_block(page: Path) -> str:
    """The generated results part of a page (where every results table is)."""
    text = page.read_text()
    return text.split(docs.marker("results"), 1)[1].split(docs.END, 1)[0]


def _names(label: str) -> list[str]:
    """The backticked names of a row label or header ("`gptq`, `lora`" -> [gptq, lora])."""
    return re.findall(r"`([^`]+)`", label)


def _value(text: str) -> float:
    return float(text.replace("−", "-").replace(",", ""))


def _at(node, *path):
    """``node`` at ``path``, None where a key is missing (the renderer writes "—" for it)."""
    for key in path:
        if node is None:
            return None
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _interval(record, value: str, bounds: str) -> list:
    return [_at(record, value), *(_at(record, bounds) or [None, None])]


# ---------------------------------------------------------------- what each column stands for

# column header -> (model, row names) -> the numbers the cell shows, in order (None: shown as "—")
Column = Callable[[dict, list[str]], list]


def _remedy(model, c, r):
    return _at(model, "remedies", c, r)


def _anatomy(model, c):
    return _at(model, "anatomy", c) or {}


def _note_or(record: dict | None, numbers: list) -> list:
    """A fit that left a note shows the note, else its numbers."""
    if record and record.get("note"):
        return [_value(n) for n in NUMBER.findall(record["note"])]
    return numbers


def _gradient(a: dict) -> list:
    g = a.get("confidence_gradient")
    if g is None:
        return []
    if g.get("coef") is None or g.get("null_coef") is None:
        return [_value(n) for n in NUMBER.findall(g.get("note") or "")]
    return [*_interval(g, "coef", "ci_95"), *_interval(g, "null_coef", "null_95")]


def _rates(a: dict, axis: str) -> list:
    return [q["rate"] for q in sorted((a.get("lost_rate") or {}).get(axis, []), key=lambda q: q["quartile"])]


def _distance_run(model, c, r, seed):
    runs = _at(model, "distance", c, r) or []
    (run,) = [d for d in runs if d["seed"] == seed]
    return run


# by the table's first header cell (and, for the compression x remedy tables, its heading)
PAIR_COLUMNS: dict[str, dict[str, Column]] = {
    "content free": {
        "n": lambda m, k: [_at(m, "content_free", *k, "n")],
        "accuracy": lambda m, k: [_at(m, "content_free", *k, "accuracy")],
        "content-free accuracy": lambda m, k: [_at(m, "content_free", *k, "content_free")],
        "above content-free [95%]": lambda m, k: _interval(_at(m, "content_free", *k), "above", "above_95"),
        "answered from the prior": lambda m, k: [_at(m, "content_free", *k, "from_prior")],
    },
    "decisions": {
        "side": lambda m, k: [],
        "extra parameters": lambda m, k: [_at(m, "extra_params", *k)],
        "raw F [95%]": lambda m, k: _interval(_remedy(m, *k), "raw_f", "raw_f_95"),
        "control gain": lambda m, k: [_at(_remedy(m, *k), "control_gain")],
        "F_c [95%]": lambda m, k: _interval(_remedy(m, *k), "controlled_f", "controlled_f_95")
        if _at(_remedy(m, *k), "controlled_f") is not None else [],
        "raw F [simultaneous]": lambda m, k: _interval(_remedy(m, *k), "raw_f", "raw_f_holm"),
        "Holm level": lambda m, k: [_at(_remedy(m, *k), "holm_level")],
        "won back / never known": lambda m, k: [_at(_remedy(m, *k), "won_back"),
                                                _at(_remedy(m, *k), "never_known_right")],
        "decision": lambda m, k: [],
    },
}
DISTANCE_COLUMNS: dict[str, Callable[[dict], list]] = {
    "mean KL": lambda d: [d["kl_mean"]],
    "KL p90": lambda d: [d["kl_p90"]],
    "lost / at risk": lambda d: [d["lost"], d["at_risk"]] if d["lost"] is not None else [],
    "AUC lost [95%]": lambda d: _interval(d, "auc_lost", "auc_95"),
}
ANATOMY_COLUMNS: dict[str, Callable[[dict], list]] = {
    "lost / at risk": lambda a: [_at(a, "loss_model", "events"), _at(a, "loss_model", "n")],
    "popularity log-odds [95%], p": lambda a: _note_or(a.get("loss_model"), [
        *_interval(a.get("loss_model"), "coef", "ci_95"), _at(a, "loss_model", "p_value")]),
    "confidence log-odds [95%] (secondary) · noise null [95%]": _gradient,
    "lost by popularity quartile (Q1 least)": lambda a: _rates(a, "popularity"),
    "lost by base-confidence quartile (Q1 least)": lambda a: _rates(a, "base confidence"),
    "most frequent wrong answers (lost questions)": lambda a: [w["lost_questions"]
                                                               for w in a.get("top_wrong_answers") or []],
}


def expected_cells(table: Table, model: dict) -> list[tuple[int, str, list]]:
    """(row index, column header, the numbers the snapshot says the cell shows) of every
    cell of ``table`` right of its row label. Raises KeyError for a table it does not know."""
    head, out = table.header, []
    if head[0] == "remedy (side)":  # README: remedies x (accuracy, raw F) per compression, then the base
        for i, row in enumerate(table.rows):
            remedy = "none" if row[0].startswith("none:") else _names(row[0])[0]
            for column in head[1:]:
                if column == "on the base (format control)":
                    values = [_at(model, "accuracy", "none", remedy)]
                elif column.endswith(" accuracy"):
                    values = [_at(model, "accuracy", _names(column)[0], remedy)]
                elif column.endswith(" raw F [simultaneous interval], decision"):
                    values = _interval(_remedy(model, _names(column)[0], remedy), "raw_f", "raw_f_holm") \
                        if _remedy(model, _names(column)[0], remedy) else []
                else:
                    raise KeyError(column)
                out.append((i, column, values))
        return out
    if head[0] == "compression" and all(_names(h) for h in head[1:]):  # compression x remedy, one quantity
        quantity = {"Pooled test accuracy": "accuracy", "Held-out word perplexity": "perplexity"}[
            table.heading.split(",")[0]]
        for i, row in enumerate(table.rows):
            out += [(i, h, [_at(model, quantity, _names(row[0])[0], _names(h)[0])]) for h in head[1:]]
        return out
    if head[0] == "compression" and head[1] == "verdict":  # the one-to-one verdicts: no numbers
        return [(i, h, []) for i in range(len(table.rows)) for h in head[1:]]
    if head[0] == "compression" and head[1] == "lost / at risk":
        for i, row in enumerate(table.rows):
            a = _anatomy(model, _names(row[0])[0])
            out += [(i, h, ANATOMY_COLUMNS[h](a)) for h in head[1:]]
        return out
    if head[0] == "compression, remedy" and head[1] == "seed":
        for i, row in enumerate(table.rows):
            seed = None if row[1] == "—" else int(row[1])
            run = _distance_run(model, *_names(row[0]), seed)
            out.append((i, "seed", [seed]))
            out += [(i, h, DISTANCE_COLUMNS[h](run)) for h in head[2:]]
        return out
    if head[0] == "compression, remedy":
        columns = PAIR_COLUMNS["content free" if head[1] == "n" else "decisions"]
        for i, row in enumerate(table.rows):
            out += [(i, h, columns[h](model, _names(row[0]))) for h in head[1:]]
        return out
    raise KeyError(" | ".join(head))


def written_matches(cell: str, expected: list) -> bool:
    """The numbers written in ``cell`` are ``expected`` (None left out: written "—"), each
    rounded at the precision it is written with, in order, none missing and none extra."""
    written = NUMBER.findall(cell)
    expected = [v for v in expected if v is not None]
    if len(written) != len(expected):
        return False
    for text, value in zip(written, expected, strict=True):
        decimals = len(text.split(".", 1)[1]) if "." in text else 0
        if not float(value).is_integer() and decimals == 0:
            return False  # a fraction written as a whole number
        if abs(_value(text) - value) > 0.5 * 10 ** -decimals + 1e-9:
            return False
    return True


def wrong_cells(text: str, snapshot: dict) -> list[str]:
    """Every cell of the tables of ``text`` whose numbers are not its snapshot cell's, and
    every table this module does not know."""
    models = snapshot["models"]
    readme_tables = iter(models)  # the README's tables: one per model, in the snapshot's order
    problems = []
    for table in tables(text):
        names = _names(table.heading)
        name = names[-1] if names else next(readme_tables)
        try:
            cells = expected_cells(table, models[name])
        except (KeyError, ValueError) as err:
            problems.append(f"a table this check does not know ({table.heading or 'no heading'}): {err}")
            continue
        for i, column, expected in cells:
            row = dict(zip(table.header, table.rows[i], strict=True))
            if not written_matches(row[column], expected):
                problems.append(f"{table.heading or 'README'}: row {table.rows[i][0]!r}, column {column!r}: "
                                f"{row[column]!r} is not {expected}")
    return problems


# ---------------------------------------------------------------- the pages

@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_number_is_its_own_snapshot_cell(page):
    text = results_block(page)
    checked = tables(text)
    assert sum(len(t.rows) for t in checked) >= 5, f"{page.name}: no results table found"
    assert wrong_cells(text, docs.read_snapshot()) == []


def _swapped(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("page,old,new", [
    # the README's lora accuracy on gptq written as its idp accuracy (0.444, a snapshot value)
    (PAGES[0], "| `lora` (parameters, trained) | 0.487 |", "| `lora` (parameters, trained) | 0.444 |"),
    # one bound of an interval off by 0.01
    (PAGES[0], "0.40 [0.08, 0.68] undecided", "0.40 [0.08, 0.67] undecided"),
    # the perplexity table's two compressions' base values swapped
    (PAGES[1], "| `gptq-w3g64` | 201.5 | 104.2 |", "| `gptq-w3g64` | 191.9 | 104.2 |"),
    # a decision's Holm level at another remedy's
    (PAGES[1], "| 0.0500 | 0.27 / 0.06 | fails (reference) |", "| 0.0083 | 0.27 / 0.06 | fails (reference) |"),
    # a distance row's lost count
    (PAGES[1], "| `gptq-w3g64`, `none` | — | 1.375 | 3.536 | 137 / 405 |",
     "| `gptq-w3g64`, `none` | — | 1.375 | 3.536 | 126 / 405 |"),
], ids=["readme-accuracy", "readme-interval", "perplexity", "holm-level", "distance-count"])
def test_a_wrong_number_in_a_copy_of_a_page_is_caught(page, old, new, tmp_path):
    """A number changed in a copy of a page (never the page itself), each to a value the
    snapshot holds elsewhere or one rounding step off: the old "somewhere in the snapshot"
    check passed every one of these."""
    from test_docs import in_snapshot

    snapshot = docs.read_snapshot()
    copy = tmp_path / page.name
    copy.write_text(_swapped(page.read_text(), old, new))
    text = results_block(copy)
    assert all(in_snapshot(n, snapshot) for n in NUMBER.findall(new))  # the weak check accepts it
    problems = wrong_cells(text, snapshot)
    assert len(problems) == 1, problems


def test_an_unknown_table_is_reported_not_skipped():
    text = "### Something new, `smollm2-135m`\n\n| compression | mystery |\n|---|---|\n| `none` | 0.5 |\n"
    (problem,) = wrong_cells(text, docs.read_snapshot())
    assert "does not know" in problem


# ---------------------------------------------------------------- python -m compress_recover.docs snapshot

def test_the_docs_snapshot_command_writes_the_records_snapshot_that_renders_its_own_cells(tmp_path, capsys):
    """``python -m compress_recover.docs snapshot RESULTS --commit ... --aggregate-commit ...``
    writes the snapshot of a saved record (the same JSON, byte for byte, as the committed
    snapshot's layout: indent 2, UTF-8, newline-terminated), with both commits; the pages
    rendered from the written file pass the cell check, and a changed number in them fails it."""
    from test_results_docs import EXPECTED, _record, _summary

    from compress_recover.aggregate.results import analysis_path, summary_path
    from compress_recover.aggregate.results_pages import render_results_doc, render_results_readme

    results = tmp_path / "results"
    _record().save(analysis_path(results))
    _summary(summary_path(results))
    (results / "data" / "text").mkdir(parents=True)
    (results / "data" / "text" / "manifest.json").write_text(json.dumps({"seed": 7}))
    out = tmp_path / "nested" / "snapshot.json"
    assert docs.main(["snapshot", str(results), "--commit", "abc1234", "--aggregate-commit", "def5678",
                      "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text() == json.dumps(EXPECTED, indent=2, ensure_ascii=False) + "\n"
    written = docs.read_snapshot(out)
    assert written["commit"] == "abc1234" and written["aggregate_commit"] == "def5678"
    for page in (render_results_doc(written), render_results_readme(written)):
        assert tables(page) and wrong_cells(page, written) == []
    doc = render_results_doc(written)
    row = next(line for line in doc.splitlines() if line.startswith("| `c1`, `lora` |") and "parameters" in line)
    assert wrong_cells(doc.replace(row, row.replace(" | 0.", " | 0.9", 1)), written) != []
    # without --aggregate-commit the snapshot has none
    assert docs.main(["snapshot", str(results), "--commit", "abc1234", "--out", str(out)]) == 0
    assert docs.read_snapshot(out).get("aggregate_commit") is None
