"""The per-question table: the only reader of lm-eval's sample format.

Every model is scored on the same questions, so every later comparison is paired. Per
question (:func:`question_table`): ``correct`` (lm-eval's ``acc``), ``margin``
(log-likelihood of the right choice minus that of the best wrong choice, unnormalised as
for ``acc``), ``margin_norm`` (the same on log-likelihoods divided by each choice's length
in characters, as for ``acc_norm``), the question's ``split`` (dev or test), and for a
method that keeps one prompt of a pool per question the prompt it chose and which prompts
forced a right answer. The pooled task :data:`ALL_KNOWLEDGE` holds every knowledge question.
"""

from __future__ import annotations

import os

from ..data.split import DEV, TEST, question_splits, split_settings
from ..io import read_jsonl
from ..prompt_choice import forced_field
from ..recover import choice_field
from ..runs import RunId
from .methods import Methods

KEYS = ["model", "compression", "recovery", "seed", "steps", "run", "task"]
COLUMNS = [*KEYS, "doc_id", "split", "correct", "margin", "margin_norm", "pool_choice", "pool_correct"]
ALL_KNOWLEDGE = "all_knowledge"  # the pooled questions of every knowledge task


def choice_loglikelihoods(row: dict) -> list[float]:
    """Each choice's log-likelihood from a sample row (``filtered_resps``, else ``resps``)."""
    out = []
    for resp in row.get("filtered_resps") or row["resps"]:
        while isinstance(resp, (list, tuple)) and resp and isinstance(resp[0], (list, tuple)):
            resp = resp[0]  # raw resps: [[ll, is_greedy]] per choice
        out.append(float(resp[0] if isinstance(resp, (list, tuple)) else resp))
    return out


def choice_texts(row: dict) -> list[str] | None:
    """The choices' texts: the continuations of ``arguments`` without the delimiter every
    continuation starts with (lm-eval's ``target_delimiter``, a space by default)."""
    args = row.get("arguments")
    if not args:
        return None
    if isinstance(args, dict):  # the layout of lm-eval's EvaluationTracker: gen_args_i -> arg_j
        args = [[a[k] for k in sorted(a)] for _, a in sorted(args.items(), key=lambda kv: int(kv[0].split("_")[-1]))]
    continuations = [str(a[1]) for a in args]
    prefix = os.path.commonprefix(continuations)
    delimiter = len(prefix) - len(prefix.lstrip())
    return [c[delimiter:] for c in continuations]


def gold_choices(row: dict, texts: list[str] | None) -> list[int]:
    """Index(es) of the right choice(s) from ``target`` (an index, a list of them, or the text)."""
    target = row["target"]
    targets = target if isinstance(target, list) else [target]
    out = []
    for t in targets:
        if isinstance(t, str) and not t.strip().lstrip("-").isdigit():
            if texts is None or t not in texts:
                raise ValueError(f"doc {row.get('doc_id')}: target {t!r} is not one of the choices")
            out.append(texts.index(t))
        else:
            out.append(int(t))
    return out


def paired_margin(scores, gold: list[int]) -> float:
    """Best score among the right choices minus the best among the wrong ones."""
    right = max(scores[i] for i in gold)
    wrong = [s for i, s in enumerate(scores) if i not in gold]
    return float(right - max(wrong)) if wrong else float("nan")


def question_record(row: dict) -> dict:
    """``correct`` (lm-eval's acc), ``margin`` and ``margin_norm`` of one sample row."""
    scores = choice_loglikelihoods(row)
    texts = choice_texts(row)
    gold = gold_choices(row, texts)
    margin = paired_margin(scores, gold)
    norm = float("nan")
    if texts is not None and len(texts) == len(scores):
        norm = paired_margin([s / max(len(t), 1) for s, t in zip(scores, texts, strict=True)], gold)
    if "acc" in row:
        correct = bool(row["acc"] >= 0.5)
    else:
        correct = max(range(len(scores)), key=scores.__getitem__) in gold  # first maximum, as np.argmax
    return {"doc_id": row["doc_id"], "correct": correct, "margin": margin, "margin_norm": norm,
            "_gold": gold}


