"""Rule ``fewshot_task``: a built knowledge task as a few-shot evaluation reads it, and its
format control.

The same questions, in the same order (so lm-eval's doc ids, and the tables, line up with
the zero-shot runs), each marked with ``fewshot_pool`` (a dev question of the dev/test
split the analysis uses, :func:`compress_recover.data.split.question_splits`, computed
over every built knowledge task, since a fact may be asked by two), ``fewshot_fact`` (its
fact), ``fewshot_answer`` (its right answer's normalised text) and ``fewshot_choices``
(its choices', normalised); the task YAML is the zero-shot one with lm-eval's few-shot
sampler set to :class:`compress_recover.evaluate.fewshot_sampler.DevFactSampler`, which
shows before a question only the demonstrations :func:`may_demonstrate` allows: dev
questions, never of the question's own fact, and never one whose right answer is among
the question's choices. So no test question is ever shown with its answer, the question's
right answer is never shown as another fact's answer (a model could copy it), and neither
is any of its distractors (shown while the right answer never is, a distractor would be
marked as wrong: a subject-blind cue the other way).

**The format control** (``control_dir``): the few-shot method on the uncompressed model
must measure what the prompt's layout (Question/Answer, the delimiters) does, not what
demonstrations of the same relation elicit. Its folder holds the same questions and task
name (so the analysis pairs its runs with the others), none of them a demonstration, and
``demonstrations.jsonl``: the dev questions of every *other* built knowledge task, marked
the same way, which the folder's sampler (:func:`compress_recover.evaluate.fewshot_sampler.pool_sampler`)
draws from instead of the task's own documents; lm-eval never scores them. The same rules
apply (a capital and the same city asked in ``city_country`` are one fact, so Paris is
never a demonstration for France).

Each manifest lists the dev facts drawn from, so the analysis can check that they are dev
in its split too (a custom task sharing a fact can move it to test there).
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import yaml

from ..io import atomic_dir, read_jsonl, verify_folder, write_jsonl, write_manifest
from .content_free import write_variant
from .facts import RELATIONS, _normalised, question_fact
from .knowledge_task import lm_eval_task_config, make_questions
from .split import DEV, question_splits, split_settings

# each question: a demonstration candidate? its fact, its right answer and its choices (normalised texts)
POOL_FIELD, FACT_FIELD = "fewshot_pool", "fewshot_fact"
ANSWER_FIELD, CHOICES_FIELD = "fewshot_answer", "fewshot_choices"
TASK_FIELD = "fewshot_task"  # a format control's demonstration: the task it comes from
POOL_FILE = "demonstrations.jsonl"  # a format control's demonstrations (never scored)
SAMPLER_MODULE = "from compress_recover.evaluate.fewshot_sampler import DevFactSampler  # noqa: F401\n"
CONTROL_SAMPLER_MODULE = ("from pathlib import Path\n\n"
                          "from compress_recover.evaluate.fewshot_sampler import pool_sampler\n\n"
                          f"DevFactSampler = pool_sampler(Path(__file__).with_name({POOL_FILE!r}))\n")


def task_questions(folder: str | Path, task: str) -> list[dict]:
    verify_folder(folder)
    return read_jsonl(Path(folder) / f"{task}.jsonl")


def answer_key(text) -> str:
    """An answer's text as the demonstration rules compare it: NFKC, casefolded, whitespace collapsed."""
    return _normalised(text)


def marked(row: dict, *, dev: bool, fact: str) -> dict:
    """A question with the few-shot fields (its choices' and answer's texts from ``choices`` and ``answer``)."""
    choices = [answer_key(c) for c in row["choices"]]
    return {**row, POOL_FIELD: dev, FACT_FIELD: fact, ANSWER_FIELD: choices[row["answer"]], CHOICES_FIELD: choices}


def may_demonstrate(demo: dict, doc: dict | None) -> bool:
    """Whether ``demo`` may be shown before the evaluated ``doc``: a dev question
    (``fewshot_pool``) of another fact whose right answer is none of ``doc``'s choices
    (a field ``doc`` lacks does not restrict)."""
    if not demo.get(POOL_FIELD):
        return False
    if doc is None:
        return True
    fact = doc.get(FACT_FIELD)
    return (fact is None or demo.get(FACT_FIELD) != fact) and demo.get(ANSWER_FIELD) not in (doc.get(CHOICES_FIELD) or ())


