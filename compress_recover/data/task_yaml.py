"""Which tasks a user's lm-eval task folder defines, read from its YAML files without lm-eval.

``data.task_dirs`` names folders of lm-eval task YAMLs; the plan checks, before any job
runs, that each listed task is defined there (and a knowledge task is multiple choice), and
rule ``content_free_task`` finds the YAML that defines a task (:func:`defining_yaml`).
lm-eval itself is not imported (the plan is built while Snakemake builds the DAG): the
YAMLs are read as plain YAML, their tags (``!function``) ignored (or kept as
:class:`Tagged`) and ``include:`` followed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..registry import ConfigError


class _IgnoreTags(yaml.SafeLoader):
    """lm-eval YAML uses tags such as ``!function``; we only need plain keys."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


class Tagged(str):
    """A tagged value (``!function utils.f``) kept as its text, ``tag`` beside it: it cannot be
    copied into another folder's YAML as plain text (lm-eval resolves it beside its own YAML)."""

    tag: str


def _tagged(loader, suffix, node):
    value = Tagged(loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else "")
    value.tag = f"!{suffix}"
    return value


class _KeepTags(yaml.SafeLoader):
    """As :class:`_IgnoreTags`, the tagged values kept as :class:`Tagged`."""


_KeepTags.add_multi_constructor("!", _tagged)


def task_yaml(path: Path, seen: tuple[Path, ...] = (), keep_tags: bool = False) -> dict:
    """A task YAML's keys, those of its ``include:`` (relative to the YAML) beneath its own;
    tagged values None (``keep_tags``: :class:`Tagged`)."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_KeepTags if keep_tags else _IgnoreTags) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"data.task_dirs: {path} is not valid YAML ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); fix or remove the file") from err
    if not isinstance(doc, dict):
        return {}
    include = doc.get("include")
    if isinstance(include, str):
        base = (path.parent / include).resolve()
        if base.is_file() and base not in seen:
            doc = {**task_yaml(base, (*seen, path.resolve()), keep_tags), **doc}
    return doc


DEMONSTRATION_KEYS = ("fewshot_split", "training_split", "validation_split")
# What a task without a demonstration source is told (the plan's and the evaluation's refusal).
DEMONSTRATION_HINT = ("set fewshot_split (or training_split / validation_split, or fewshot_config.samples) in "
                      "the task's YAML")


def has_demonstrations(doc: dict) -> bool:
    """Whether a task's config (its YAML's keys, or lm-eval's loaded config as such a dict)
    names where few-shot demonstrations come from, other than the scored split: a split key,
    or ``fewshot_config``'s samples or a sampler other than lm-eval's default (a ``!function``
    one reads as None here). Our built knowledge tasks' few-shot folders name the scored
    split on purpose, with a sampler that keeps to dev questions."""
    settings = doc.get("fewshot_config") if isinstance(doc.get("fewshot_config"), dict) else {}
    return any(doc.get(k) for k in DEMONSTRATION_KEYS) or "samples" in settings or \
        settings.get("sampler", "default") != "default"


def tasks_without_demonstrations(folder: Path) -> list[str]:
    """The tasks (not groups) defined in ``folder`` that name no few-shot source
    (:func:`has_demonstrations`) and are not perplexity tasks, which read no context."""
    missing = set()
    for f in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        doc = task_yaml(f)
        if isinstance(doc.get("task"), str) and doc.get("output_type") != "loglikelihood_rolling" and \
                not has_demonstrations(doc):
            missing.add(doc["task"])
    return sorted(missing)


def tasks_in_folder(folder: Path) -> dict[str, str | None]:
    """Task and group names defined in ``folder`` -> the task's ``output_type`` (lm-eval's
    default ``generate_until`` when unset; None for a group)."""
    names: dict[str, str | None] = {}
    for f in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        doc = task_yaml(f)
        if isinstance(doc.get("group"), str):
            names.setdefault(doc["group"], None)
        if isinstance(doc.get("task"), str):
            names[doc["task"]] = str(doc.get("output_type") or "generate_until")
    return names


def defining_yaml(folder: Path, task: str) -> Path:
    """The YAML file of ``folder`` that defines ``task`` (its ``task:``, its own or an
    included one's); an error naming the task and the folder when none or several do."""
    found = [f for f in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml"))
             if task_yaml(f).get("task") == task]
    if len(found) != 1:
        raise ConfigError(f"data.task_dirs: task '{task}' is defined by {len(found)} YAML files of {folder} "
                          f"({[str(f) for f in found]}); one must define it")
    return found[0]


def folder_files(folder: Path) -> list[Path]:
    """The files of a user's task folder a job reads (recursively, sorted): hidden names and
    Python's ``__pycache__`` (written there when lm-eval imports the folder's modules) left out."""
    folder = Path(folder)
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and
            not any(p.startswith(".") or p == "__pycache__" for p in f.relative_to(folder).parts)]
