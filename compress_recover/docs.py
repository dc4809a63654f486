"""The generated parts of the documentation, and the check that they are current.

- ``docs/configuration.md``: every key of ``compress_recover/schema/config.schema.yaml``
  (path, type, default, description) with config.yaml's value beside the default;
- ``docs/results/snapshot.json``: the headline numbers of a finished run, read from its
  ``results/`` folder (:func:`snapshot`), with the commit it ran at and its seeds;
- the results tables of ``README.md`` and ``docs/results.md``, rendered from that snapshot.

Each generated part sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``.

    python -m compress_recover.docs            # rewrite the generated parts
    python -m compress_recover.docs --check    # exit 1 when one is stale
    python -m compress_recover.docs snapshot RESULTS_DIR --commit SHA   # write the snapshot

Imports nothing heavy and no stage: it reads YAML, CSV and JSON.
"""

from __future__ import annotations

import argparse
import csv
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
BASE = "none"  # the uncompressed model's compression folder and the no-recovery run
POOLED = "all_knowledge"  # the analysis's pooled knowledge task
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


# ---------------------------------------------------------------- the results snapshot

def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _num(text: str):
    if text in ("", None):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


TOP_ANSWERS = 5


def _anatomy(analysis: Path) -> dict:
    """Per (model, compression): the pre-specified loss model's popularity term, the loss
    rate per quartile of popularity and of base confidence (all tasks), and the answers the
    compressed model gave most often to the questions it lost; {} for a run written before
    the anatomy existed."""
    if not (analysis / "loss_model.csv").is_file():
        return {}
    out: dict = {}
    for r in _rows(analysis / "loss_model.csv"):
        if r["status"] == "pre-specified":
            out.setdefault(r["model"], {}).setdefault(r["compression"], {})["loss_model"] = {
                "term": r["term"], "coef": _num(r["coef"]), "ci_95": [_num(r["ci_low"]), _num(r["ci_high"])],
                "p_value": _num(r["p_value"]), "n": int(r["n"]), "events": int(r["events"]), "note": r["note"]}
    for r in _rows(analysis / "loss_anatomy.csv"):
        if r["task"] == "all" and r["outcome"] == "lost":
            rates = out.setdefault(r["model"], {}).setdefault(r["compression"], {}).setdefault(
                "lost_rate", {}).setdefault(r["axis"], [])
            rates.append({"quartile": int(r["bin"]), "rate": _num(r["rate"]), "n": int(r["n"]),
                          "ci_95": [_num(r["ci_low"]), _num(r["ci_high"])]})
    answers: dict = {}
    for r in _rows(analysis / "transitions.csv"):
        key = (r["model"], r["compression"], r["task"], r["compressed_answer"])
        answers[key] = answers.get(key, 0) + int(r["count"])
    for (model, comp, task, answer), count in sorted(answers.items(), key=lambda kv: (-kv[1], kv[0])):
        top = out.setdefault(model, {}).setdefault(comp, {}).setdefault("top_wrong_answers", [])
        if len(top) < TOP_ANSWERS:
            top.append({"task": task, "answer": answer, "lost_questions": count})
    return out