def fewest_demonstrations(pool: list[dict], rows: list[dict]) -> int:
    """The fewest demonstrations :func:`may_demonstrate` allows any of ``rows`` from ``pool``."""
    return min((sum(may_demonstrate(d, q) for d in pool) for q in rows), default=0)


def marked_tasks(questions: dict[str, list[dict]], split: dict | None) -> dict[str, list[dict]]:
    """Every built knowledge task's questions (task -> rows) marked (:func:`marked`) under
    ``split`` (config.yaml ``data.split``), computed over all of them (a fact may be asked
    by two); a held-out custom task is not among them (no fact of it here)."""
    facts = {(name, str(i)): question_fact(row, name, str(i)) for name, rows in questions.items()
             for i, row in enumerate(rows)}
    settings = split_settings(split)
    settings["held_out_tasks"] = [t for t in settings["held_out_tasks"] if t in questions]
    splits = question_splits({name: [str(i) for i in range(len(rows))] for name, rows in questions.items()},
                             facts=facts, **settings)
    return {name: [marked(row, dev=splits[(name, str(i))] == DEV, fact=facts[(name, str(i))])
                   for i, row in enumerate(rows)] for name, rows in questions.items()}


def control_pool(task: str, marked_rows: dict[str, list[dict]]) -> tuple[list[dict], set[str]]:
    """(the format control's demonstrations for ``task``, the tasks left out because they
    ask one of its facts): the dev questions of every other relation that asks none of its
    facts (an inverse relation, the capitals asked again as cities), so the control shows the
    format, not the knowledge."""
    own = {r[FACT_FIELD] for r in marked_rows[task]}
    sharing = {name for name, rows in marked_rows.items() if name != task and own & {r[FACT_FIELD] for r in rows}}
    others = [{**r, TASK_FIELD: name} for name, rs in marked_rows.items() if name != task and name not in sharing
              for r in rs if r[POOL_FIELD]]
    return others, sharing


def demonstration_limits(questions: dict[str, list[dict]], split: dict | None) -> dict[str, dict]:
    """Per built knowledge task (``questions``: every built task -> its rows), what
    :func:`build_fewshot_task` allows: ``pool`` (its dev questions), ``own`` (the fewest
    demonstrations any of its questions is allowed from them: the most ``shots`` it takes),
    ``control`` (the same from the format control's pool: the most ``control_shots``)."""
    marked_rows = marked_tasks(questions, split)
    out = {}
    for task, rows in marked_rows.items():
        pool = [r for r in rows if r[POOL_FIELD]]
        others, _ = control_pool(task, marked_rows)
        out[task] = {"pool": len(pool), "own": fewest_demonstrations(pool, rows),
                     "control": fewest_demonstrations(others, rows)}
    return out


@lru_cache(maxsize=4)
def _planned_limits(tasks: tuple[str, ...], num_choices: int, seed: int, max_questions: int | None,
                    max_answer_presence: float, split: tuple) -> dict[str, dict]:
    questions = {t: make_questions(RELATIONS[t], num_choices=num_choices, seed=seed, max_questions=max_questions,
                                   max_answer_presence=max_answer_presence) for t in tasks}
    return demonstration_limits(questions, dict(split))


def planned_demonstration_limits(tasks: list[str], *, num_choices: int, seed: int, max_questions: int | None,
                                 max_answer_presence: float, split: dict | None) -> dict[str, dict]:
    """:func:`demonstration_limits` of the built knowledge tasks ``tasks`` as their jobs will
    build them (rule knowledge_task: a deterministic function of the packaged facts and of
    these settings, config.yaml's ``data`` and ``seed``), before any job runs: exact, not a
    bound. Computed once per settings (about half a second: the facts are read)."""
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in split_settings(split).items()))
    return _planned_limits(tuple(tasks), num_choices, seed, max_questions, max_answer_presence, key)


