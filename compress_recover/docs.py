"""The generated parts of the documentation, and the check that they are current.

- ``docs/configuration.md``: every key of ``compress_recover/schema/config.schema.yaml``
  (path, type, default, description) with config.yaml's value beside the default;
- ``docs/results/snapshot.json``: the headline numbers of a finished run, read from its
  ``results/`` folder, with the commit it ran at and its seeds;
- the results tables of ``README.md`` and ``docs/results.md``, and the README's "Which remedy
  first?" list, rendered from that snapshot.

The snapshot and its tables are views of the run beside the report
(:mod:`compress_recover.aggregate.snapshot`, :mod:`compress_recover.aggregate.results_pages`);
this module holds the configuration reference and the blocks' machinery.

Each generated part sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``.

    python -m compress_recover.docs            # rewrite the generated parts
    python -m compress_recover.docs --check    # exit 1 when one is stale
    python -m compress_recover.docs snapshot RESULTS_DIR --commit SHA   # write the snapshot

Imports nothing heavy and no stage at import: it reads YAML and JSON, and imports the results
view only to render its blocks or take a snapshot (pandas then, for the snapshot only).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "compress_recover" / "schema" / "config.schema.yaml"
CONFIG = REPO / "config.yaml"
SNAPSHOT = REPO / "docs" / "results" / "snapshot.json"
END = "<!-- end generated -->"
# Departures of config.yaml from the schema's defaults, each with its reason. None today:
# `snakemake --replace-workflow-config` exposes the schema's defaults, so they are the demo's.
ALLOWED_DEPARTURES: dict[str, str] = {}


def marker(name: str) -> str:
    return f"<!-- generated: {name} -->"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- the configuration reference

def _flow(value) -> str:
    """A value as one line of YAML flow style."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def _type(node: dict) -> str:
    if "oneOf" in node:
        return " or ".join(_type(branch) for branch in node["oneOf"])
    if "enum" in node:
        return "one of " + ", ".join(_flow(v) for v in node["enum"])
    kinds = node.get("type", "object" if "properties" in node else "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "array" and isinstance(node.get("items"), dict) and "type" in node["items"]:
            kind = f"list of {_type({k: v for k, v in node['items'].items() if k != 'pattern'})}"
        words.append(kind)
    bounds = [f"{sign} {_flow(node[key])}" for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                            ("maximum", "≤"), ("exclusiveMaximum", "<"))
              if key in node]
    return ", ".join([" or ".join(words), *bounds])


