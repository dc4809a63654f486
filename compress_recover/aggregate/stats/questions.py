"""The per-question table: the only reader of lm-eval's sample format.

Every model is scored on the same questions, so every later comparison is paired. Per
question (:func:`question_table`): ``correct`` (lm-eval's ``acc``), ``p_right`` (the
probability of the right choice among the choices: the softmax over the choices'
log-likelihoods, unnormalised as for ``acc``; :func:`choice_probability`), ``p_right_norm``
(the same softmax over log-likelihoods divided by each choice's length in characters, as for
``acc_norm``), the question's ``fact`` (the resampling unit and what
the split assigns: :func:`compress_recover.data.facts.question_fact`; a relation and its
inverse share one), its ``split`` (dev or test), and for a
method that keeps one prompt of a pool per question the prompt it chose and which prompts
forced a right answer, and ``kl_base``, the distance beside the flips: the KL divergence
KL(base || model) in nats between the base model's and this run's distributions over the
question's choices (:func:`with_kl_to_base`). The pooled task :data:`ALL_KNOWLEDGE` holds
every knowledge question.
"""

from __future__ import annotations

import json
import os

from ...data.facts import question_fact
from ...data.split import DEV, TEST, question_splits, split_settings
from ...io import read_jsonl
from ...prompt_choice import forced_field
from ...recover import choice_field
from ...runs import RunId
from .methods import Methods

KEYS = ["model", "compression", "recovery", "seed", "steps", "run", "task"]
COLUMNS = [*KEYS, "doc_id", "fact", "split", "correct", "p_right", "p_right_norm", "pool_choice", "pool_correct",
           "chosen", "choice_probs", "kl_base"]
# What a question is, the same in every run: its text, its choices (a JSON list), the right
# answer's text and how well known its subject is (compress_recover.data.popularity).
QUESTION_COLUMNS = ["question", "choices", "answer", "popularity", "popularity_measure"]
ALL_KNOWLEDGE = "all_knowledge"  # the pooled questions of every knowledge task


def choice_loglikelihoods(row: dict) -> list[float]:
    """Each choice's log-likelihood from a sample row (``filtered_resps``, else ``resps``)."""
    out = []
    for resp in row.get("filtered_resps") or row["resps"]:
        while isinstance(resp, (list, tuple)) and resp and isinstance(resp[0], (list, tuple)):
            resp = resp[0]  # raw resps: [[ll, is_greedy]] per choice
        out.append(float(resp[0] if isinstance(resp, (list, tuple)) else resp))
    return out


def request_arguments(row: dict) -> list[list]:
    """A sample row's ``arguments`` as one [context, continuation] list per choice, from
    either layout lm-eval writes (a list, or its EvaluationTracker's gen_args_i -> arg_j); [] for none."""
    args = row.get("arguments")
    if isinstance(args, dict):
        args = [[a[k] for k in sorted(a)] for _, a in sorted(args.items(), key=lambda kv: int(kv[0].split("_")[-1]))]
    return args or []


def choice_texts(row: dict) -> list[str] | None:
    """The choices' texts: the continuations of ``arguments`` without the delimiter every
    continuation starts with (lm-eval's ``target_delimiter``, a space by default)."""
    args = request_arguments(row)
    if not args:
        return None
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


def choice_probability(scores, gold: list[int]) -> float:
    """The probability of the right choice among the choices: softmax over ``scores`` (the
    choices' log-likelihoods), summed over the right choice(s). A probability in [0, 1]
    (chance 1/k for k choices), so unlike a difference of log-likelihoods in nats it cannot
    grow without bound when the output distribution merely sharpens. A question is right
    (acc) iff its right choice has the largest score, which is not ``p > 0.5`` when there are
    three or more choices (0.3 beside three wrong choices at 0.7/3 is right); NaN for a
    question without a wrong choice."""
    right = sorted(set(gold))
    if len(right) >= len(scores):
        return float("nan")
    p = shifted_exp(scores)
    return float(p[right].sum() / p.sum())


