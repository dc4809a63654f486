"""The results record (compress_recover/aggregate/results.py): save and load give back the
same bytes, from_dict inverts as_dict, a record of another schema is refused, no reader
opens an analysis file by name, and the two recipes of docs/extending.md ("a new report
section", "a new statistic in the verdict") work as written, followed on a toy."""

from __future__ import annotations

import ast
import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest

from compress_recover.aggregate import results as record
from compress_recover.aggregate.results import RECORD_FILE, TABLE_SPECS, VERDICT_FILE, Results, TableSpec
from compress_recover.aggregate.stats.decisions import Damage, Decision
from compress_recover.aggregate.stats.verdict import Verdict
from conftest import REPO
from test_report_verdict import analysed  # noqa: F401  (the analysis of hand-made samples, a fixture)


def test_load_then_save_writes_the_same_bytes(analysed, tmp_path):  # noqa: F811
    _, out, _, _ = analysed
    Results.load(out).save(tmp_path)
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([*(s.file for s in TABLE_SPECS), VERDICT_FILE, RECORD_FILE])
    for name in written:
        assert filecmp.cmp(out / name, tmp_path / name, shallow=False), name


def test_from_dict_inverts_as_dict_through_json(analysed):  # noqa: F811
    _, out, verdict, _ = analysed
    loaded = Results.load(out)
    assert loaded.verdict_json() == json.loads((out / VERDICT_FILE).read_text()) == verdict
    (v,) = loaded.verdicts
    assert isinstance(v, Verdict) and isinstance(v.damage, Damage) and all(isinstance(m, Decision) for m in v.methods)
    lora = next(m for m in v.methods if m.recovery == "lora")
    assert lora.test.rejected and lora.decision == "recovers" and lora.run_seeds == [0, 1]
    assert lora.recovered_acc == pytest.approx(90.5 / 120) and lora.control_seeds == [0, 1]
    assert Damage.from_dict(v.damage.as_dict()) == v.damage


def test_a_run_id_round_trips():
    from compress_recover.runs import RunId

    for run in (RunId("m", "q", "lora", 1, 60), RunId("m", "none", "none")):
        assert RunId.from_dict(json.loads(json.dumps(run.as_dict()))) == run


def test_a_failed_decision_round_trips():
    failed = Decision("m", "q", "lora", "lora", "parameters", "failed (diverged)", status="failed", seeds=[0, 1],
                      runs=["lora.seed0", "lora.seed1"], failed_seeds=[0, 1], failure="diverged", note="n",
                      family_size=None)
    again = Decision.from_dict(json.loads(json.dumps(failed.as_dict())))
    assert again.as_dict() == failed.as_dict() and again.failed and again.run_seeds == [0, 1]
    assert record.json_safe(float("nan")) is None and record.json_safe(float("-inf")) == "-inf"