def snapshot(results: Path, commit: str, aggregate_commit: str | None = None) -> dict:
    """The headline numbers of a finished run, from ``results/``: pooled test accuracy of
    every model, each remedy's recovery fractions and decision, the verdicts, held-out
    perplexity and extra parameters, with the commit and the seeds."""
    results = Path(results)
    analysis = results / "analysis"
    verdict = json.loads((analysis / "verdict.json").read_text())
    text_manifest = results / "data" / "text" / "manifest.json"
    run_seed = json.loads(text_manifest.read_text()).get("seed") if text_manifest.is_file() else None
    split = verdict["split"]
    counts = split["counts"]
    out = {
        "commit": commit,
        "what": "headline numbers of one run, written by `python -m compress_recover.docs snapshot`",
        "seeds": {"seed": run_seed, "data.split.seed": split["seed"], "recovery.seeds": verdict["seeds"]},
        "budget": verdict["budget"],
        "thresholds": verdict["thresholds"],
        "questions": {"dev": sum(c["dev"] for c in counts.values()), "test": sum(c["test"] for c in counts.values()),
                      "per_task": counts},
        "sides": verdict["sides"],
        "trained": verdict["trained"],
        "models": {},
    }
    summary = _rows(results / "summary.csv")
    for row in _rows(analysis / "accuracy.csv"):
        if row["task"] != POOLED:
            continue
        model = out["models"].setdefault(row["model"], {"accuracy": {}, "n": int(row["n"]), "remedies": {},
                                                        "verdicts": {}, "perplexity": {}, "extra_params": {}})
        model["accuracy"].setdefault(row["compression"], {})[row["recovery"]] = _num(row["acc"])
        model["seeds_per_run"] = max(model.get("seeds_per_run", 0), int(row["seeds"]))
    fractions = {(r["model"], r["compression"], r["recovery"]): r
                 for r in _rows(analysis / "recovery_fraction.csv") if r["task"] == POOLED}
    for d in _rows(analysis / "decisions.csv"):
        f = fractions.get((d["model"], d["compression"], d["recovery"]), {})
        out["models"][d["model"]]["remedies"].setdefault(d["compression"], {})[d["recovery"]] = {
            "side": d["side"], "trained": d["trained"] == "True", "runs": d["runs"],
            "accuracy": _num(d["recovered_acc"]), "raw_f": _num(d["recovery_fraction"]),
            "raw_f_95": [_num(f.get("ci_low", "")), _num(f.get("ci_high", ""))],
            "control_gain": _num(d["control_gain"]), "controlled_f": _num(d["controlled_fraction"]),
            "controlled_f_95": [_num(f.get("controlled_ci_low", "")), _num(f.get("controlled_ci_high", ""))],
            "raw_f_holm": [_num(d["raw_ci_low"]), _num(d["raw_ci_high"])], "holm_level": _num(d["holm_level"]),
            "family_size": _num(d["family_size"]), "decision": d["decision"]}
    for v in verdict["verdicts"]:
        out["models"][v["model"]]["verdicts"][v["compression"]] = v["verdict"]
    for row in summary:
        model = out["models"].get(row["model"])
        if model is None:
            continue
        model["base_precision"] = row["base_precision"]
        if ".step" in row["run"]:  # a budget curve's earlier checkpoint: the headline is the final budget
            continue
        if row["metric"] == "word_perplexity":
            model["perplexity"].setdefault(row["compression"], {})[row["recovery"]] = _num(row["value"])
        if row["extra_params"] != "":
            model["extra_params"].setdefault(row["compression"], {})[row["recovery"]] = _num(row["extra_params"])
    for name, anatomy in _anatomy(analysis).items():
        if name in out["models"]:
            out["models"][name]["anatomy"] = anatomy
    if aggregate_commit:
        out["aggregate_commit"] = aggregate_commit
    return out


# ---------------------------------------------------------------- results tables

def _fmt(value, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}".replace("-", "−")


def _interval(value, bounds, digits: int = 2) -> str:
    if value is None:
        return "—"
    low, high = bounds
    return f"{_fmt(value, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _compressions(model: dict) -> list[str]:
    return [c for c in model["accuracy"] if c != BASE]


def _remedies(model: dict) -> list[str]:
    names = [r for c in _compressions(model) for r in model["accuracy"][c]]
    return [BASE, *sorted(dict.fromkeys(r for r in names if r != BASE), key=lambda r: (*_kind(model, r), r))]


def _kind(model: dict, remedy: str) -> tuple[str, bool]:
    """(side, trained) of a remedy: parameter side first, trained first."""
    for per in model["remedies"].values():
        if remedy in per:
            return per[remedy]["side"] != "parameters", not per[remedy]["trained"]
    return True, True


