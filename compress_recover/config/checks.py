"""The semantic checks of config.yaml that its schema cannot express, each raising a ConfigError that names the key.

The schema (``compress_recover/schema/config.schema.yaml``) checks shapes, types and ranges
while Snakemake reads the config; these checks run after it, in :func:`..plan.build_plan`,
before any job starts: finite numbers, model sources and names, task folders and task
names, the grid's comparisons, layer widths, context lengths, seeds and budget steps, the
dev/test split, the demonstrations its dev questions allow and the report's thresholds. A
method's own checks against the plan are its config's ``check_plan``.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..compress import COMPRESSION
from ..compress.widths import check_divisors, checkpoint_widths
from ..data.facts import RELATIONS
from ..data.perplexity_task import PERPLEXITY_TASK
from ..download.download import EMBEDDED_WIDTHS
from ..data.content_free import MASKED_FIELDS
from ..data.content_free_task import variant_source
from ..data.task_yaml import DEMONSTRATION_HINT, tasks_in_folder, tasks_without_demonstrations
from ..recover import RECOVERY
from ..registry import ConfigError
from ..runs import BASE, COMMIT_SHA
from .entries import NAME, Entry

# results/<model>/ beside the pipeline's own entries of results/ (rules/paths.smk)
RESERVED_MODEL_NAMES = {"data", "analysis", "figures", "summary.csv", "summary.parquet", "report.html"}
# (recovery folders cannot collide with a compression's own entries: a trained run is always
# <name>.seed<s>, method none always 'none')

# report.<key>: (lowest, lowest allowed, highest, highest allowed); the schema says the
# same, but a YAML .nan or .inf passes a JSON-schema range check.
REPORT_RANGES = {
    "alpha": (0, False, 1, False),
    "min_recovery_fraction": (0, False, 1, True),
    "noninferiority_margin": (0, True, 1, False),
    "power": (0, False, 1, False),
    "min_damage": (0, False, 1, False),
}


def check_finite(value, key: str = "") -> None:
    """Every number of the config finite: a YAML .nan passes every range check of the schema
    (NaN compares false) and .inf passes every lower bound."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{key}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} must be a finite number")


def check_models(models: dict) -> None:
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


def check_knowledge_tasks(data: dict) -> None:
    unknown = [t for t in data["knowledge_tasks"] if t not in RELATIONS]
    if unknown:
        raise ConfigError(f"data.knowledge_tasks: unknown task(s) {unknown}; known: {sorted(RELATIONS)}")


def check_task_dirs(task_dirs: list[dict]) -> tuple[dict[str, str], list[str]]:
    """The user's task folders (data.task_dirs): each listed task defined by a YAML there, a
    knowledge task a multiple_choice one. Returns task -> folder, and the knowledge tasks."""
    custom: dict[str, str] = {}
    custom_knowledge: list[str] = []
    for i, entry in enumerate(task_dirs):
        folder = Path(entry["path"])
        key = f"data.task_dirs[{i}]"
        if not folder.is_dir():
            raise ConfigError(f"{key}.path: task folder {folder} does not exist")
        found = tasks_in_folder(folder)
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
    return custom, custom_knowledge


def check_content_free_tasks(task_dirs: list[dict], mask: str | None) -> dict[str, dict]:
    """The user's knowledge tasks that get a content-free variant (an entry's
    ``subject_field``; none without data.content_free_mask) -> ``subject_field`` and
    ``masked_fields``. The field asks for ``knowledge: true``, and each task must be one the
    variant can include (:func:`compress_recover.data.content_free_task.variant_source`)."""
    found: dict[str, dict] = {}
    for i, entry in enumerate(task_dirs):
        if entry.get("subject_field") is None:
            continue
        if not entry.get("knowledge", False):
            raise ConfigError(f"data.task_dirs[{i}].subject_field: the content-free baseline pairs with knowledge "
                              "questions; set knowledge: true on the entry, or drop subject_field")
        if mask is None:
            continue
        for task in entry["tasks"]:
            try:
                variant_source(entry["path"], task, list(entry.get("masked_fields") or MASKED_FIELDS))
            except ConfigError as err:
                raise ConfigError(f"data.task_dirs[{i}].subject_field: {err}") from err
            found[task] = {"subject_field": entry["subject_field"],
                           "masked_fields": list(entry.get("masked_fields") or MASKED_FIELDS)}
    return found