def pool_record(row: dict, gold: list[int], method: str) -> dict:
    """For a method that keeps one prompt of a pool per question (its config class names the
    samples field, :func:`compress_recover.recover.choice_field`): the prompt it chose and,
    when the evaluation scored the question under every prompt forced
    (:func:`compress_recover.prompt_choice.forced_field`: per prompt, per choice), a string of
    0/1, one per prompt: whether that prompt forced answers right."""
    key = choice_field(method)
    chosen = row.get(key) if key else None
    forced = row.get(forced_field(key)) if key else None
    correct = ""
    if forced:
        correct = "".join("1" if max(range(len(s)), key=s.__getitem__) in gold else "0" for s in forced)
    return {"pool_choice": float("nan") if chosen is None else int(chosen), "pool_correct": correct}


def question_table(entries: list[tuple[dict, str]], methods: Methods | dict[str, str] | None = None,
                   split: dict | None = None):
    """One row per (model, compression, recovery, seed, steps, run, task, doc_id): ``split``
    (``dev`` or ``test``, :func:`compress_recover.data.split.question_splits` with the settings
    ``split``, config.yaml ``data.split``; ``None``: every question test), ``correct``,
    ``margin``, ``margin_norm``, and for prompt-pool methods ``pool_choice`` and ``pool_correct``.
    ``steps``: the training steps of the run's checkpoint (None without training, or for
    labels written before budget curves). Runs whose recovery training failed have no
    question (:func:`compress_recover.failures.split_failed` sets them apart)."""
    import pandas as pd

    methods = methods if isinstance(methods, Methods) else Methods(methods or {})
    rows = []
    for labels, samples_file in entries:
        labels = {**RunId.from_labels(labels).as_dict(), "task": labels["task"]}
        method = methods.method(labels["recovery"], labels["run"])
        for row in read_jsonl(samples_file):
            record = question_record(row)
            gold = record.pop("_gold")
            if row.get("task") and row["task"] != labels["task"]:  # a group task's subtask: ids repeat
                record["doc_id"] = f"{row['task']}:{record['doc_id']}"
            rows.append({**labels, **record, **pool_record(row, gold, method)})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("seed", "steps"):
        table[column] = table[column].astype("Int64")
    table["doc_id"] = table["doc_id"].astype(str)
    questions = {task: sorted(set(ids)) for task, ids in table.groupby("task", sort=False).doc_id}
    splits = question_splits(questions, **split_settings(split))
    table["split"] = [splits[key] for key in zip(table.task, table.doc_id, strict=True)]
    return table


def with_pooled_task(table, knowledge_tasks: list[str]):
    """Append the pooled task ``all_knowledge``: every knowledge question, ids made unique."""
    import pandas as pd

    table = table.copy()
    table["doc_id"] = table["doc_id"].astype(str)
    pooled = table[table.task.isin(knowledge_tasks)].copy()
    if pooled.empty:
        return table
    pooled["doc_id"] = pooled["task"] + ":" + pooled["doc_id"]
    pooled["task"] = ALL_KNOWLEDGE
    return pd.concat([table, pooled], ignore_index=True)


def split_mask(table, which: str):
    """Rows of ``table`` whose question is in split ``which`` (dev or test); fails on a table
    without a valid ``split`` column (build it with :func:`question_table`)."""
    found = set(table["split"].astype(str)) - {DEV, TEST}
    if found:
        raise ValueError(f"question table: column split must hold '{DEV}' or '{TEST}', found {sorted(found)}; "
                         "build the table with questions.question_table")
    return table["split"] == which


def split_table(table):
    """``split.csv``: (task, doc_id, split) of every question."""
    questions = table[table.task != ALL_KNOWLEDGE][["task", "doc_id", "split"]].drop_duplicates()
    return questions.sort_values(["task", "doc_id"], kind="stable").reset_index(drop=True)