def model_side(model: dict, remedy: str) -> str:
    for per in model["remedies"].values():
        if remedy in per:
            side = per[remedy]["side"]
            return f"{side}, {'trained' if per[remedy]['trained'] else 'training-free'}"
    return ""


def _caption(snap: dict, name: str, model: dict) -> list[str]:
    seeds, q = snap["seeds"], snap["questions"]
    family = next((r["family_size"] for per in model["remedies"].values() for r in per.values()), None)
    budget = snap["budget"]
    many = len(seeds["recovery.seeds"])
    per_method = "one seed per trained method, so each trained row is one trained adapter, not the method" \
        if many == 1 else f"{many} seeds per trained method" + (
            ", so each trained row is about the adapters trained, not the method" if many < 3 else "")
    return [f"Model `{name}`; base = {model['base_precision']} (every compression compresses that model "
            f"further). Commit {snap['commit']}; seeds: `seed` {seeds['seed']}, `data.split.seed` "
            f"{seeds['data.split.seed']}, `recovery.seeds` {_flow(seeds['recovery.seeds'])}: "
            f"{per_method}. Pooled test questions: {q['test']} (dev: {q['dev']}). Training budget "
            f"{budget['steps']} steps × {budget['batch_size']} × {budget['seq_len']} tokens. Holm family: "
            f"{family} claims at α = {snap['thresholds']['alpha']}."]