def check_demonstrations(task_dirs: list[dict], shots: int) -> None:
    """With ``shots`` > 0 (a few-shot run's k, or evaluation.num_fewshot), every task of a
    user's folder that is scored with a context must name where its demonstrations come from
    (a split other than the scored one), before any job runs."""
    if shots <= 0:
        return
    for i, entry in enumerate(task_dirs):
        missing = sorted(set(entry["tasks"]) & set(tasks_without_demonstrations(Path(entry["path"]))))
        if missing:
            raise ConfigError(f"data.task_dirs[{i}]: task(s) {missing} name no split to draw {shots}-shot "
                              "demonstrations from (a few-shot run or evaluation.num_fewshot asks for them); "
                              f"{DEMONSTRATION_HINT}, or drop the few-shot run")


def check_demonstration_pools(plan) -> None:
    """evaluation.num_fewshot against the demonstrations the built knowledge tasks' dev
    questions allow each question (:meth:`..plan.Plan.demonstration_limit`, exact before any
    job); a method's own demonstrations are its entry's check (``check_plan``)."""
    limit = plan.demonstration_limit() if plan.num_fewshot > 0 else None
    if limit is not None and plan.num_fewshot > limit[0]:
        raise ConfigError(f"evaluation.num_fewshot: {plan.num_fewshot} demonstrations per question, but {limit[1]}; "
                          f"the most allowed is {limit[0]}: lower it, raise data.split.dev_fraction, or set "
                          "evaluation.num_fewshot: 0")


def check_format_control(knowledge_tasks: list[str], control_shots: int) -> None:
    """A few-shot format control (few-shot on the uncompressed model, recovery.recover_base)
    draws its demonstrations from another built relation that asks none of the task's facts
    (:mod:`compress_recover.data.fewshot_task`); refuse, before any job runs, a task list
    that leaves a task without one."""
    if control_shots <= 0:
        return
    from ..data.facts import sharing_relations

    sharing = sharing_relations(knowledge_tasks)
    for task in knowledge_tasks:
        if not [t for t in knowledge_tasks if t != task and t not in sharing.get(task, set())]:
            shares = f" ({', '.join(sorted(sharing[task]))} asks some of its facts)" if sharing.get(task) else ""
            raise ConfigError(f"recovery.recover_base: the few-shot format control of task {task} draws its "
                              f"demonstrations from another relation of data.knowledge_tasks that asks none of its "
                              f"facts, and there is none{shares}; add one (e.g. currencies) or set "
                              "recovery.recover_base: false")


def check_task_names(data: dict, custom: dict[str, str]) -> None:
    """Each task listed once (built, lm-eval or custom), and at least one task."""
    seen: dict[str, str] = {PERPLEXITY_TASK: "data.perplexity"} if data["perplexity"] else {}
    for kind, names in (("data.knowledge_tasks", data["knowledge_tasks"]), ("data.lm_eval_tasks",
                        data["lm_eval_tasks"]), ("data.task_dirs", list(custom))):
        for task in names:
            if task in seen:
                raise ConfigError(f"{kind}: task '{task}' is also listed in {seen[task]}")
            seen[task] = kind
    if not seen:
        raise ConfigError("data: no evaluation task; list knowledge_tasks, lm_eval_tasks or task_dirs")


def check_report(report: dict) -> None:
    for name, (low, low_ok, high, high_ok) in REPORT_RANGES.items():
        if name not in report:
            continue
        value = report[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"report.{name}: {value!r} must be a finite number")
        if value < low or (value == low and not low_ok) or value > high or (value == high and not high_ok):
            raise ConfigError(f"report.{name}: {value} must be in {'[' if low_ok else '('}{low}, "
                              f"{high}{']' if high_ok else ')'}")


def check_attention_task(report: dict, knowledge_tasks: list[str]) -> None:
    if report.get("attention_analysis") and report.get("attention_task") not in knowledge_tasks:
        raise ConfigError(f"report.attention_task: {report.get('attention_task')!r} is not one of "
                          f"data.knowledge_tasks {knowledge_tasks} (or set report.attention_analysis: false)")


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


