"""The documentation cannot drift from the code: README.md and docs/*.md.

- the generated parts (configuration reference, results tables) are current;
- config.yaml's values are the schema's defaults, or a departure is named with its reason;
- every rule, `make` target, configuration key, repository file and link anchor the pages
  name exists (outputs under results/ and logs/ excepted);
- every number of the results tables is in docs/results/snapshot.json.

Each extractor is also run on a made-up text, to show it catches what it should.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from compress_recover import docs
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OUTPUT_ROOTS = {"results", "logs"}  # paths under these are the workflow's outputs, not repository files
FILE_EXTENSIONS = {"csv", "html", "json", "jsonl", "md", "parquet", "png", "py", "safetensors", "smk", "tsv",
                   "txt", "yaml", "yml", "zip", "log", "j2", "gguf", "whl", "cor"}
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks (their contents are commands and configs)."""
    return FENCE.sub("", text)


def _fenced_lines(text: str) -> list[str]:
    return [line.strip() for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]


# ---------------------------------------------------------------- what the repository has

@cache
def rule_names() -> frozenset[str]:
    """Every rule of the workflow, generated ones included, as Snakemake lists them."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    assert {"download", "evaluate", "report"} <= names, proc.stdout
    return frozenset(names)


@cache
def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))
    for line in re.findall(r"^\.PHONY\s*:(.*)$", text, re.MULTILINE):
        targets.update(line.split())
    return targets


@cache
def schema_paths() -> tuple[tuple[str, ...], ...]:
    return tuple(_segments(p) for p in docs.key_paths(docs.load_yaml(docs.SCHEMA)))


def _segments(path: str) -> tuple[str, ...]:
    """A key path's segments, list indices dropped and free names (`<name>`) as '*'."""
    path = re.sub(r"\[[^\]]*\]", "", path)
    return tuple("*" if re.fullmatch(r"<[^>]*>", part) else part for part in path.split("."))


TOP_KEYS = {"models", "data", "compression", "recovery", "cost", "report", "evaluation"}


def option_exists(path: str) -> bool:
    want = _segments(path)
    return any(len(have) == len(want) and all(h == w or h == "*" for h, w in zip(have, want, strict=True))
               for have in schema_paths())


def _top_level_names() -> set[str]:
    ignored = {".git", ".venv", ".snakemake", ".ruff_cache", ".pytest_cache", "__pycache__"}
    return {p.name for p in REPO.iterdir() if p.name not in ignored and not p.name.endswith(".egg-info")} \
        | OUTPUT_ROOTS


def path_exists(path: str, base: Path = REPO) -> bool:
    """A repository path exists; `<x>`, `{x}` and `*` are placeholders (some file must match)."""
    pattern = re.sub(r"<[^>]*>|\{[^}]*\}", "*", path.rstrip("/"))
    if "*" in pattern:
        return any(base.glob(pattern))
    return (base / pattern).exists()


# ---------------------------------------------------------------- what a page names

RULE_WORD = re.compile(r"\brules?\s*$", re.IGNORECASE)
RULE_LIST_GLUE = re.compile(r"^\s*(,|and|or|/|,\s*and)\s*$")