def build_fewshot_task(*, task: str, task_dirs: dict[str, str], out_dir: str, split: dict | None,
                       shots: int = 1, content_free_mask: str | None = None, control_dir: str | None = None,
                       control_shots: int = 0) -> dict:
    """Write ``<out_dir>/<task>.jsonl`` (the questions of ``task_dirs[task]``, marked),
    ``<task>.yaml``, ``sampler.py`` and ``manifest.json``, and with ``control_dir`` the
    format control's folder (the same files and ``demonstrations.jsonl``); returns the
    first manifest. ``task_dirs``: every built knowledge task -> its folder (the split is
    computed over all of them; the control draws from the others); ``split``: config.yaml
    ``data.split``; ``shots``/``control_shots``: the most demonstrations any evaluation
    (any format-control evaluation) asks for, refused (before any model is scored) when a
    question would have fewer allowed demonstrations (:func:`may_demonstrate`) than that
    (the plan refuses it first, :func:`planned_demonstration_limits`).
    ``content_free_mask``: also write each folder's content-free variant
    (:func:`compress_recover.data.content_free.write_variant`: the evaluated question
    masked, the demonstrations real); None: none."""
    questions = {name: task_questions(folder, name) for name, folder in task_dirs.items()}
    if task not in questions:
        raise ValueError(f"few-shot task {task!r}: not among the built knowledge tasks {sorted(questions)}")
    marked_rows = marked_tasks(questions, split)
    rows = marked_rows[task]
    pool = [r for r in rows if r[POOL_FIELD]]
    if not pool:
        raise ValueError(f"few-shot task {task!r}: no dev question to draw demonstrations from; "
                         "set data.split.dev_fraction above 0 (and keep the task out of held_out_tasks)")
    _check_enough(task, pool, rows, shots, "its own dev questions")
    manifest = _write_folder(Path(out_dir), task, rows, pool, content_free_mask=content_free_mask,
                             extra={"split": split_settings(split), "shots": shots})
    if control_dir is not None:
        others, sharing = control_pool(task, marked_rows)
        if control_shots:
            if not others:
                raise ValueError(f"few-shot format control of task {task!r}: it draws demonstrations from the dev "
                                 f"questions of the other knowledge tasks that ask none of its facts, and there are "
                                 f"none (built tasks: {sorted(questions)}; sharing facts: {sorted(sharing)}); add a "
                                 "task to data.knowledge_tasks or set recovery.recover_base: false")
            _check_enough(task, others, rows, control_shots, "the other tasks' dev questions (format control)")
        _write_folder(Path(control_dir), task, [{**r, POOL_FIELD: False} for r in rows], others,
                      content_free_mask=content_free_mask, control=True,
                      extra={"split": split_settings(split), "shots": control_shots, "format_control": True,
                             "demonstration_tasks": dict(sorted(Counter(r[TASK_FIELD] for r in others).items()))})
    return manifest


def _check_enough(task: str, pool: list[dict], rows: list[dict], shots: int, source: str) -> None:
    fewest = fewest_demonstrations(pool, rows)
    if fewest < shots:
        raise ValueError(f"few-shot task {task!r}: {shots} demonstrations per question asked (the largest k of a "
                         f"few-shot run or evaluation.num_fewshot), but a question has only {fewest} allowed in "
                         f"{source} ({len(pool)} dev questions; a demonstration is never of the question's fact nor "
                         "answered by one of its choices); lower k or raise data.split.dev_fraction")


def _write_folder(final: Path, task: str, rows: list[dict], pool: list[dict], *, content_free_mask: str | None,
                  extra: dict, control: bool = False) -> dict:
    """One few-shot folder: the evaluated questions, the task YAML with the sampler, and
    for a format control (``control``) the demonstrations' file (``pool``, else the dev rows)."""
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", rows)
        config = lm_eval_task_config(task, final / f"{task}.jsonl")
        config["fewshot_split"] = config["test_split"]  # so lm-eval hands the sampler each evaluated doc
        text = yaml.safe_dump(config, sort_keys=False) + "fewshot_config:\n  sampler: !function sampler.DevFactSampler\n"
        (tmp / f"{task}.yaml").write_text(text)
        if control:
            write_jsonl(tmp / POOL_FILE, pool)
        (tmp / "sampler.py").write_text(CONTROL_SAMPLER_MODULE if control else SAMPLER_MODULE)
        if content_free_mask is not None:
            write_variant(tmp, task, mask=content_free_mask, fewshot_sampler="sampler.DevFactSampler")
        return write_manifest(tmp, {"task": task, "questions": len(rows), "demonstration_pool": len(pool),
                                    "dev_facts": sorted({r[FACT_FIELD] for r in pool}), **extra})