def check_steps(steps) -> list[int]:
    """recovery.budget.steps: an int or a list of distinct positive ints in increasing order
    -> the list. One spelling per budget: the recover jobs' params carry the list as written
    (:func:`.rule_values.canonical` keeps a list's order), so a reordered list would rerun
    every one of them for the same results; an unsorted list is refused, not sorted."""
    values = _distinct_ints(steps if isinstance(steps, list) else [steps], "recovery.budget.steps", 1)
    if values != sorted(values):
        raise ConfigError(f"recovery.budget.steps: {values} is not in increasing order; write {sorted(values)} (each "
                          "run trains once, to the largest, and saves a checkpoint at every other step whatever the "
                          "order, so the list is written one way only)")
    return values


def check_seeds(seeds) -> list[int]:
    return _distinct_ints(seeds, "recovery.seeds", 0)


def check_split(split: dict, knowledge_tasks: list[str]) -> None:
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


def known_widths(spec: dict) -> dict[str, int]:
    """Input widths of a model's linear layers when knowable before download, else {}."""
    if spec["source"] == "embedded":
        return dict(EMBEDDED_WIDTHS)
    if spec["source"] == "local":
        return checkpoint_widths(spec["path"])
    return {}  # hub and GGUF models: checked by the compress job before any work


def check_widths(models: dict, compressions: dict[str, Entry]) -> None:
    """A group size or N:M's M must divide every linear layer's input width."""
    for model, spec in models.items():
        widths = known_widths(spec)
        for entry in compressions.values():
            if entry.model in (None, model):
                check_divisors(model, widths, entry.config, entry.key)


def check_grid(compressions: dict[str, Entry], recoveries: dict[str, Entry]) -> None:
    """The verdict compares the base model, a compressed one, and that one recovered: each
    list needs its 'none' and something else."""
    for section, entries, other in (("compression.methods", compressions, f"one of {COMPRESSION.names()}"),
                                    ("recovery.methods", recoveries, f"one of {RECOVERY.names()}")):
        # a model's own compressions (models.<name>.compressions) count as something else
        methods = [e.method for e in entries.values()]
        if BASE not in methods:
            raise ConfigError(f"{section}: add {{method: {BASE}}}: the verdict compares every "
                              f"{section.split('.')[0]} with {BASE}")
        if all(m == BASE for m in methods):
            raise ConfigError(f"{section}: only '{BASE}' is listed, so there is nothing to compare; add {other}")


NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)
# The longest suffix a name gets in a file name under results/ or logs/.
SUFFIXES = {"model": "", "compression": "", "run": ".benchmark.tsv", "task": ".samples.jsonl"}


def check_names(plan) -> None:
    """Every model, compression, recovery run and task name fits in one path component
    (with the longest suffix it gets) and is not a piece repeated 20 times; the error names
    the config key."""
    names = [(f"models.{m}", m, SUFFIXES["model"]) for m in plan.models]
    names += [(e.key, slug, SUFFIXES["compression"]) for slug, e in plan.compressions.items()]
    names += [(e.key, run, SUFFIXES["run"]) for run, e in plan.recoveries.items()]
    names += [("data", t, SUFFIXES["task"]) for t in plan.evaluated_tasks()]
    taken = sorted(set(plan.content_free()) & set(plan.tasks))
    if taken:
        raise ConfigError(f"data.task_dirs: task {taken[0]!r} has the name of task {plan.content_free()[taken[0]]!r}'s "
                          "content-free variant (data.content_free_mask); rename it, or set data.content_free_mask: "
                          "null")
    for key, name, suffix in names:
        size = len((name + suffix).encode())
        if size > NAME_MAX:
            raise ConfigError(f"{key}: the name {name[:40]!r}... makes a file name of {size} bytes with its "
                              f"suffix {suffix!r} (the filesystem's limit is {NAME_MAX}); shorten it by at least "
                              f"{size - NAME_MAX} bytes")
        piece = periodic(name)
        if piece is not None:
            raise ConfigError(f"{key}: the name {name[:40]!r}{'...' if len(name) > 40 else ''} ends in one piece "
                              f"repeated 20 times or more ({piece[:20]!r}); Snakemake takes such a value for a rule "
                              "feeding itself and would skip its jobs without an error: rename it")