def named_rules(text: str) -> set[str]:
    """Rule names a page names: a code span after the word 'rule(s)' (and the spans listed
    right after it), a span `rule x`, a rule-family pattern (`compress_<method>`,
    `recover_*`), a span in a table column headed 'rule' or 'rule(s)', and the left side of
    a `rule` → `module.function` mapping."""
    prose = _prose(text)
    found = set()
    spans = list(SPAN.finditer(prose))
    for i, span in enumerate(spans):
        value = span.group(1).strip()
        if value.startswith("rule ") and re.fullmatch(r"rule [\w<>*]+", value):
            found.add(value.split()[1])
        line_start = prose.rfind("\n", 0, span.start()) + 1
        if RULE_WORD.search(prose[line_start:span.start()]) or RULE_WORD.search(prose[max(0, span.start() - 7):
                                                                                         span.start()]):
            found.add(value)
            for nxt, prev in zip(spans[i + 1:], spans[i:], strict=False):  # `a`, `b` and `c`
                if not RULE_LIST_GLUE.match(prose[prev.end():nxt.start()]):
                    break
                found.add(nxt.group(1).strip())
        if re.fullmatch(r"[a-z]+(_[a-z]+)*_(\*|<\w+>)", value):
            found.add(value)
        if re.match(r"\s+jobs?\b", prose[span.end():]):  # the `download` and `text` jobs
            found.add(value)
            for prev, nxt in zip(spans[i - 1::-1] if i else [], spans[i::-1], strict=False):
                if not RULE_LIST_GLUE.match(prose[prev.end():nxt.start()]):
                    break
                found.add(prev.group(1).strip())
    found.update(re.findall(r"`([\w<>]+)` → `\w+(?:\.\w+)+`", prose))
    for table in re.findall(r"(?:^\|.*\|\s*$\n?)+", prose, re.MULTILINE):
        rows = [[c.strip() for c in row.strip().strip("|").split("|")] for row in table.strip().splitlines()]
        columns = [i for i, head in enumerate(rows[0]) if head in ("rule", "rule(s)")]
        for row in rows[2:]:
            for i in columns:
                if i < len(row):
                    found.update(s.strip() for s in SPAN.findall(row[i]))
    return {name for name in found if re.fullmatch(r"[\w<>*]+", name)}


def rule_exists(name: str) -> bool:
    if "<" in name or "*" in name:
        pattern = re.sub(r"<\w+>|\*", r"\\w+", name)
        return any(re.fullmatch(pattern, rule) for rule in rule_names())
    return name in rule_names()


def named_make_targets(text: str) -> set[str]:
    lines = [s.strip() for s in SPAN.findall(_prose(text))] + _fenced_lines(text)
    return {m.group(1) for line in lines if (m := re.match(r"make\s+([A-Za-z][\w.-]*)", line))}


def named_options(text: str) -> set[str]:
    """Configuration key paths in code spans: `data.split`, `recovery.budget.steps: [60, 120]`."""
    found = set()
    prose = _prose(text)
    for match in SPAN.finditer(prose):
        if prose[:match.start()].endswith("→ "):  # `cost` → `cost.run_cost`: a module's function
            continue
        head = re.split(r"[\s:=]", match.group(1).strip(), maxsplit=1)[0]
        if not re.fullmatch(r"[a-z_]+(\.[\w<>\[\].-]+)+", head) or head.split(".")[0] not in TOP_KEYS:
            continue
        if head.rsplit(".", 1)[1] in FILE_EXTENSIONS:  # cost.json, report.html: files
            continue
        found.add(head)
    return found


def named_paths(text: str) -> set[str]:
    """Repository paths in code spans (every word of a span) whose first part is a top-level
    entry of the repository (`benchmarks/stage_times.py`, `docs/`, `Makefile`)."""
    tops = _top_level_names()
    found = set()
    for span in SPAN.findall(_prose(text)):
        for word in span.split():
            word = word.strip("\"'(),;")
            first = word.split("/", 1)[0]
            if first in tops and ("/" in word or word == first) and "://" not in word:
                found.add(word)
    return found


def named_links(text: str) -> set[str]:
    return {t for t in LINK.findall(_prose(text)) if not re.match(r"[a-z]+:", t)}


def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", _prose(page.read_text()), re.MULTILINE)}


def link_problem(target: str, page: Path) -> str | None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if path and not file.exists():
        return f"{target}: no such file"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{target}: no heading #{anchor} in {file.relative_to(REPO)}"
    return None


def table_numbers(text: str) -> list[str]:
    """The numbers of a markdown text's table cells, the header row and first column excepted."""
    out = []
    for table in re.findall(r"(?:^\|.*\|\s*$\n?)+", text, re.MULTILINE):
        for row in table.strip().splitlines()[2:]:
            for cell in [c.strip() for c in row.strip().strip("|").split("|")][1:]:
                out += re.findall(r"(?<![\w.])[−-]?\d[\d,]*(?:\.\d+)?(?![\w])", cell)
    return out


def _leaves(node) -> list[float]:
    if isinstance(node, bool):
        return []
    if isinstance(node, int | float):
        return [float(node)]
    if isinstance(node, dict):
        return [v for value in node.values() for v in _leaves(value)]
    if isinstance(node, list):
        return [v for value in node for v in _leaves(value)]
    return []