def _text(value: str) -> str:
    """Schema prose as one markdown table cell."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def schema_keys(schema: dict) -> list[dict]:
    """Every documented key: ``path`` (``[]`` marks a list entry, ``<name>`` a free name),
    ``method`` (for a method entry's own keys), ``type``, ``default`` (absent: none),
    ``description``; in the schema's order."""
    keys: list[dict] = []

    def add(name: str, node: dict, path: str, method: str | None) -> None:
        node = _resolve(node, schema)
        if not node:  # `method: {}` in a method branch: declared above
            return
        key = {"path": f"{path}.{name}" if path else name, "method": method, "type": _type(node),
               "description": node.get("description", "")}
        if "default" in node:
            key["default"] = node["default"]
        keys.append(key)
        walk(node, key["path"], method)

    def walk(node: dict, path: str, method: str | None) -> None:
        for name, sub in node.get("properties", {}).items():
            add(name, sub, path, method)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.<name>", method)
        items = node.get("items")
        if isinstance(items, dict) and ("properties" in items or "allOf" in items):
            walk(items, f"{path}[]", None)
            for branch in items.get("allOf", []):
                condition = branch.get("if", {}).get("properties", {}).get("method", {})
                for each in ([condition["const"]] if "const" in condition else condition.get("enum", [])):
                    walk(branch.get("then", {}), f"{path}[]", each)

    walk(schema, "", None)
    return keys


def key_paths(schema: dict) -> set[str]:
    """Every key path of the schema, list entries and free names written as in :func:`schema_keys`."""
    return {key["path"] for key in schema_keys(schema)}


def _lookup(config, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _config_value(config: dict, key: dict) -> str:
    path = key["path"]
    if "[]" in path:  # a method entry's key: what config.yaml's entries of that method set
        listing, name = path.split("[].", 1)
        entries = [e for e in _lookup(config, listing) if key["method"] is None or e.get("method") == key["method"]]
        if key["method"] and not entries:
            return f"(no {key['method']} entry)"
        values = list(dict.fromkeys(_flow(e[name]) for e in entries if name in e))
        return ", ".join(f"`{v}`" for v in values) if values else "(not set)"
    if "<name>" in path:
        prefix, name = path.split(".<name>.", 1)
        values = list(dict.fromkeys(_flow(v[name]) for v in _lookup(config, prefix).values() if name in v))
        return ", ".join(f"`{v}`" for v in values) if values else "(not set)"
    try:
        value = _lookup(config, path)
    except KeyError:
        return "(not set: the default)"
    if isinstance(value, dict):
        return ""
    same = "default" in key and key["default"] == value
    return "= default" if same else f"`{_flow(value)}`"


def render_configuration(schema: dict, config: dict) -> str:
    """The reference table of every key: one table per section and per method entry."""
    groups: dict[tuple[str, str | None], list[dict]] = {}
    for key in schema_keys(schema):
        if "[]" in key["path"]:
            group = (key["path"].split("[]", 1)[0] + "[]", key["method"])
        elif "." in key["path"]:
            group = (key["path"].split(".", 1)[0], None)
        else:
            group = ("", None)
        groups.setdefault(group, []).append(key)
    lines = ["This part is generated from `compress_recover/schema/config.schema.yaml` and `config.yaml` by",
             "`python -m compress_recover.docs`; edit the schema's descriptions, not this text.", ""]
    for (group, method), keys in groups.items():
        title = f"`{group}` entries with `method: {method}`" if method else f"`{group}`" if group else "Top level"
        if group.endswith("[]") and method is None:
            title = f"`{group}` entries (every method)"
        lines += [f"### {title}", "", "| key | type | default | config.yaml | description |", "|---|---|---|---|---|"]
        for key in keys:
            default = f"`{_flow(key['default'])}`" if "default" in key else "(none)"
            if key["type"] == "object" and key.get("default") == {}:
                default = "(section)"
            lines.append(f"| `{key['path']}` | {_text(key['type'])} | {default} | {_config_value(config, key)} "
                         f"| {_text(key['description'])} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def config_departures(schema: dict, config: dict) -> dict[str, tuple]:
    """{path: (schema default, config.yaml value)} wherever config.yaml sets a key to another
    value than the schema's default (keys inside list entries are the grid's, not defaults)."""
    found = {}
    for key in schema_keys(schema):
        if "[]" in key["path"] or "<name>" in key["path"] or "default" not in key:
            continue
        try:
            value = _lookup(config, key["path"])
        except KeyError:
            continue
        if isinstance(value, dict) and isinstance(key["default"], dict):
            continue  # a section: its keys are compared one by one
        if value != key["default"]:
            found[key["path"]] = (key["default"], value)
    return found


# ---------------------------------------------------------------- blocks, check, CLI

def read_snapshot(path: Path = SNAPSHOT) -> dict:
    return json.loads(path.read_text())


def _results_readme() -> str:
    from .aggregate.results_pages import render_results_readme

    return render_results_readme(read_snapshot())


def _results_doc() -> str:
    from .aggregate.results_pages import render_results_doc

    return render_results_doc(read_snapshot())


def _remedy_advice() -> str:
    from .aggregate.results_pages import render_remedy_advice

    return render_remedy_advice(read_snapshot())


GENERATED: dict[tuple[str, str], Callable[[], str]] = {
    ("docs/configuration.md", "configuration"): lambda: render_configuration(load_yaml(SCHEMA), load_yaml(CONFIG)),
    ("README.md", "results"): _results_readme,
    ("README.md", "remedies"): _remedy_advice,
    ("docs/results.md", "results"): _results_doc,
}


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body``; the markers must be there, once."""
    start = marker(name)
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one '{start}' ... '{END}' block")
    return pattern.sub(lambda _: f"{start}\n{body}{END}", text)


def stale(repo: Path = REPO) -> list[str]:
    """The generated blocks that differ from what their sources render now."""
    out = []
    for (file, name), render in GENERATED.items():
        text = (repo / file).read_text()
        if replace_block(text, name, render()) != text:
            out.append(f"{file} ({name})")
    return out


def write(repo: Path = REPO) -> list[str]:
    changed = []
    for (file, name), render in GENERATED.items():
        path = repo / file
        text = path.read_text()
        new = replace_block(text, name, render())
        if new != text:
            path.write_text(new)
            changed.append(file)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compress_recover.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated part is stale")
    sub = parser.add_subparsers(dest="command")
    snap = sub.add_parser("snapshot", help="write docs/results/snapshot.json from a results/ folder")
    snap.add_argument("results", type=Path)
    snap.add_argument("--commit", required=True, help="the commit the run's code was at")
    snap.add_argument("--aggregate-commit", help="the commit the analysis was (re-)run at, if later")
    snap.add_argument("--out", type=Path, default=SNAPSHOT)
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        from .aggregate.snapshot import snapshot

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(snapshot(args.results, args.commit, args.aggregate_commit), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
        return 0
    if args.check:
        found = stale()
        for item in found:
            print(f"stale: {item}; run `python -m compress_recover.docs`", file=sys.stderr)
        return 1 if found else 0
    for file in write():
        print(f"rewrote {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
