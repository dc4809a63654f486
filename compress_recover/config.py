"""The experiment plan: config.yaml (already schema-validated) turned into the job grid.

Imported by ``rules/common.smk`` while Snakemake builds the DAG, so it imports nothing
heavy (no torch, no transformers). Every check here raises ``ConfigError`` naming the
offending key, before any job starts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from .compress import COMPRESSION
from .compress.widths import check_divisors, checkpoint_widths
from .data.facts import RELATIONS
from .data.perplexity_task import PERPLEXITY_TASK
from .download.download import EMBEDDED_MAX_POSITIONS, EMBEDDED_WIDTHS
from .recover import RECOVERY
from .recover.objective import Objective
from .registry import ConfigError, MethodConfig

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# results/<model>/ beside the pipeline's own entries of results/ (rules/common.smk's paths)
RESERVED_MODEL_NAMES = {"data", "analysis", "figures", "summary.csv", "summary.parquet", "report.html"}
# (recovery folders cannot collide with a compression's own entries: a trained run is always
# <name>.seed<s>, method none always 'none')
SEED_MARK = ".seed"  # a trained recovery's run name is f"{group}{SEED_MARK}{seed}"
STEP_MARK = ".step"  # an intermediate budget checkpoint's run is f"{run}{STEP_MARK}{steps}"
TEXTS = ("corpus", "generated")  # recovery training text: data.text, or written by the uncompressed model
TEXT_SUFFIX = {"corpus": "", "generated": "-gen"}


@dataclass(frozen=True)
class Entry:
    """One compression entry of config.yaml, or one run of a recovery entry.

    A recovery entry that trains runs once per seed of ``recovery.seeds``: each run is an
    Entry whose ``slug`` (the ``{recovery}`` folder) is ``f"{group}.seed{seed}"``;
    ``group`` is the entry's own name (its method's, or ``name``). Method ``none`` trains
    nothing: one Entry, ``slug == group`` and ``seed`` None.
    """

    slug: str
    key: str  # e.g. "compression.methods[1]"
    raw: dict  # the method's own keys (a recovery entry's 'objective' is resolved into ``objective``)
    config: MethodConfig
    objective: Objective | None = None  # recovery entries that train: the effective objective
    group: str = ""  # the entry's name without seed ("" -> slug)
    seed: int | None = None  # the training seed of a recovery run
    text: str = "corpus"  # recovery entries: the training text (TEXTS)
    steps: int | None = None  # recovery runs that train: the optimizer steps of this adapter
    parent: str | None = None  # an intermediate checkpoint: the run whose training saved it

    def __post_init__(self):
        if not self.group:
            object.__setattr__(self, "group", self.slug)

    @property
    def method(self) -> str:
        return self.config.method


@dataclass
class Plan:
    models: dict[str, dict]
    compressions: dict[str, Entry]
    recoveries: dict[str, Entry]
    knowledge_tasks: list[str]
    builtin_tasks: list[str]
    custom_tasks: dict[str, str]  # task -> folder
    recover_base: bool = False
    perplexity_tasks: list[str] = field(default_factory=list)
    custom_knowledge: list[str] = field(default_factory=list)  # custom tasks marked knowledge: true
    seeds: list[int] = field(default_factory=lambda: [0])
    budget_steps: list[int] = field(default_factory=lambda: [60])  # sorted; the last is the final budget
    tasks: list[str] = field(init=False)

    def __post_init__(self):
        self.tasks = [*self.knowledge_tasks, *self.perplexity_tasks, *self.builtin_tasks, *self.custom_tasks]

    def compressions_by_method(self, method: str) -> list[str]:
        return [s for s, e in self.compressions.items() if e.method == method]

    def recoveries_by_method(self, method: str) -> list[str]:
        """The runs of ``method`` that train (intermediate checkpoints are saved by their parent)."""
        return [s for s, e in self.recoveries.items() if e.method == method and e.parent is None]

    def checkpoint_steps(self) -> list[int]:
        """The budget's intermediate steps: each trained run saves one checkpoint at each."""
        return self.budget_steps[:-1]

    def texts_used(self) -> list[str]:
        """The training texts some recovery run uses, in TEXTS order."""
        used = {e.text for e in self.recoveries.values() if e.method != "none"}
        return [t for t in TEXTS if t in used]

    def groups(self) -> dict[str, str]:
        """Recovery entry name (without seed) -> method."""
        return {e.group: e.method for e in self.recoveries.values()}

    def cells(self) -> list[tuple[str, str, str]]:
        """Every (model, compression, recovery run) to evaluate.

        Recovery methods run on compressed models; on the base model only ``none``
        runs, unless ``recovery.recover_base`` asks for the control.
        """
        cells = []
        for model in self.models:
            for comp, centry in self.compressions.items():
                for rec, rentry in self.recoveries.items():
                    if centry.method == "none" and rentry.method != "none" and not self.recover_base:
                        continue
                    cells.append((model, comp, rec))
        return cells

    def task_kind(self, task: str) -> str:
        if task in self.knowledge_tasks or task in self.custom_knowledge:
            return "knowledge"
        if task in self.perplexity_tasks:
            return "perplexity"
        if task in self.custom_tasks:
            return "custom"
        return "builtin"

    def knowledge(self) -> list[str]:
        """Every knowledge task, built (``data.knowledge_tasks``) or custom, in task order."""
        return [t for t in self.tasks if self.task_kind(t) == "knowledge"]