def shifted_exp(scores):
    """exp of the choices' log-likelihoods shifted by their maximum: the softmax's numerator
    (no overflow, the same softmax once divided by its sum)."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    return np.exp(s - s.max())


def question_record(row: dict) -> dict:
    """``correct`` (lm-eval's acc), ``p_right`` and ``p_right_norm``
    (:func:`choice_probability` on the log-likelihoods, and on them divided by each choice's
    length in characters) of one sample row."""
    scores = choice_loglikelihoods(row)
    texts = choice_texts(row)
    gold = gold_choices(row, texts)
    p_right = choice_probability(scores, gold)
    p_norm = float("nan")
    if texts is not None and len(texts) == len(scores):
        p_norm = choice_probability([s / max(len(t), 1) for s, t in zip(scores, texts, strict=True)], gold)
    chosen = max(range(len(scores)), key=scores.__getitem__)  # the first maximum, as lm-eval's np.argmax
    correct = bool(row["acc"] >= 0.5) if "acc" in row else chosen in gold
    return {"doc_id": row["doc_id"], "correct": correct, "p_right": p_right, "p_right_norm": p_norm,
            "chosen": texts[chosen] if texts is not None and len(texts) == len(scores) else str(chosen),
            "choice_probs": choice_probabilities(scores), "_logp": log_softmax(scores), "_gold": gold, "_texts": texts}


def log_softmax(scores) -> tuple:
    """The log-probabilities of the choices among the choices (full precision: the KL to
    the base model reads them, :func:`with_kl_to_base`)."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    shifted = s - s.max()
    return tuple(shifted - np.log(np.exp(shifted).sum()))


def kl_divergence(logp_reference, logp) -> float:
    """KL(reference || other) in nats over the same choices, from log-probabilities; NaN
    when the two score different numbers of choices."""
    import numpy as np

    if logp_reference is None or logp is None or len(logp_reference) != len(logp):
        return float("nan")
    ref, other = np.asarray(logp_reference, dtype=float), np.asarray(logp, dtype=float)
    return float(max(0.0, np.sum(np.exp(ref) * (ref - other))))


def with_kl_to_base(table):
    """``kl_base`` per row from the hidden ``_logp`` column (dropped): KL(base || run) over
    the choices, the base model being the same model's run with compression and recovery
    ``none`` on the same (task, question); 0 for the base model itself, NaN where the model
    has no base run. The distance practitioners read beside flips: a question can keep its
    answer and move far, or flip on a hair."""
    from ...runs import BASE

    base = table[(table.compression == BASE) & (table.recovery == BASE)]
    reference = {key: logp for key, logp in zip(zip(base.model, base.task, base.doc_id.astype(str)), base._logp)}
    table["kl_base"] = [kl_divergence(reference.get((m, t, str(d))), logp)
                        for m, t, d, logp in zip(table.model, table.task, table.doc_id, table._logp, strict=True)]
    return table.drop(columns=["_logp"])


def choice_probabilities(scores) -> str:
    """Every choice's probability among the choices (the softmax :func:`choice_probability`
    sums for the right one), as a JSON list rounded to 4 decimals: what the explorer shows."""
    p = shifted_exp(scores)
    return json.dumps([round(float(x), 4) for x in p / p.sum()])


def question_text(row: dict) -> str:
    """What was asked: the doc's ``question`` field (the built tasks'), else the prompt the
    model scored (lm-eval's context of the first choice). Of a question's runs the analysis
    keeps the shortest such text, so a few-shot run's demonstrations are not taken for it."""
    doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
    if isinstance(doc.get("question"), str):
        return doc["question"]
    args = request_arguments(row)
    return str(args[0][0]) if args else ""


def _popularity(doc, task: str, known: dict) -> tuple[float, str]:
    """A question's popularity and what it measures: the doc's own ``popularity`` field, else
    the built relation's measure of its subject (``known``: (relation, subject) -> (value,
    measure), from popularity.csv), else none (NaN)."""
    from ...data.popularity import DOC_FIELD, GIVEN, NONE

    doc = doc if isinstance(doc, dict) else {}
    if doc.get(DOC_FIELD) is not None:
        try:
            return float(doc[DOC_FIELD]), GIVEN
        except (TypeError, ValueError):
            raise ValueError(f"task {task}: a doc's {DOC_FIELD} field must be a number, got {doc[DOC_FIELD]!r}")
    found = known.get((task, str(doc.get("subject"))))
    return found if found is not None else (float("nan"), NONE)


def read_popularity(path) -> dict:
    """popularity.csv (rule ``popularity``) as (relation, subject) -> (popularity, measure); {} without a file."""
    import pandas as pd

    if path is None:
        return {}
    frame = pd.read_csv(path, keep_default_na=False, dtype={"subject": str, "popularity": str})
    return {(r.relation, r.subject): (float(r.popularity) if r.popularity else float("nan"), r.measure)
            for r in frame.itertuples()}


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
                   split: dict | None = None, popularity: dict | None = None):
    """One row per (model, compression, recovery, seed, steps, run, task, doc_id): ``fact``
    (read from the sample's ``doc``: its ``fact`` field, else the built tasks' unordered
    (subject, answer_text) pair, else the question alone,
    :func:`compress_recover.data.facts.question_fact`), ``split`` (``dev`` or ``test``, whole
    facts at a time, :func:`compress_recover.data.split.question_splits` with the settings
    ``split``, config.yaml ``data.split``; ``None``: every question test), ``correct``,
    ``p_right``, ``p_right_norm``, and for prompt-pool methods ``pool_choice`` and ``pool_correct``.
    ``steps``: the training steps of the run's checkpoint (None without training, or for
    labels written before budget curves). Runs whose recovery training failed have no
    question (:func:`compress_recover.failures.split_failed` sets them apart)."""
    import pandas as pd

    methods = methods if isinstance(methods, Methods) else Methods(methods or {})
    rows, what = [], {}
    for labels, samples_file in entries:
        labels = {**RunId.from_labels(labels).as_dict(), "task": labels["task"]}
        method = methods.method(labels["recovery"], labels["run"])
        for row in read_jsonl(samples_file):
            record = question_record(row)
            gold, texts = record.pop("_gold"), record.pop("_texts")
            if row.get("task") and row["task"] != labels["task"]:  # a group task's subtask: ids repeat
                record["doc_id"] = f"{row['task']}:{record['doc_id']}"
            record["fact"] = question_fact(row.get("doc"), labels["task"], str(record["doc_id"]))
            rows.append({**labels, **record, **pool_record(row, gold, method)})
            key, text = (labels["task"], str(record["doc_id"])), question_text(row)
            if key not in what or len(text) < len(what[key]["question"]):
                what[key] = {"question": text, "choices": json.dumps(texts, ensure_ascii=False),
                             "answer": " / ".join(texts[g] if texts else str(g) for g in gold),
                             **dict(zip(("popularity", "popularity_measure"),
                                        _popularity(row.get("doc"), labels["task"], popularity or {}), strict=True))}
    table = with_kl_to_base(pd.DataFrame(rows, columns=[*COLUMNS, "_logp"]))
    for column in ("seed", "steps"):
        table[column] = table[column].astype("Int64")
    table["doc_id"] = table["doc_id"].astype(str)
    questions = {task: sorted(set(ids)) for task, ids in table.groupby("task", sort=False).doc_id}
    facts = table[["task", "doc_id", "fact"]].drop_duplicates()
    twice = facts[facts.duplicated(["task", "doc_id"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ValueError(f"task {first.task} question {first.doc_id}: its runs' docs name different facts "
                         f"{sorted(twice[(twice.task == first.task) & (twice.doc_id == first.doc_id)].fact)}")
    splits = question_splits(questions, **split_settings(split),
                             facts=dict(zip(zip(facts.task, facts.doc_id, strict=True), facts.fact, strict=True)))
    table["split"] = [splits[key] for key in zip(table.task, table.doc_id, strict=True)]
    described = pd.DataFrame([{"task": t, "doc_id": d, **v} for (t, d), v in what.items()],
                             columns=["task", "doc_id", *QUESTION_COLUMNS])
    return table.merge(described, on=["task", "doc_id"], how="left", validate="many_to_one")


def with_pooled_task(table, knowledge_tasks: list[str]):
    """Append the pooled task ``all_knowledge``: every knowledge question, ids made unique
    (``<task>:<doc_id>``, :func:`source_task` reads the task back), facts kept: the questions
    of a relation and its inverse stay one fact in the pool."""
    import pandas as pd

    table = table.copy()
    table["doc_id"] = table["doc_id"].astype(str)
    pooled = table[table.task.isin(knowledge_tasks)].copy()
    if pooled.empty:
        return table
    pooled["doc_id"] = pooled["task"] + ":" + pooled["doc_id"]
    pooled["task"] = ALL_KNOWLEDGE
    return pd.concat([table, pooled], ignore_index=True)


def source_task(task: str, doc_id: str) -> str:
    """The task a question of grid ``task`` comes from: itself, or for the pooled task the
    task its id names (:func:`with_pooled_task`)."""
    return str(doc_id).split(":", 1)[0] if task == ALL_KNOWLEDGE else task


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
