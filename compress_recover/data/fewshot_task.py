"""Rule ``fewshot_task``: a built knowledge task as a few-shot evaluation reads it.

The same questions, in the same order (so lm-eval's doc ids, and the tables, line up with
the zero-shot runs), each marked with ``fewshot_pool`` (a dev question of the dev/test
split the analysis uses, :func:`compress_recover.data.split.question_splits`, computed
over every built knowledge task, since a fact may be asked by two) and ``fewshot_fact``;
the task YAML is the zero-shot one with lm-eval's few-shot sampler set to
:class:`compress_recover.evaluate.fewshot_sampler.DevFactSampler`. Demonstrations are
therefore dev questions of the same relation, never of the question's own fact, and no
test question is ever shown with its answer. The manifest lists the dev facts, so the
analysis can check that they are dev in its split too (a custom task sharing a fact can
move it to test there).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..io import atomic_dir, read_jsonl, verify_folder, write_jsonl, write_manifest
from .facts import question_fact
from .knowledge_task import lm_eval_task_config
from .split import DEV, question_splits, split_settings

POOL_FIELD, FACT_FIELD = "fewshot_pool", "fewshot_fact"  # each question: a demonstration candidate? its fact
SAMPLER_MODULE = "from compress_recover.evaluate.fewshot_sampler import DevFactSampler  # noqa: F401\n"


def task_questions(folder: str | Path, task: str) -> list[dict]:
    verify_folder(folder)
    return read_jsonl(Path(folder) / f"{task}.jsonl")


def build_fewshot_task(*, task: str, task_dirs: dict[str, str], out_dir: str, split: dict | None,
                       shots: int = 1) -> dict:
    """Write ``<out_dir>/<task>.jsonl`` (the questions of ``task_dirs[task]``, marked),
    ``<task>.yaml``, ``sampler.py`` and ``manifest.json``. ``task_dirs``: every built
    knowledge task -> its folder (the split is computed over all of them); ``split``:
    config.yaml ``data.split``; ``shots``: the most demonstrations any evaluation asks
    for, refused (before any model is scored) when a dev question would have fewer dev
    questions of another fact than that."""
    questions = {name: task_questions(folder, name) for name, folder in task_dirs.items()}
    if task not in questions:
        raise ValueError(f"few-shot task {task!r}: not among the built knowledge tasks {sorted(questions)}")
    facts = {(name, str(i)): question_fact(row, name, str(i)) for name, rows in questions.items()
             for i, row in enumerate(rows)}
    settings = split_settings(split)  # a held-out custom task is not among the built ones: no fact of it here
    settings["held_out_tasks"] = [t for t in settings["held_out_tasks"] if t in questions]
    splits = question_splits({name: [str(i) for i in range(len(rows))] for name, rows in questions.items()},
                             facts=facts, **settings)
    rows = [{**row, POOL_FIELD: splits[(task, str(i))] == DEV, FACT_FIELD: facts[(task, str(i))]}
            for i, row in enumerate(questions[task])]
    pool = [r for r in rows if r[POOL_FIELD]]
    if not pool:
        raise ValueError(f"few-shot task {task!r}: no dev question to draw demonstrations from; "
                         "set data.split.dev_fraction above 0 (and keep the task out of held_out_tasks)")
    fewest = min(sum(r[FACT_FIELD] != q[FACT_FIELD] for r in pool) for q in rows)
    if fewest < shots:
        raise ValueError(f"few-shot task {task!r}: {shots} demonstrations per question asked (the largest k of a few-shot run "
                         f"or evaluation.num_fewshot), but a question has only {fewest} dev question(s) of another "
                         f"fact ({len(pool)} dev questions); lower k or raise data.split.dev_fraction")
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", rows)
        config = lm_eval_task_config(task, final / f"{task}.jsonl")
        config["fewshot_split"] = config["test_split"]  # so lm-eval hands the sampler each evaluated doc
        text = yaml.safe_dump(config, sort_keys=False) + "fewshot_config:\n  sampler: !function sampler.DevFactSampler\n"
        (tmp / f"{task}.yaml").write_text(text)
        (tmp / "sampler.py").write_text(SAMPLER_MODULE)
        manifest = write_manifest(tmp, {"task": task, "questions": len(rows), "demonstration_pool": len(pool),
                                        "dev_facts": sorted({r[FACT_FIELD] for r in pool}),
                                        "split": split_settings(split), "shots": shots})
    return manifest