def test_a_record_of_another_schema_version_or_without_one_is_refused(analysed, tmp_path):  # noqa: F811
    _, out, _, _ = analysed
    copy = tmp_path / "analysis"
    copy.mkdir()
    for p in out.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    (copy / RECORD_FILE).write_text(json.dumps({"schema_version": record.SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match=f"schema version {record.SCHEMA_VERSION + 1}.*run rule analysis again"):
        Results.load(copy)
    (copy / RECORD_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no record.json"):
        Results.load(copy)


def test_a_table_that_does_not_match_its_spec_is_refused_before_writing(tmp_path):
    spec = TableSpec("toy", ("model", "n"), "a toy")
    with pytest.raises(ValueError, match=r"table toy: columns \['model', 'x'\].*missing \['n'\], extra \['x'\]"):
        spec.write(tmp_path, pd.DataFrame({"model": ["m"], "x": [1]}))
    assert not (tmp_path / "toy.csv").exists()
    spec.write(tmp_path, pd.DataFrame({"model": ["m"], "n": [3]}))
    assert spec.read(tmp_path).n.tolist() == [3] and spec.c.n == "n"
    with pytest.raises(AttributeError):
        spec.c.misspelt  # noqa: B018


# --------------------------------------------------------------------------- no reader opens a file by name

FILE_NAMES = {s.file for s in TABLE_SPECS} | {VERDICT_FILE, RECORD_FILE, record.SUMMARY_FILE}
# Python outside results.py; config/checks.py names results/'s entries to refuse them as model names.
READER_ROOTS = ["compress_recover", "studies", "benchmarks", "workflow_scripts"]
NOT_READERS = {Path("compress_recover/aggregate/results.py"), Path("compress_recover/config/checks.py")}


def _string_literals(path: Path) -> list[str]:
    """Every string constant of a module but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_module_outside_results_spells_an_analysis_file_name():
    found = []
    for root in READER_ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel in NOT_READERS or "compress_recover" in rel.parts[1:]:  # workflow_scripts' link to the package
                continue
            found += [f"{rel}: {s!r}" for s in _string_literals(path) if any(name in s for name in FILE_NAMES)]
    assert not found, "open the record with Results.load instead:\n" + "\n".join(found)


# The views: they read columns as attributes of a frame's rows or through a spec's names
# (``FLIPS.c.count``). Names a table shares with the cost.json records, the config's dicts and
# the manifests the views also read are not the record's to police.
AGGREGATE = REPO / "compress_recover/aggregate"
VIEWS = [*sorted((AGGREGATE / "report").glob("*.py")), *sorted((AGGREGATE / "figures").glob("*.py")),
         *(AGGREGATE / f for f in ("tables.py", "explorer.py", "snapshot.py", "snapshot_records.py",
                                   "results_pages.py")),
         REPO / "studies/idp_modes.py"]
NOT_ONLY_THE_RECORDS = {"model", "compression", "recovery", "run", "seed", "steps", "trained", "failure", "note",
                        "task", "status", "n"}


def _string_keys(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every ``x["key"]`` read and ``x.get("key")`` of a module."""
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Load) and isinstance(n.slice, ast.Constant):
            out.append((n.lineno, n.slice.value))
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" and n.args
              and isinstance(n.args[0], ast.Constant)):
            out.append((n.lineno, n.args[0].value))
    return [(line, key) for line, key in out if isinstance(key, str)]


def test_no_view_looks_up_a_column_of_the_record_by_a_string():
    columns = set().union(*(s.columns for s in TABLE_SPECS)) - NOT_ONLY_THE_RECORDS
    found = [f"{path.relative_to(REPO)}:{line}: {key!r}" for path in VIEWS for line, key in _string_keys(path)
             if key in columns]
    assert not found, "read it as an attribute or through the table's spec (TableSpec.c):\n" + "\n".join(found)


# --------------------------------------------------------------------------- the recipes of docs/extending.md

def test_recipe_a_new_statistic_in_the_verdict(analysed, tmp_path, monkeypatch):  # noqa: F811
    """Followed on a toy: (1) a function of the statistics returns a frame; (2) its TableSpec
    in results.py's TABLE_SPECS; (3) analyse() returns it under the spec's name. Then
    Results.save writes it and every reader has it as results.tables.<name>."""
    _, out, _, _ = analysed
    loaded = Results.load(out)
    questions = loaded.tables.questions

    def questions_per_model(table):  # (1) the statistic
        one_task = table[table.task == "capitals"]
        return one_task.groupby(["model", "compression"], sort=True).doc_id.nunique().rename("n").reset_index()

    spec = TableSpec("questions_per_model", ("model", "compression", "n"), "distinct questions per model")  # (2)
    monkeypatch.setattr(record, "TABLE_SPECS", (*TABLE_SPECS, spec))
    monkeypatch.setattr(record, "Tables", record.tables_class(record.TABLE_SPECS))
    tables = record.Tables(**{s.name: getattr(loaded.tables, s.name) for s in TABLE_SPECS},
                           questions_per_model=questions_per_model(questions))  # (3) what analyse() returns
    Results(**{**loaded.__dict__, "tables": tables}).save(tmp_path)
    assert (tmp_path / "questions_per_model.csv").is_file()
    again = Results.load(tmp_path).tables.questions_per_model
    assert again.n.tolist() == [120, 120] and list(again.columns) == list(spec.columns)


def test_recipe_a_new_report_section(analysed, tmp_path):  # noqa: F811
    """Followed on a toy: (1) a context function of ReportInputs; (2) its template under
    templates/sections/; (3) one line of SECTIONS. The page shows it, collapsed behind its
    summary, among the evidence."""
    from compress_recover.aggregate import report
    from compress_recover.aggregate.figures import FIGURES, run_figures
    from compress_recover.aggregate.report import SECTIONS, ReportInputs, Section, render_page

    root, out, _, summary_csv = analysed

    def verdict_count(r: ReportInputs) -> dict:  # (1)
        return {"count": len(r.results.verdicts)}

    figures = {name: str(tmp_path / f"{name}.png") for name in FIGURES}
    run_figures(summary_csv=str(summary_csv), analysis_dir=str(out), knowledge_tasks=["capitals"], out_files=figures)
    template = report.TEMPLATES / "sections" / "toy_recipe_test.html.j2"  # (2)
    template.write_text("<h2 id='toy'>Toy</h2>\n<p>{{ count }} verdict(s)</p>\n")
    try:
        sections = [*SECTIONS[:-1], Section("toy", "Toy: how many verdicts", "sections/toy_recipe_test.html.j2",
                                            verdict_count), SECTIONS[-1]]  # (3)
        inputs = ReportInputs.read(summary_csv=str(summary_csv), analysis_dir=str(out), cost_files=[],
                                   figures=figures, config={}, knowledge_tasks=["capitals"])
        page = render_page(inputs, sections)
    finally:
        template.unlink()
    box = page.index("<details class='evidence' id='ev-toy'><summary>Toy: how many verdicts</summary>")
    assert page.index("<h2 id='evidence'>") < page.index("<h2 id='rule'>") < box < page.index("id='ev-config'")
    assert "<p>1 verdict(s)</p>" in page[box:]


def test_sections_are_in_reading_order_with_unique_ids_and_existing_templates():
    from compress_recover.aggregate.report import SECTIONS, TEMPLATES

    ids = [s.id for s in SECTIONS]
    assert len(set(ids)) == len(ids)
    assert ids[:3] == ["bases", "floating_revision", "glance"] and ids[-2:] == ["rule", "config"]
    for s in SECTIONS:
        assert (TEMPLATES / s.template).is_file(), s.template
        assert bool(s.summary) == s.collapsed, s.id  # a collapsed box needs its one line; an open one has none


def test_the_family_section_lists_every_member_of_the_holm_family_once(analysed):  # noqa: F811
    """The report's confirmatory family: one row per member (the family's size), exactly the
    no-loss and recovery tests the verdict's label reads; non-inferiority is descriptive,
    outside it."""
    from compress_recover.aggregate.report import ReportInputs
    from compress_recover.aggregate.report.verdict import family

    _, out, verdict, summary_csv = analysed
    inputs = ReportInputs.read(summary_csv=str(summary_csv), analysis_dir=str(out), cost_files=[], figures={},
                               config={}, knowledge_tasks=["capitals"])
    shown = family(inputs)["family"]
    (v,) = verdict["verdicts"]
    methods, ni = v["evidence"]["methods"], v["evidence"]["noninferiority"]
    assert ni and all(t["p_holm"] is None and t["confidence"] == 0.95 for t in ni)  # outside the family
    assert shown["size"] == v["evidence"]["family_size"] == len(shown["rows"]) == 1 + len(methods)
    assert [row[0] for row in shown["rows"]] == ["no measurable loss", *["recovery"] * len(methods)]
    assert shown["used"] == 1 + len(methods) == len(shown["rows"])
    assert [row[6] for row in shown["rows"][1:1 + len(methods)]] == [m["decision"] for m in methods]


def test_a_figure_a_section_shows_is_required(analysed):  # noqa: F811
    """A report without a picture it shows is an error naming the figure, never a thinner page."""
    from compress_recover.aggregate.report import ReportInputs, render_section

    _, out, _, summary_csv = analysed
    inputs = ReportInputs.read(summary_csv=str(summary_csv), analysis_dir=str(out), cost_files=[], figures={},
                               config={}, knowledge_tasks=["capitals"])
    with pytest.raises(KeyError, match="the report needs figure 'accuracy_vs_compression'"):
        render_section("figures", inputs)
