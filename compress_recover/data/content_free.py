"""The content-free variant of a knowledge task: the same questions with the subject masked.

A multiple-choice question whose answer a model picks without reading the subject (a
frequent answer, a position, a length) measures the model's prior, not its knowledge. The
content-free variant ``<task>_content_free`` asks every question of ``<task>`` with its
subject replaced by a mask (``data.content_free_mask``, "X" by default: "What is the
capital of X?"), the same template, the same choices and answer, the same documents in the
same order (so lm-eval's doc ids pair 1:1 with the task's). What a model scores on it is its
content-free baseline; the analysis pairs each question with the model's content-free
choice (:mod:`compress_recover.aggregate.stats.content_free`).

The variant is an lm-eval YAML beside the task's own (``<task>_content_free.yaml``) that
``include`` s it and adds ``process_docs`` (:class:`DocsMasker`, in a small module written
beside it, ``content_free.py``), so nothing of the task is copied: its data file, template,
choices and metrics are the task's. A few-shot folder's variant keeps its sampler and shows
real demonstrations (``fewshot_config.process_docs``: :func:`keep_docs`); only the evaluated
question is masked. A user's knowledge task (``data.task_dirs`` with ``subject_field``) gets
the same variant in a folder of its own, including the user's YAML by a relative path
(:mod:`.content_free_task`).

Nothing here imports lm-eval or datasets: the masker accepts a ``datasets.Dataset`` (it
calls its ``map``) or a list of dicts.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from pathlib import Path

import yaml

SUFFIX = "_content_free"
MODULE = "content_free"  # the module written beside the variant's YAML: content_free.py
TAG = "compress_recover_content_free"
SUBJECT_FIELD = "subject"  # the built tasks' docs name their subject here (knowledge_task.make_questions)
MASKED_FIELDS = ("question",)  # the built tasks' text fields (their doc_to_text reads question)
REMEDY = "set data.content_free_mask: null"


def variant_name(task: str) -> str:
    """The content-free variant's task name: ``<task>_content_free``."""
    return f"{task}{SUFFIX}"


@dataclass(frozen=True)
class DocsMasker:
    """lm-eval's ``process_docs`` of a content-free variant: every doc with its subject
    (``doc[subject_field]``) replaced by ``mask`` in each of ``fields``; every other field
    (choices, answer, ids, facts) unchanged. A doc without the subject, or whose fields do
    not contain it, is an error naming ``task`` and the doc: a question still naming its
    subject would not be content-free."""

    task: str
    mask: str
    subject_field: str = SUBJECT_FIELD
    fields: tuple = MASKED_FIELDS
    remedy: str = REMEDY  # how to do without the variant, said by each error

    def doc(self, doc: dict, index: int | None = None) -> dict:
        where = f"task {self.task}" + ("" if index is None else f", doc {index}")
        subject = doc.get(self.subject_field)
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(f"{where}: the content-free variant masks the doc's {self.subject_field!r} field, "
                             f"which is {'missing' if subject is None else repr(subject)}; name each doc's subject "
                             f"there (or {self.remedy})")
        out = dict(doc)
        found = False
        # the subject as a whole word: element_name's subject "W" is not the W of "Which"
        pattern = re.compile(r"(?<!\w)" + re.escape(subject) + r"(?!\w)")
        for field in self.fields:
            text = doc.get(field)
            if not isinstance(text, str):
                raise ValueError(f"{where}: the content-free variant masks text field {field!r}, which is "
                                 f"{'missing' if text is None else type(text).__name__}")
            masked, count = pattern.subn(lambda _: self.mask, text)
            found |= count > 0
            out[field] = masked
        if not found:
            raise ValueError(f"{where}: subject {subject!r} appears in none of {list(self.fields)}; the masked "
                             f"question would still be the question (or {self.remedy})")
        return out

    def __call__(self, docs):
        if isinstance(docs, list):
            return [self.doc(d, i) for i, d in enumerate(docs)]
        return docs.map(self.doc, with_indices=True, load_from_cache_file=False)


def mask_docs(docs: list[dict], *, task: str, mask: str, subject_field: str = SUBJECT_FIELD,
              fields=MASKED_FIELDS) -> list[dict]:
    """``docs`` as the content-free variant asks them (:class:`DocsMasker`)."""
    return DocsMasker(task, mask, subject_field, tuple(fields))(list(docs))


def keep_docs(docs):
    """The demonstrations' ``process_docs``: the docs unmasked (a few-shot prompt shows real
    questions with their answers; only the evaluated question is masked)."""
    return docs


def write_variant(folder: str | Path, task: str, *, mask: str, fewshot_sampler: str | None = None,
                  subject_field: str = SUBJECT_FIELD, fields=MASKED_FIELDS, include: str | None = None,
                  fewshot_config: dict | None = None, remedy: str = REMEDY) -> str:
    """Write ``<folder>/<task>_content_free.yaml`` (including ``include``, by default
    ``<task>.yaml`` of the same folder; a path relative to ``folder``) and its
    ``content_free.py``; returns the variant's name. ``fewshot_sampler``: the ``!function``
    reference of the task's few-shot sampler (a few-shot folder's), kept by the variant with
    the demonstrations unmasked. ``fewshot_config``: the included task's own (plain values
    only: the variant's replaces it), kept likewise. ``remedy``: what a doc's error says
    to do instead (:class:`DocsMasker`)."""
    folder, name = Path(folder), variant_name(task)
    include = include or f"{task}.yaml"
    if not (folder / include).is_file():
        raise FileNotFoundError(f"content-free variant of task {task}: no {include} in {folder}")
    text = yaml.safe_dump({"include": include, "task": name, "tag": [TAG]}, sort_keys=False)
    text += f"process_docs: !function {MODULE}.mask_docs\n"
    text += "fewshot_config:\n"
    if fewshot_config:
        text += "".join(f"  {line}\n" for line in yaml.safe_dump(dict(fewshot_config), sort_keys=False).splitlines())
    if fewshot_sampler:
        text += f"  sampler: !function {fewshot_sampler}\n"
    text += f"  process_docs: !function {MODULE}.keep_docs\n"
    (folder / f"{name}.yaml").write_text(text)
    args = [("task", name), ("mask", mask), ("subject_field", subject_field), ("fields", tuple(fields))]
    args = ", ".join(f"{k}={v!r}" for k, v in args + ([("remedy", remedy)] if remedy != REMEDY else []))
    (folder / f"{MODULE}.py").write_text(
        f'"""process_docs of {name}: {task} with its subject masked (compress_recover.data.content_free)."""\n'
        "from compress_recover.data.content_free import DocsMasker, keep_docs  # noqa: F401\n\n"
        f"mask_docs = DocsMasker({args})\n")
    return name