def periodic(name: str) -> str | None:
    """The repeated piece Snakemake's own detector finds in a wildcard value (it refuses
    such a value with PeriodicWildcardError and plans nothing for it), else None."""
    from snakemake.io import PeriodicityDetector

    return PeriodicityDetector().is_periodic(name)


def check_runtime(config: dict) -> None:
    """Half precision on a CPU: refused where the plan knows the device."""
    if config.get("device") == "cpu" and config.get("dtype") == "float16":
        raise ConfigError("dtype: float16 on device: cpu is slow or unsupported in many CPU kernels; use "
                          "bfloat16 (fast on CPUs with bf16 matrix units) or float32")


def check_shapes(models: dict, compressions: dict[str, Entry], recoveries: dict[str, Entry],
                 report: dict) -> None:
    """Every value that depends on the model (a low-rank adapter's rank against the target
    layers' widths, a prompt pool's selection layers against the layer count) and every
    method that walks a Llama-style decoder (its config's ``check_shape``; the attention
    analysis too), against each
    model whose shape is known before download; the others are checked by the job that reads
    their checkpoint, before any work."""
    from ..shape import known_shape, llama_like

    for model, spec in models.items():
        shape = known_shape(spec)
        if shape is None:
            continue
        for entry in [*compressions.values(), *recoveries.values()]:
            if getattr(entry, "model", None) in (None, model):
                entry.config.check_shape(entry.key, model, shape)
        if report.get("attention_analysis") and not llama_like(shape):
            raise ConfigError(f"report.attention_analysis: the attention analysis walks a Llama-style decoder "
                              f"(model.model.layers); model '{model}' is '{shape.model_type}': set it to false")


def check_prompt_positions(models: dict, recoveries: dict[str, Entry], seq_len: int) -> None:
    """Input-side prompts and a training block must fit the model's context (where known
    before download; else the recover job checks it first)."""
    from ..shape import check_context, known_shape

    for model, spec in models.items():
        shape = known_shape(spec)
        if shape is None:
            continue
        for entry in recoveries.values():
            check_context(entry.key, model, shape, entry.config, seq_len)


def check_corpus(data: dict) -> None:
    text = data["text"]
    if text["corpus"] == "file" and not (text.get("path") and Path(text["path"]).is_file()):
        raise ConfigError(f"data.text.path: corpus 'file' needs an existing text file, got {text.get('path')!r}")
    if data["perplexity"] and not text["heldout_fraction"] > 0:
        raise ConfigError(f"data.text.heldout_fraction: {text['heldout_fraction']} holds out no text for "
                          "data.perplexity: true; set a fraction > 0 or data.perplexity: false")


def check_llamacpp(plan, evaluation: dict) -> None:
    """A GGUF quant level needs llama.cpp's quantizer, and a GGUF checkpoint's llama.cpp path its
    runtime (evaluation.llamacpp): refused before any job when llama-cpp-python is missing."""
    import importlib.util

    from ..compress.gguf_file import LLAMA_CPP_INSTALL

    if plan.llamacpp and plan.gguf_cells() and plan.num_fewshot > 0:
        raise ConfigError(f"evaluation.llamacpp: the llama.cpp path scores zero-shot, and evaluation.num_fewshot is "
                          f"{plan.num_fewshot}: its comparison with the torch path would mix the demonstrations with "
                          "the runtime; set evaluation.num_fewshot: 0 or evaluation.llamacpp: false")
    if importlib.util.find_spec("llama_cpp") is not None:
        return
    for entry in plan.compressions.values():
        if "llama_cpp" in entry.config.tools:
            raise ConfigError(f"{entry.key}: method '{entry.method}' quantizes with llama.cpp, and {LLAMA_CPP_INSTALL}")
    if plan.llamacpp and plan.gguf_cells():
        model, comp = plan.gguf_cells()[0]
        raise ConfigError(f"evaluation.llamacpp: compression '{comp}' of model '{model}' is a GGUF file, which "
                          f"llama.cpp's runtime also evaluates, and {LLAMA_CPP_INSTALL}; or set "
                          "evaluation.llamacpp: false")
