"""Rule ``knowledge_task``: one multiple-choice lm-eval task built from real facts.

Each question has one correct answer and ``num_choices - 1`` distractors drawn, with a
seeded generator, from the answers of the *same relation* (capitals for a capital
question), so a model cannot win by spotting the odd type out.

Writes ``<task>.jsonl`` (one question a line: subject, question, choices, answer index),
``<task>.yaml`` (an lm-eval task reading that file) and ``manifest.json``.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from ..io import atomic_dir, shortfall, write_jsonl, write_manifest
from .facts import RELATIONS, Relation


def make_questions(relation: Relation, *, num_choices: int, seed: int,
                   max_questions: int | None = None) -> list[dict]:
    """Deterministic multiple-choice questions for ``relation``.

    Subjects are de-duplicated (first fact wins), distractors are distinct answers of
    the same relation other than the correct one, and the correct answer's position
    is drawn by the same seeded generator.
    """
    seen: set[str] = set()
    facts = []
    for fact in sorted(relation.load(), key=lambda f: (f.subject, f.answer)):
        if fact.subject not in seen and fact.subject != fact.answer:
            seen.add(fact.subject)
            facts.append(fact)
    answers = sorted({f.answer for f in facts})
    if len(answers) < num_choices:
        raise ValueError(f"task {relation.name}: only {len(answers)} distinct answers for {num_choices} choices")
    rng = random.Random(f"{seed}:{relation.name}")
    rng.shuffle(facts)
    if max_questions is not None:
        facts = facts[:max_questions]
    questions = []
    for i, fact in enumerate(facts):
        pool = [a for a in answers if a != fact.answer]
        choices = rng.sample(pool, num_choices - 1)
        position = rng.randrange(num_choices)
        choices.insert(position, fact.answer)
        questions.append({
            "id": f"{relation.name}-{i:04d}",
            "subject": fact.subject,
            "answer_text": fact.answer,
            "question": relation.template.format(subject=fact.subject),
            "choices": choices,
            "answer": position,
        })
    return questions


def lm_eval_task_config(task: str, data_file: Path) -> dict:
    """An lm-eval multiple-choice task over a local JSONL file (no hub access)."""
    return {
        "task": task,
        "tag": ["compress_recover_knowledge"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def build_knowledge_task(*, task: str, out_dir: str, num_choices: int, seed: int,
                         max_questions: int | None = None) -> dict:
    """Write ``<out_dir>/<task>.jsonl``, ``<task>.yaml`` and ``manifest.json``."""
    if task not in RELATIONS:
        raise ValueError(f"data.knowledge_tasks: unknown task {task!r}; known: {sorted(RELATIONS)}")
    relation = RELATIONS[task]
    questions = make_questions(relation, num_choices=num_choices, seed=seed, max_questions=max_questions)
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", questions)
        # The YAML names the data file at its final place, where lm-eval will read it.
        config = lm_eval_task_config(task, final / f"{task}.jsonl")
        (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        short = [shortfall("data.max_questions", f"{task} questions", max_questions, len(questions))] \
            if max_questions is not None and len(questions) < max_questions else []
        manifest = {"task": task, "questions": len(questions), "num_choices": num_choices,
                    "chance_accuracy": 1.0 / num_choices, "seed": seed, "source": relation.source,
                    "license": relation.license, "shortfalls": short}
        manifest = write_manifest(tmp, manifest)
    return manifest