def in_snapshot(number: str, snapshot: dict) -> bool:
    """``number`` is a value of the snapshot at the precision it is written with."""
    text = number.replace("−", "-").replace(",", "")
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    value = float(text)
    return any(abs(v - value) <= 0.5 * 10 ** -decimals + 1e-9 for v in _leaves(snapshot))


def results_tables(page: Path) -> str:
    """The results part of a page: README's section 'What the default found', all of docs/results.md."""
    text = page.read_text()
    if page.name == "README.md":
        return text.split("## What the default found", 1)[1].split("\n## ", 1)[0]
    return text


# ---------------------------------------------------------------- the tests

def test_generated_parts_are_current():
    assert docs.stale() == [], "run `python -m compress_recover.docs` and commit the result"


def test_config_yaml_values_are_the_schema_defaults():
    schema, config = docs.load_yaml(docs.SCHEMA), docs.load_yaml(docs.CONFIG)
    departures = docs.config_departures(schema, config)
    unnamed = {k: v for k, v in departures.items() if k not in docs.ALLOWED_DEPARTURES}
    assert not unnamed, f"config.yaml departs from the schema's default (schema, config.yaml): {unnamed}; " \
                        "make them agree, or name the departure in docs.ALLOWED_DEPARTURES with its reason"
    stale = set(docs.ALLOWED_DEPARTURES) - set(departures)
    assert not stale, f"named departures that are no longer departures: {stale}"
    assert all(reason.strip() for reason in docs.ALLOWED_DEPARTURES.values())


def test_a_departure_from_the_schema_default_is_found():
    schema, config = docs.load_yaml(docs.SCHEMA), docs.load_yaml(docs.CONFIG)
    config["cost"]["repeats"] += 4
    config["compression"]["methods"] = config["compression"]["methods"][:2]
    found = docs.config_departures(schema, config)
    assert set(found) == {"cost.repeats", "compression.methods"}


def test_every_schema_key_is_in_the_configuration_reference():
    text = (REPO / "docs" / "configuration.md").read_text()
    for key in docs.schema_keys(docs.load_yaml(docs.SCHEMA)):
        assert f"`{key['path']}`" in text, key["path"]
        assert key["description"], f"{key['path']}: no description in the schema"


def _repository_paths(text: str) -> set[str]:
    """The files a page names, outputs of the workflow (results/, logs/) left out."""
    return {p for p in named_paths(text) if p.split("/", 1)[0] not in OUTPUT_ROOTS}


# What a page may name, how the names are found and whether one exists: each kind checked
# the same way (every name it finds must exist).
NAMED = {
    "rules the workflow does not have": (named_rules, rule_exists),
    "make targets the Makefile does not have": (named_make_targets, lambda name: name in make_targets()),
    "configuration keys the schema does not have": (named_options, option_exists),
    "files the repository does not have": (_repository_paths, path_exists),
}


# the rules' check lists the workflow's rules through Snakemake: the slow tier
@pytest.mark.parametrize("what", [pytest.param(w, marks=pytest.mark.slow) if NAMED[w][1] is rule_exists else w
                                  for w in NAMED])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_everything_a_page_names_exists(page, what):
    names, exists = NAMED[what]
    missing = sorted(name for name in names(page.read_text()) if not exists(name))
    assert not missing, f"{page.name} names {what}: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    problems = [p for t in sorted(named_links(page.read_text())) if (p := link_problem(t, page))]
    assert not problems, f"{page.name}: {problems}"


def test_the_extractors_find_what_the_pages_name():
    """A guard against an extractor that silently finds nothing."""
    text = "\n".join(p.read_text() for p in PAGES)
    assert {"download", "generated_text", "teacher_logits_corpus", "compress_<method>", "attention"} \
        <= named_rules(text)
    assert {"demo", "test", "gpu-check"} <= named_make_targets(text)
    assert {"data.split", "report.alpha", "recovery.seeds", "data.task_dirs[i].knowledge"} <= named_options(text)
    assert {"benchmarks/stage_times.py", "tests/test_slurm.py", "compress_recover/schema/config.schema.yaml"} \
        <= named_paths(text)
    assert "docs/configuration.md" in named_links(text)


