"""Rule ``content_free_task``: the content-free variant of a user's knowledge task.

A task of ``data.task_dirs`` whose entry names ``subject_field`` (a ``knowledge: true``
entry) gets the variant the built tasks get (:mod:`.content_free`): ``<task>_content_free``,
every question with the doc's subject (``doc[subject_field]``) replaced by
``data.content_free_mask`` in each of ``masked_fields`` (``question`` by default), the
choices, answer, order and doc ids the task's. It is written to a folder of its own (the
user's folder stays as they wrote it): ``<task>_content_free.yaml``, which includes the
YAML defining the task by a path relative to the folder (lm-eval resolves an ``include:``
beside the including YAML, and the user's ``!function`` references beside theirs), and
``content_free.py``. The manifest records that YAML and the sha256 of every file of the
user's folder, so a changed task changes the folder (the evaluation's reuse key reads it).

Refused, naming the task and the folder, before anything is written (and by the plan,
before any job runs): a task that sets its own ``process_docs`` (the variant's would
replace it) and one whose ``fewshot_config`` holds a tagged (``!function``) value (the
variant's ``fewshot_config`` replaces the task's, and such a reference resolves only beside
its own YAML). A doc without its subject, or whose masked fields do not contain it, is
refused when lm-eval first builds the variant (:class:`.content_free.DocsMasker`, in the
evaluate job's check that loads every task before the model), naming the variant and the doc.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io import atomic_dir, sha256_file, write_manifest
from ..registry import ConfigError
from .content_free import MASKED_FIELDS, write_variant
from .task_yaml import Tagged, defining_yaml, folder_files, task_yaml


def _tagged(value) -> bool:
    if isinstance(value, dict):
        return any(_tagged(v) for v in value.values())
    if isinstance(value, list):
        return any(_tagged(v) for v in value)
    return isinstance(value, Tagged)


def variant_source(task_dir: str | Path, task: str, masked_fields=MASKED_FIELDS) -> tuple[Path, dict]:
    """The YAML of ``task_dir`` that defines ``task``, and the task's ``fewshot_config`` (the
    variant keeps it); a ConfigError naming the task and the folder for a task the variant
    cannot be built on (see the module docstring), or whose ``doc_to_text`` template reads
    none of ``masked_fields`` (the variant would not be content-free)."""
    import re

    folder = Path(task_dir)
    source = defining_yaml(folder, task)
    config = task_yaml(source, keep_tags=True)
    where = f"data.task_dirs entry of {folder}: task '{task}' ({source})"
    remedy = "or drop subject_field from the entry (no content-free variant)"
    if "process_docs" in config:
        raise ConfigError(f"{where} sets its own process_docs, which its content-free variant's (the subject "
                          f"masked) would replace; do that processing in its data files instead, {remedy}")
    demos = config.get("fewshot_config") or {}
    if not isinstance(demos, dict) or _tagged(demos):
        keys = sorted(k for k, v in demos.items() if _tagged(v)) if isinstance(demos, dict) else []
        raise ConfigError(f"{where}: its fewshot_config{' ' + str(keys) if keys else ''} holds a tagged "
                          "(!function) value, which its content-free variant cannot carry (the variant replaces "
                          f"fewshot_config, and such a reference resolves beside its own YAML only); {remedy}")
    template = config.get("doc_to_text")
    if isinstance(template, str) and "{{" in template and not any(
            re.search(r"\{\{[^}]*\b" + re.escape(f) + r"\b", template) for f in masked_fields):
        raise ConfigError(f"{where}: its doc_to_text {template!r} reads none of the masked fields "
                          f"{list(masked_fields)}, so masking them would leave the subject in the prompt; set "
                          f"masked_fields to the field(s) its prompt shows the subject in, {remedy}")
    return source, demos


def build_content_free_task(*, task: str, task_dir: str, out_dir: str, mask: str, subject_field: str,
                            masked_fields=MASKED_FIELDS) -> dict:
    """Write ``<out_dir>/<task>_content_free.yaml`` (including the YAML of ``task_dir`` that
    defines ``task``), its ``content_free.py`` and ``manifest.json``; returns the manifest.

    Example: ``build_content_free_task(task="my_facts", task_dir="my_tasks",
    out_dir="results/data/content_free_tasks/my_facts", mask="X", subject_field="subject")``.
    """
    source, demos = variant_source(task_dir, task, masked_fields)
    sources = {str(f.relative_to(task_dir)): sha256_file(f) for f in folder_files(Path(task_dir))}
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        # lm-eval resolves the YAML's path (links followed) and the include beside it
        include = os.path.relpath(source.resolve(), final.resolve())
        name = write_variant(tmp, task, mask=mask, subject_field=subject_field, fields=tuple(masked_fields),
                             include=include, fewshot_config=demos,
                             remedy=f"drop subject_field from the data.task_dirs entry of {task_dir}")
        manifest = {"task": task, "variant": name, "task_dir": str(task_dir), "task_yaml": str(source),
                    "include": include, "content_free_mask": mask, "subject_field": subject_field,
                    "masked_fields": list(masked_fields), "sources_sha256": sources}
        manifest = write_manifest(tmp, manifest)
    return manifest