def _entries(registry, raws: list[dict], section: str, objective: Objective | None = None,
             default_text: str = "corpus") -> dict[str, Entry]:
    """Parse a methods list. For recovery (``objective`` given: the config-wide default)
    an entry may override the objective and the training text (``default_text``:
    recovery.text); a non-default one is part of its name (<name>-kd, <name>-gen, <name>-kd-gen)."""
    entries: dict[str, Entry] = {}
    for i, raw in enumerate(raws):
        key = f"{section}[{i}]"
        raw = dict(raw) if isinstance(raw, dict) else raw
        override = raw.pop("objective", None) if isinstance(raw, dict) else None
        text_override = raw.pop("text", None) if isinstance(raw, dict) else None
        cfg = registry.parse(raw, key)
        if objective is not None and cfg.name is not None:
            for mark, what in ((SEED_MARK, "a run's seed (<name>.seed<seed>)"),
                               (STEP_MARK, "a budget checkpoint (<name>.seed<seed>.step<steps>)")):
                if mark in cfg.name:
                    raise ConfigError(f"{key}.name: {cfg.name!r} contains {mark!r}, which marks {what}; "
                                      "choose another name")
        slug = cfg.slug()
        effective, text = None, default_text
        if objective is not None and cfg.method != "none":
            effective = Objective.from_dict(override, f"{key}.objective", base=objective)
            if text_override is not None:
                text = _check_text(text_override, f"{key}.text")
            if cfg.name is None:
                slug += effective.suffix() + TEXT_SUFFIX[text]
        elif override is not None or text_override is not None:
            what = "objective" if override is not None else "text"
            raise ConfigError(f"{key}.{what}: method '{cfg.method}' trains nothing; remove its {what}")
        if slug == "none" and cfg.method != "none":
            raise ConfigError(f"{key}: the name 'none' is reserved for method 'none'")
        if not NAME.match(slug):
            raise ConfigError(f"{key}: derived name {slug!r} is not a lowercase name; set 'name'")
        if slug in entries:
            raise ConfigError(f"{key}: name {slug!r} is already used by {entries[slug].key}; set a distinct 'name'")
        entries[slug] = Entry(slug, key, dict(raw), cfg, effective, text=text if effective else "corpus")
    return entries


def _check_text(text, key: str) -> str:
    if text not in TEXTS:
        raise ConfigError(f"{key}: {text!r} is not one of {list(TEXTS)}")
    return text