@pytest.mark.slow  # rule_exists lists the workflow's rules through Snakemake
def test_made_up_names_are_caught():
    text = """Rule `teacher_logits` caches logits; rules `summary`, `made_up_rule` and `report` follow.
The `download`, `recover` and `text` jobs run first.
`rule also_made_up` and `recover_*`, `bogus_<method>`.

| stage | rule(s) | writes |
|---|---|---|
| x | `fake_table_rule` | `results/x` |

`fake_mapped_rule` → `module.function`. Run `make demo`, then `make deploy`.
```bash
make nothing-here
```
Set `report.alpha` and `report.no_such_key: 1`, `data.split.nope`, `cost.json` (a file).
See `benchmarks/no_such_benchmark.py`, `docs/absent.md`, `results/<model>/made/up/` (an output)
and `envs/<step>.yaml`; [a link](docs/nowhere.md), [an anchor](docs/configuration.md#no-such-heading),
[a good one](docs/configuration.md#the-three-seeds).
"""
    rules = named_rules(text)
    wrong = {"teacher_logits", "made_up_rule", "also_made_up", "bogus_<method>", "fake_table_rule",
             "fake_mapped_rule", "recover"}
    assert wrong | {"summary", "report", "download", "text", "recover_*"} <= rules
    assert {r for r in rules if not rule_exists(r)} == wrong
    assert named_make_targets(text) - make_targets() == {"deploy", "nothing-here"}
    options = named_options(text)
    assert "cost.json" not in options
    assert {o for o in options if not option_exists(o)} == {"report.no_such_key", "data.split.nope"}
    paths = named_paths(text)
    assert {p for p in paths if p.split("/", 1)[0] not in OUTPUT_ROOTS and not path_exists(p)} \
        == {"benchmarks/no_such_benchmark.py", "docs/absent.md"}
    page = REPO / "README.md"
    problems = [p for t in sorted(named_links(text)) if (p := link_problem(t, page))]
    assert len(problems) == 2 and "docs/nowhere.md" in problems[1] + problems[0]


@pytest.mark.parametrize("page", [REPO / "README.md", REPO / "docs" / "results.md"], ids=lambda p: p.name)
def test_results_numbers_are_in_the_snapshot(page):
    snapshot = docs.read_snapshot()
    text = results_tables(page)
    numbers = table_numbers(text)
    assert len(numbers) >= 20, f"{page.name}: no results table found"
    missing = [n for n in numbers if not in_snapshot(n, snapshot)]
    assert not missing, f"{page.name}: numbers not in docs/results/snapshot.json: {missing}"
    assert snapshot["commit"] in text, f"{page.name} does not name the commit of its results"
    assert "recovery.seeds" in text, f"{page.name} does not state the seeds"


def test_a_number_not_in_the_snapshot_is_caught():
    snapshot = docs.read_snapshot()
    model = next(iter(snapshot["models"].values()))
    known = f"{model['accuracy']['none']['none']:.3f}"  # a number the snapshot holds
    absent = next(f"0.{i:03d}" for i in range(1000) if not in_snapshot(f"0.{i:03d}", snapshot))
    table = f"| a | b | c |\n|---|---|---|\n| 3-bit label | {known} | {absent} [−0.47, 0.02] |\n"
    assert table_numbers(table)[:2] == [known, absent]
    assert absent in [n for n in table_numbers(table) if not in_snapshot(n, snapshot)]
    assert known not in [n for n in table_numbers(table) if not in_snapshot(n, snapshot)]


def test_the_snapshot_states_its_commit_and_seeds():
    snapshot = docs.read_snapshot()
    assert re.fullmatch(r"[0-9a-f]{7,40}", snapshot["commit"])
    assert set(snapshot["seeds"]) == {"seed", "data.split.seed", "recovery.seeds"}
    assert all(option_exists(k) for k in snapshot["seeds"] if "." in k)


def test_a_stale_block_is_found(tmp_path):
    """stale() names a generated part edited by hand; the real pages are current (--check exits 0)."""
    for file, _ in docs.GENERATED:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text((REPO / file).read_text())
    assert docs.stale(tmp_path) == []
    page = tmp_path / "docs" / "configuration.md"
    page.write_text(page.read_text().replace("| `device` |", "| `device` (edited) |", 1))
    assert docs.stale(tmp_path) == ["docs/configuration.md (configuration)"]
    assert docs.main(["--check"]) == 0