def render_results_readme(snap: dict) -> str:
    """One table: every remedy's pooled test accuracy and raw recovery fraction per compression."""
    lines = []
    for name, model in snap["models"].items():
        comps = _compressions(model)
        head = ["remedy (side)"]
        for c in comps:
            head += [f"`{c}` accuracy", f"`{c}` raw F [Holm interval], decision"]
        head.append("on the base (format control)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for remedy in _remedies(model):
            label = "none: the model as compressed (last column: the uncompressed base)" if remedy == BASE else \
                f"`{remedy}` ({model_side(model, remedy)})"
            cells = [label]
            for c in comps:
                r = model["remedies"].get(c, {}).get(remedy)
                cells.append(_fmt(model["accuracy"][c].get(remedy), 3))
                cells.append("" if r is None else f"{_interval(r['raw_f'], r['raw_f_holm'])} {r['decision']}")
            cells.append(_fmt(model["accuracy"][BASE].get(remedy), 3))
            lines.append("| " + " | ".join(cells) + " |")
        verdicts = "; ".join(f"`{c}`: **{v}**" for c, v in model["verdicts"].items())
        lines += ["", *_caption(snap, name, model), "",
                  "F = (remedy − compressed) / (base − compressed), on the same questions; a remedy *fails* when the "
                  f"upper end of its raw F's Holm interval is below {snap['thresholds']['min_recovery_fraction']}. "
                  f"Verdicts: {verdicts}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_results_doc(snap: dict) -> str:
    """The results reference: accuracy, recovery fractions and decisions, perplexity."""
    lines = []
    for name, model in snap["models"].items():
        comps, remedies = [BASE, *_compressions(model)], _remedies(model)
        lines += [f"### Pooled test accuracy, `{name}`", "", *_caption(snap, name, model), "",
                  "| compression | " + " | ".join(f"`{r}`" for r in remedies) + " |",
                  "|" + "---|" * (len(remedies) + 1)]
        for c in comps:
            lines.append(f"| `{c}` | " + " | ".join(_fmt(model["accuracy"][c].get(r), 3) for r in remedies) + " |")
        lines += ["", "(Row `none`: the uncompressed base model, as is and after each remedy: the format control.)",
                  "", f"### Recovery fractions and decisions, `{name}`", "",
                  "Raw F and control-subtracted F_c with their 95% two-level bootstrap intervals (descriptive); the "
                  "raw F's interval at its Holm level, which the decision reads.", "",
                  "| compression, remedy | side | extra parameters | raw F [95%] | control gain | F_c [95%] "
                  "| raw F [Holm] | Holm level | decision |", "|---|---|---|---|---|---|---|---|---|"]
        for c in comps[1:]:
            for remedy, r in model["remedies"].get(c, {}).items():
                params = model["extra_params"].get(c, {}).get(remedy)
                lines.append(f"| `{c}`, `{remedy}` | {model_side(model, remedy)} | "
                             f"{'—' if params is None else f'{params:,}'} | {_interval(r['raw_f'], r['raw_f_95'])} | "
                             f"{_fmt(r['control_gain'], 3)} | {_interval(r['controlled_f'], r['controlled_f_95'])} | "
                             f"{_interval(r['raw_f'], r['raw_f_holm'])} | {_fmt(r['holm_level'], 4)} | "
                             f"{r['decision']} |")
        lines += ["", "Verdicts: " + "; ".join(f"`{c}`: **{v}**" for c, v in model["verdicts"].items()) + ".", "",
                  f"### Held-out word perplexity, `{name}`", "",
                  "| compression | " + " | ".join(f"`{r}`" for r in remedies) + " |",
                  "|" + "---|" * (len(remedies) + 1)]
        for c in comps:
            lines.append(f"| `{c}` | " + " | ".join(_fmt(model["perplexity"].get(c, {}).get(r), 1)
                                                     for r in remedies) + " |")
        lines.append("")
        lines += _anatomy_lines(snap, name, model)
    return "\n".join(lines).rstrip() + "\n"


def _anatomy_lines(snap: dict, name: str, model: dict) -> list[str]:
    """Which facts were lost: the pre-specified test, the loss rate per quartile and the
    compressed model's most frequent wrong answers."""
    anatomy = model.get("anatomy")
    if not anatomy:
        return []
    where = f" (the analysis re-run at {snap['aggregate_commit']} on the same evaluations)" \
        if snap.get("aggregate_commit") else ""
    lines = [f"### Which facts were lost, `{name}`", "",
             f"Test questions the base model answered right{where}. Pre-specified: a logistic regression of lost on "
             "the question's popularity percentile within its relation and the base model's confidence (relation "
             "fixed effects, standard errors clustered by fact); the popularity term's log-odds per unit "
             "(least → most popular) and its 95% interval. The rest is descriptive.", "",
             "| compression | lost / at risk | popularity log-odds [95%], p | lost by popularity quartile (Q1 least) "
             "| lost by base-confidence quartile (Q1 least) | most frequent wrong answers (lost questions) |",
             "|---|---|---|---|---|---|"]
    for comp, a in anatomy.items():
        m = a.get("loss_model", {})
        test = m.get("note") or f"{_interval(m.get('coef'), m.get('ci_95', [None, None]))}, p = {_fmt(m.get('p_value'), 2)}"
        rates = {axis: " / ".join(_fmt(q["rate"], 2) for q in sorted(qs, key=lambda q: q["quartile"]))
                 for axis, qs in a.get("lost_rate", {}).items()}
        answers = ", ".join(f"{w['answer']} ({w['task']}, {w['lost_questions']})" for w in a.get("top_wrong_answers", []))
        lines.append(f"| `{comp}` | {m.get('events', '')} / {m.get('n', '')} | {test} | {rates.get('popularity', '')} "
                     f"| {rates.get('base confidence', '')} | {answers} |")
    return [*lines, ""]


# ---------------------------------------------------------------- blocks, check, CLI

def read_snapshot(path: Path = SNAPSHOT) -> dict:
    return json.loads(path.read_text())


GENERATED: dict[tuple[str, str], Callable[[], str]] = {
    ("docs/configuration.md", "configuration"): lambda: render_configuration(load_yaml(SCHEMA), load_yaml(CONFIG)),
    ("README.md", "results"): lambda: render_results_readme(read_snapshot()),
    ("docs/results.md", "results"): lambda: render_results_doc(read_snapshot()),
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