def _distinct_ints(values, key: str, minimum: int) -> list[int]:
    """A non-empty list of distinct integers >= ``minimum``; errors name ``key``."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{key}: {values!r} must be a non-empty list of integers")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{key}: {v!r} is not an integer >= {minimum}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}: {values} repeats a value")
    return list(values)


def _check_steps(steps) -> list[int]:
    """recovery.budget.steps: an int or a list of distinct positive ints -> sorted list."""
    return sorted(_distinct_ints(steps if isinstance(steps, list) else [steps], "recovery.budget.steps", 1))


def _check_seeds(seeds) -> list[int]:
    return _distinct_ints(seeds, "recovery.seeds", 0)


def _runs(groups: dict[str, Entry], seeds: list[int], steps: list[int]) -> dict[str, Entry]:
    """Every recovery entry that trains, once per seed (run ``<name>.seed<seed>``, trained to
    the final budget ``steps[-1]``), and its checkpoint at each earlier step of ``steps`` (run
    ``<name>.seed<seed>.step<n>``, saved by that run's training); ``none`` once."""
    runs: dict[str, Entry] = {}
    for name, entry in groups.items():
        if entry.method == "none":  # trains nothing: one run, named as the entry
            runs[name] = replace(entry, group=name, seed=None)
            continue
        for seed in seeds:
            run = f"{name}{SEED_MARK}{seed}"
            runs[run] = replace(entry, slug=run, group=name, seed=seed, steps=steps[-1])
            for n in steps[:-1]:
                runs[f"{run}{STEP_MARK}{n}"] = replace(entry, slug=f"{run}{STEP_MARK}{n}", group=name, seed=seed,
                                                       steps=n, parent=run)
    return runs


class _IgnoreTags(yaml.SafeLoader):
    """lm-eval YAML uses tags such as ``!function``; we only need plain keys."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def _task_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A task YAML's keys, those of its ``include:`` (relative to the YAML) beneath its own."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_IgnoreTags) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"data.task_dirs: {path} is not valid YAML ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); fix or remove the file") from err
    if not isinstance(doc, dict):
        return {}
    include = doc.get("include")
    if isinstance(include, str):
        base = (path.parent / include).resolve()
        if base.is_file() and base not in seen:
            doc = {**_task_yaml(base, (*seen, path.resolve())), **doc}
    return doc


def _tasks_in_folder(folder: Path) -> dict[str, str | None]:
    """Task and group names defined in ``folder`` -> the task's ``output_type`` (lm-eval's
    default ``generate_until`` when unset; None for a group)."""
    names: dict[str, str | None] = {}
    for f in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        doc = _task_yaml(f)
        if isinstance(doc.get("group"), str):
            names.setdefault(doc["group"], None)
        if isinstance(doc.get("task"), str):
            names[doc["task"]] = str(doc.get("output_type") or "generate_until")
    return names


def _check_models(models: dict) -> None:
    for name, spec in models.items():
        key = f"models.{name}"
        if not NAME.match(name):
            raise ConfigError(f"{key}: model names must be lowercase ([a-z0-9._-])")
        if name in RESERVED_MODEL_NAMES:
            raise ConfigError(f"{key}: the model name '{name}' is reserved (results/{name}/ holds shared data)")
        source = spec.get("source")
        if source == "hub" and not (spec.get("id") and spec.get("revision")):
            raise ConfigError(f"{key}: source 'hub' needs 'id' and a pinned 'revision'")
        if source == "hub" and not COMMIT_SHA.match(spec["revision"]) and not spec.get("allow_floating_revision"):
            raise ConfigError(f"{key}.revision: {spec['revision']!r} is not a commit sha (40 hex digits): a branch "
                              f"or tag can change under the same name; pin the commit, or set "
                              f"{key}.allow_floating_revision: true to accept an unreproducible run")
        if source in ("local", "gguf"):
            path = Path(spec.get("path") or "")
            if not spec.get("path"):
                raise ConfigError(f"{key}.path: source '{source}' needs a path")
            if source == "local" and not (path / "config.json").is_file():
                raise ConfigError(f"{key}.path: {path} is not a checkpoint folder (no config.json)")
            if source == "gguf" and not path.is_file():
                raise ConfigError(f"{key}.path: GGUF file {path} does not exist")


def known_widths(spec: dict) -> dict[str, int]:
    """Input widths of a model's linear layers when knowable before download, else {}."""
    if spec["source"] == "embedded":
        return dict(EMBEDDED_WIDTHS)
    if spec["source"] == "local":
        return checkpoint_widths(spec["path"])
    return {}  # hub and GGUF models: checked by the compress job before any work