def test_the_docs_check_imports_nothing_heavy():
    """Importing compress_recover.docs and checking every generated part (the results tables
    included, rendered by the results view from the snapshot) imports no pandas or numpy."""
    code = ("import sys; from compress_recover import docs; assert docs.stale() == []; "
            "heavy = sorted({'pandas', 'numpy', 'torch'} & set(sys.modules)); assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_schema_defaults_plan_the_default_grid():
    """An empty config, filled with the schema's defaults (as `--replace-workflow-config` leaves
    a config that omits keys), plans exactly config.yaml's grid."""
    from snakemake.utils import validate

    from compress_recover.config import build_plan

    empty: dict = {}
    validate(empty, str(docs.SCHEMA))
    default = yaml.safe_load(docs.CONFIG.read_text())
    validate(default, str(docs.SCHEMA))
    assert build_plan(empty).cells() == build_plan(default).cells()


# The JSON-schema keywords the schema may use (draft 7, and $defs): a key outside them in a
# schema object is a typo, or the rest of a description that YAML cut off and made a key of.
SCHEMA_VOCABULARY = {
    "$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "default", "examples", "type", "enum",
    "const", "properties", "patternProperties", "additionalProperties", "propertyNames", "required",
    "minProperties", "maxProperties", "dependencies", "items", "additionalItems", "contains", "minItems", "maxItems",
    "uniqueItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength", "pattern", "format", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "readOnly",
    "writeOnly", "contentMediaType", "contentEncoding",
}


def _schema_objects(node: dict, path: str = ""):
    """(path, object) of every schema object under ``node`` (itself included): properties,
    items, definitions and the branches of allOf/anyOf/oneOf/not/if/then/else."""
    yield path, node
    for key in ("properties", "patternProperties", "$defs"):
        for name, sub in (node.get(key) or {}).items():
            if isinstance(sub, dict):
                yield from _schema_objects(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(node.get(key), dict):
            yield from _schema_objects(node[key], f"{path}/{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or []):
            if isinstance(sub, dict):
                yield from _schema_objects(sub, f"{path}/{key}[{i}]")


def unknown_schema_keys(schema: dict) -> dict[str, list[str]]:
    """Schema object path -> its keys that are no JSON-schema keyword."""
    return {path or "(root)": sorted(set(obj) - SCHEMA_VOCABULARY) for path, obj in _schema_objects(schema)
            if set(obj) - SCHEMA_VOCABULARY}


def cut_descriptions(text: str) -> list[str]:
    """Every ``description`` of a YAML text whose parsed value is not all that is written
    after ``description:``: an unquoted one whose line goes on past the value (a ", " in a
    flow mapping ends it and makes the rest a key; a " #" makes the rest a comment). An
    unquoted description ends its line, closing braces aside; quote one that holds a ", "
    or a ": " or a " #"."""
    lines = text.splitlines()
    found = []

    def walk(node):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == "description" and isinstance(value, yaml.ScalarNode) and value.style is None:
                    rest = lines[value.end_mark.line][value.end_mark.column:].strip()
                    if rest.strip("} "):
                        found.append(f"line {value.start_mark.line + 1}: {value.value!r} is cut before {rest!r}")
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(yaml.compose(text))
    return found


def test_every_schema_description_is_all_its_text_and_every_key_a_schema_keyword():
    """The configuration reference shows each description whole: YAML cuts an unquoted one at
    a ", " inside braces (the rest becomes a stray key) or at a " #" (a comment), silently."""
    text = docs.SCHEMA.read_text()
    assert cut_descriptions(text) == []
    assert unknown_schema_keys(yaml.safe_load(text)) == {}


def test_a_cut_description_and_a_stray_key_are_found():
    text = ("properties:\n"
            "  a: {type: integer, description: Seed of the split (fixed, here).}\n"
            "  b: {type: integer, description: \"Quoted, whole.\"}\n"
            "  c:\n"
            "    type: string\n"
            "    description: Cut by a comment # here\n"
            "  d: {type: string, description: Whole and plain.}\n")
    assert [line.split(":")[0] for line in cut_descriptions(text)] == ["line 2", "line 6"]
    assert unknown_schema_keys(yaml.safe_load(text)) == {".a": ["here)."]}
