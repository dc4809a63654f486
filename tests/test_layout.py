"""The package mirrors the DAG: one subpackage per stage, rule X -> workflow_scripts/X.py ->
compress_recover/<stage>/X.py, imports only downward, and methods named only in their own files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from compress_recover.compress import COMPRESSION
from compress_recover.recover import RECOVERY
from conftest import REPO

PACKAGE = REPO / "compress_recover"
# The stages in DAG order: a stage may import the stages before it (whose outputs it
# reads), never one after it.
STAGES = ["download", "data", "compress", "recover", "evaluate", "aggregate"]
SHARED = {"registry", "io", "runtime", "modeling", "tokens", "wheels", "runs", "failures", "prompt_choice", "shape"}
# Above every stage, may import any: the plan (a package, read by rules/common.smk) and the
# generated docs (a module: the configuration reference and the results pages) and the run
# estimate (a module: reads the plan and a dry run).
TOP_PACKAGES, TOP_MODULES = {"config"}, {"docs", "estimate"}
TOP = TOP_PACKAGES | TOP_MODULES


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Package modules ``name`` imports (module level or inside functions), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[str, int]:
    part = module.split(".")[1] if "." in module else ""
    if part in SHARED:
        return "shared", 0
    if part in STAGES:
        return "stage", 1 + STAGES.index(part)
    if part in TOP:
        return "top", len(STAGES) + 1
    return "package", -1  # compress_recover/__init__.py


def test_the_package_has_one_subpackage_per_stage():
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    top_level = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    outside = SHARED | TOP_MODULES
    assert top_level == outside, f"modules outside the stages: {sorted(top_level ^ outside)}"
    packages, expected = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}, set(STAGES) | TOP_PACKAGES
    assert packages == expected, f"packages besides the stages and the plan: {sorted(packages ^ expected)}"


def test_imports_run_downward_only():
    wrong = []
    for module, targets in GRAPH.items():
        kind, level = _layer(module)
        for target in targets:
            t_kind, t_level = _layer(target)
            if t_kind == "package":
                wrong.append((module, target))
            elif kind == "shared" and t_kind != "shared":
                wrong.append((module, target))
            elif kind == "stage" and t_level > level:
                wrong.append((module, target))
    assert not wrong, f"imports from a lower layer to a higher one: {wrong}"


def test_no_circular_import():
    def visit(node, path):
        if node in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(node):], node])}")
        for nxt in GRAPH[node]:
            if nxt not in done:
                visit(nxt, [*path, node])
        done.add(node)

    done: set[str] = set()
    for module in GRAPH:
        visit(module, [])


def _rule_scripts() -> list[tuple[str, str, str]]:
    """(stage, rule name or name pattern, script name) of every rule in rules/<stage>.smk."""
    out = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=[ \t]*rule\b)", text)[1:]:
            name = re.match(r"\s*rule\s*(\w*)\s*:", block).group(1)
            if not name:  # a rule generated per method (or text): name: f"compress_{method}"
                name = re.search(r'name:\s*f"(\w+)_\{\w+\}"', block).group(1) + "_<method>"
            script = re.search(r'script:\s*"\.\./workflow_scripts/(\w+)\.py"', block)
            if script:
                out.append((smk.stem, name, script.group(1)))
    return out


RULE_SCRIPTS = _rule_scripts()


def test_every_rule_script_is_found():
    names = {name for _, name, _ in RULE_SCRIPTS}
    assert {"download", "knowledge_task", "text", "perplexity_task", "compress_<method>", "recover_<method>",
            "evaluate", "cost", "summary", "analysis", "figures", "attention", "report"} <= names
    used = {script for *_, script in RULE_SCRIPTS}
    assert used == {p.stem for p in (REPO / "workflow_scripts").glob("*.py")}, "a script no rule runs"


@pytest.mark.parametrize("stage, rule, script", RULE_SCRIPTS)
def test_rule_script_and_module_have_the_rule_name(stage, rule, script):
    """Rule X runs workflow_scripts/X.py, which calls compress_recover.<stage>.X."""
    assert script == rule.removesuffix("_<method>"), f"rule {rule} runs workflow_scripts/{script}.py"
    module = f"compress_recover.{stage}.{script}"
    assert module in MODULES, f"rule {rule}: no module {module}"
    source = (REPO / "workflow_scripts" / f"{script}.py").read_text()
    assert f"from {module} import " in source, f"workflow_scripts/{script}.py does not call {module}"


def _own_files(config_cls) -> set[Path]:
    """A method's own files: its config's module, its entry points' modules and their
    private helpers (``<module>_*.py``)."""
    modules = {config_cls.__module__}
    for entry in (config_cls.entry_point, config_cls.adapter_loader):
        if entry:
            modules.add(entry.split(":")[0])
    files = {MODULES[m] for m in modules}
    for f in list(files):
        files.update(f.parent.glob(f"{f.stem}_*.py"))
    return files


REGISTRIES = {MODULES["compress_recover.compress"], MODULES["compress_recover.recover"]}
METHODS = [(registry, name) for registry in (COMPRESSION, RECOVERY) for name in registry.names() if name != "none"]
METHOD_FILES = set().union(*(_own_files(registry[name].config_cls) for registry, name in METHODS))
SHARED_FILES = sorted(set(MODULES.values()) - METHOD_FILES - REGISTRIES)


def test_the_method_units_are_found():
    assert len(METHOD_FILES) >= len(METHODS) and len(SHARED_FILES) > 20
    assert MODULES["compress_recover.recover.recover"] in SHARED_FILES


# A library's own vocabulary that contains a method's name: lm-eval names its few-shot
# machinery num_fewshot, fewshot_split, fewshot_config, ..., which every evaluation uses (and
# the shared few-shot task folders follow: fewshot_task, fewshot_pool). Compound identifiers
# only: the bare method name still counts.
LIBRARY_VOCABULARY = {"fewshot": re.compile(r"\w*_fewshot\w*|\bfewshot_\w+", re.IGNORECASE)}


@pytest.mark.parametrize("method", [m for _, m in METHODS])
def test_no_shared_module_names_a_method(method):
    """Shared code (everything but the methods' own files and the two registries) asks the
    registries, never a method by name, even in comments."""
    words = {method, method.replace("_", " "), method.replace("_", "-")}
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(map(re.escape, words)) + r")(?![a-z0-9])", re.IGNORECASE)
    vocabulary = LIBRARY_VOCABULARY.get(method)

    def names(line: str) -> bool:
        return bool(pattern.search(vocabulary.sub("", line) if vocabulary else line))

    hits = [f"{path.relative_to(REPO)}:{i}: {line.strip()}" for path in SHARED_FILES
            for i, line in enumerate(path.read_text().splitlines(), 1) if names(line)]
    assert not hits, f"method '{method}' is named outside its own files:\n" + "\n".join(hits)


def test_benchmark_timings_are_written_apart_from_the_benchmark_scripts():
    for smk in (REPO / "rules").glob("*.smk"):
        for path in re.findall(r'benchmark:\s*"([^"]+)"', smk.read_text()):
            assert path.startswith("logs/"), f"{smk.name}: benchmark file {path} outside logs/"