def known_max_positions(spec: dict) -> int | None:
    """A model's context length when knowable before download (embedded, local), else None."""
    if spec["source"] == "embedded":
        return EMBEDDED_MAX_POSITIONS
    if spec["source"] == "local":
        value = json.loads((Path(spec["path"]) / "config.json").read_text()).get("max_position_embeddings")
        return value if isinstance(value, int) else None
    return None


def _check_prompt_positions(models: dict, recoveries: dict[str, Entry], seq_len: int) -> None:
    """Input-side prompts and a training block must fit the model's context."""
    for model, spec in models.items():
        limit = known_max_positions(spec)
        if limit is None:
            continue
        for entry in recoveries.values():
            field_name, positions = entry.config.prompt_positions()
            if positions and positions + seq_len > limit:
                raise ConfigError(f"{entry.key}.{field_name}: {positions} prompt positions + {seq_len} tokens of a "
                                  f"training block (recovery.budget.seq_len) exceed model '{model}''s context of "
                                  f"{limit} positions")


def _check_widths(models: dict, compressions: dict[str, Entry]) -> None:
    """A group size or N:M's M must divide every linear layer's input width."""
    for model, spec in models.items():
        widths = known_widths(spec)
        for entry in compressions.values():
            check_divisors(model, widths, entry.config, entry.key)


# report.<key>: (lowest, lowest allowed, highest, highest allowed); the schema says the
# same, but a YAML .nan or .inf passes a JSON-schema range check.
REPORT_RANGES = {
    "alpha": (0, False, 1, False),
    "min_recovery_fraction": (0, False, 1, True),
    "noninferiority_margin": (0, True, 1, False),
    "power": (0, False, 1, False),
    "min_damage": (0, False, 1, False),
}


def _check_report(report: dict) -> None:
    for name, (low, low_ok, high, high_ok) in REPORT_RANGES.items():
        if name not in report:
            continue
        value = report[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"report.{name}: {value!r} must be a finite number")
        if value < low or (value == low and not low_ok) or value > high or (value == high and not high_ok):
            raise ConfigError(f"report.{name}: {value} must be in {'[' if low_ok else '('}{low}, "
                              f"{high}{']' if high_ok else ')'}")


def _check_finite(value, key: str = "") -> None:
    """Every number of the config finite: a YAML .nan passes every range check of the schema
    (NaN compares false) and .inf passes every lower bound."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} must be a finite number")


def build_plan(config: dict) -> Plan:
    """Check the semantics the schema cannot express and return the job grid."""
    _check_finite(config)
    models = config["models"]
    _check_models(models)
    data = config["data"]
    unknown = [t for t in data["knowledge_tasks"] if t not in RELATIONS]
    if unknown:
        raise ConfigError(f"data.knowledge_tasks: unknown task(s) {unknown}; known: {sorted(RELATIONS)}")
    custom: dict[str, str] = {}
    custom_knowledge: list[str] = []
    for i, entry in enumerate(data["task_dirs"]):
        folder = Path(entry["path"])
        key = f"data.task_dirs[{i}]"
        if not folder.is_dir():
            raise ConfigError(f"{key}.path: task folder {folder} does not exist")
        found = _tasks_in_folder(folder)
        for task in entry["tasks"]:
            if task not in found:
                raise ConfigError(f"{key}.tasks: task '{task}' is not defined by any YAML in {folder} "
                                  f"(found: {sorted(found)})")
            if entry.get("knowledge", False):
                # the knowledge statistics pair per-question correctness (acc): multiple choice only
                if found[task] != "multiple_choice":
                    what = "a group" if found[task] is None else f"output_type {found[task]!r}"
                    raise ConfigError(f"{key}.knowledge: task '{task}' is {what}; a knowledge task must be "
                                      f"a multiple_choice task (or set knowledge: false)")
                custom_knowledge.append(task)
            custom[task] = str(folder)
    seen: dict[str, str] = {PERPLEXITY_TASK: "data.perplexity"} if data["perplexity"] else {}
    for kind, names in (("data.knowledge_tasks", data["knowledge_tasks"]), ("data.lm_eval_tasks",
                        data["lm_eval_tasks"]), ("data.task_dirs", list(custom))):
        for task in names:
            if task in seen:
                raise ConfigError(f"{kind}: task '{task}' is also listed in {seen[task]}")
            seen[task] = kind
    if not seen:
        raise ConfigError("data: no evaluation task; list knowledge_tasks, lm_eval_tasks or task_dirs")
    report = config.get("report", {})
    _check_report(report)
    if report.get("attention_analysis") and report.get("attention_task") not in data["knowledge_tasks"]:
        raise ConfigError(f"report.attention_task: {report.get('attention_task')!r} is not one of "
                          f"data.knowledge_tasks {data['knowledge_tasks']} (or set report.attention_analysis: false)")
    compressions = _entries(COMPRESSION, config["compression"]["methods"], "compression.methods")
    objective = Objective.from_dict(config["recovery"].get("objective"), "recovery.objective")
    seeds = _check_seeds(config["recovery"].get("seeds", [0]))
    steps = _check_steps(config["recovery"].get("budget", {}).get("steps", 60))
    default_text = _check_text(config["recovery"].get("text", "corpus"), "recovery.text")
    groups = _entries(RECOVERY, config["recovery"]["methods"], "recovery.methods", objective, default_text)
    _check_split(data.get("split", {}), [*data["knowledge_tasks"], *custom_knowledge])
    _check_widths(models, compressions)
    _check_grid(compressions, groups)
    _check_prompt_positions(models, groups, config["recovery"]["budget"]["seq_len"])
    _check_corpus(data)
    return Plan(models=models, compressions=compressions, recoveries=_runs(groups, seeds, steps),
                knowledge_tasks=list(data["knowledge_tasks"]), builtin_tasks=list(data["lm_eval_tasks"]),
                custom_tasks=custom, recover_base=config["recovery"]["recover_base"],
                perplexity_tasks=[PERPLEXITY_TASK] if data["perplexity"] else [],
                custom_knowledge=custom_knowledge, seeds=seeds, budget_steps=steps)


def _check_corpus(data: dict) -> None:
    text = data["text"]
    if text["corpus"] == "file" and not (text.get("path") and Path(text["path"]).is_file()):
        raise ConfigError(f"data.text.path: corpus 'file' needs an existing text file, got {text.get('path')!r}")
    if data["perplexity"] and not text["heldout_fraction"] > 0:
        raise ConfigError(f"data.text.heldout_fraction: {text['heldout_fraction']} holds out no text for "
                          "data.perplexity: true; set a fraction > 0 or data.perplexity: false")


def _check_grid(compressions: dict[str, Entry], recoveries: dict[str, Entry]) -> None:
    """The verdict compares the base model, a compressed one, and that one recovered: each
    list needs its 'none' and something else."""
    for section, entries, other in (("compression.methods", compressions, f"one of {COMPRESSION.names()}"),
                                    ("recovery.methods", recoveries, f"one of {RECOVERY.names()}")):
        methods = [e.method for e in entries.values()]
        if "none" not in methods:
            raise ConfigError(f"{section}: add {{method: none}}: the verdict compares every "
                              f"{section.split('.')[0]} with none")
        if all(m == "none" for m in methods):
            raise ConfigError(f"{section}: only 'none' is listed, so there is nothing to compare; add {other}")


def _check_split(split: dict, knowledge_tasks: list[str]) -> None:
    fraction = split.get("dev_fraction", 0.25)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            math.isfinite(fraction) and 0 <= fraction < 1):
        raise ConfigError(f"data.split.dev_fraction: {fraction!r} must be a finite number in [0, 1)")
    unknown = [t for t in split.get("held_out_tasks", []) if t not in knowledge_tasks]
    if unknown:
        raise ConfigError(f"data.split.held_out_tasks: {unknown} are not among data.knowledge_tasks "
                          f"{knowledge_tasks}")
    if knowledge_tasks and set(split.get("held_out_tasks", [])) >= set(knowledge_tasks) and fraction > 0:
        raise ConfigError("data.split.held_out_tasks: every knowledge task is held out, so nothing is left to "
                          "choose on (dev); hold out fewer tasks or set dev_fraction: 0")


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares a job's params with those of its last run as written, key order
    included: canonical params keep a reordered config.yaml from rerunning anything.
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def choice_regex(names) -> str:
    """A wildcard constraint that matches exactly the given names."""
    names = sorted(set(names))
    return "|".join(re.escape(n) for n in names) if names else "(?!)"
