"""The content-free baseline: what each model answers with the subject masked, and how far above it it scores.

Every evaluation also scores each built knowledge task's content-free variant, and that of
each user's knowledge task whose ``data.task_dirs`` entry names its ``subject_field`` (the
subject replaced by a mask, same template, choices and answer, same doc ids:
:mod:`compress_recover.data.content_free`, :mod:`compress_recover.data.content_free_task`). :func:`prior_table` reads those samples;
:func:`with_priors` pairs each question of the question table with the same run's answer to
its masked twin, by (run, task, doc_id), adding

- ``prior_choice``: the choice the run makes without the subject (its prior);
- ``prior_correct``: whether that choice is the right one;
- ``from_prior``: whether the run's answer with the subject equals it ("answered from the
  prior": the subject did not change the answer; right or wrong, such an answer is no
  evidence that the model knows the fact).

A question without a content-free twin (``data.content_free_mask: null``, a user's task
whose entry names no ``subject_field``) has them empty (NaN), never a guess.
:func:`content_free_table` gives, per (model, compression, recovery, task), the accuracy,
the content-free accuracy, accuracy above it with a 95% cluster-bootstrap interval over
clusters of facts and shared right answers (:func:`.clusters.question_clusters`,
:func:`.bootstrap.fact_strata`, :func:`.bootstrap.cluster_weights`: the same resampling
unit as every other interval) and the share of questions answered from the
prior, on the questions that have a twin.
"""

from __future__ import annotations

import json

from ...io import read_jsonl
from ...runs import RunId
from .bootstrap import CHUNK, cluster_weights, fact_strata, interval, stable_seed
from .clusters import answer_keys, question_clusters
from .questions import KEYS, question_record, source_task

PRIOR_COLUMNS = ["prior_choice", "prior_correct", "from_prior"]
CONTENT_FREE_COLUMNS = ["model", "compression", "recovery", "task", "seeds", "n", "acc", "acc_content_free",
                        "above_content_free", "ci_low", "ci_high", "from_prior"]


def prior_table(entries: list[tuple[dict, str]]):
    """One row per (run, task, doc_id) of the content-free evaluations ``entries`` ((labels,
    samples file); labels name the run and the knowledge task the variant masks):
    ``prior_choice``, ``prior_correct`` and the choices' texts (``_choices``, JSON)."""
    import pandas as pd

    rows = []
    for labels, samples_file in entries:
        labels = {**RunId.from_labels(labels).as_dict(), "task": labels["task"]}
        for row in read_jsonl(samples_file):
            record = question_record(row)
            rows.append({**labels, "doc_id": str(record["doc_id"]), "prior_choice": record["chosen"],
                         "prior_correct": bool(record["correct"]),
                         "_choices": json.dumps(record["_texts"], ensure_ascii=False)})
    table = pd.DataFrame(rows, columns=[*KEYS, "doc_id", "prior_choice", "prior_correct", "_choices"])
    for column in ("seed", "steps"):
        table[column] = table[column].astype("Int64")
    return table


def with_priors(table, priors):
    """``table`` (:func:`.questions.question_table`, before the pooled task) with
    :data:`PRIOR_COLUMNS`: each row paired with its run's content-free row of the same task
    and doc_id. A run with content-free rows must have one for each of its questions, asked
    with the same choices (an error naming the run, task and question otherwise); a run or
    task without any keeps the columns empty."""
    import pandas as pd

    keys = [*KEYS, "doc_id"]
    table = table.copy()
    if priors is None or priors.empty:
        return table.assign(prior_choice=pd.Series([float("nan")] * len(table), index=table.index, dtype=object),
                            prior_correct=pd.Series([float("nan")] * len(table), index=table.index, dtype=object),
                            from_prior=pd.Series([float("nan")] * len(table), index=table.index, dtype=object))
    twice = priors[priors.duplicated(keys, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ValueError(f"content-free samples of {first.run} / task {first.task}: question {first.doc_id} "
                         "scored twice")
    merged = table.merge(priors, on=keys, how="left", validate="many_to_one", indicator=True)
    paired_runs = set(map(tuple, priors[[*KEYS]].astype(str).drop_duplicates().to_numpy()))
    run_keys = list(map(tuple, merged[[*KEYS]].astype(str).to_numpy()))
    expected = pd.Series([k in paired_runs for k in run_keys], index=merged.index)
    missing = merged[expected & (merged["_merge"] == "left_only")]
    if not missing.empty:
        first = missing.iloc[0]
        raise ValueError(f"{first.model} / {first.compression} / {first.run}: the content-free variant of task "
                         f"{first.task} has no question {first.doc_id} ({missing.shape[0]} missing); its doc ids must "
                         "pair 1:1 with the task's: rebuild the task folder and evaluate again")
    paired = merged["_merge"] == "both"
    other = paired & (merged["_choices"] != merged["choices"])
    if other.any():
        first = merged[other].iloc[0]
        raise ValueError(f"{first.model} / {first.compression} / {first.run}, task {first.task} question "
                         f"{first.doc_id}: the content-free variant asks other choices ({first._choices}) than the "
                         f"question ({first.choices}); a content-free twin keeps the choices")
    extra = len(priors) - int(paired.sum())
    if extra:
        raise ValueError(f"{extra} content-free row(s) pair with no question of the table (e.g. "
                         f"{priors.iloc[0].run} / task {priors.iloc[0].task}); the variant asks more questions "
                         "than its task")
    merged["prior_correct"] = merged["prior_correct"].where(paired, float("nan")).astype(object)
    merged["prior_choice"] = merged["prior_choice"].where(paired, float("nan")).astype(object)
    merged["from_prior"] = pd.Series([bool(c == p) if ok else float("nan") for c, p, ok in
                                      zip(merged["chosen"], merged["prior_choice"], paired, strict=True)],
                                     index=merged.index, dtype=object)
    return merged.drop(columns=["_choices", "_merge"])


def _wide(frame, column: str, doc_ids, runs):
    import numpy as np

    wide = frame.pivot(index="doc_id", columns="run", values=column)
    return np.asarray(wide.reindex(index=list(doc_ids), columns=list(runs)).to_numpy(dtype=float).T)


def content_free_table(headline, *, iters: int, seed: int):
    """Per (model, compression, recovery, task) of ``headline`` (test questions, the final
    budget's runs, the pooled task included, with :data:`PRIOR_COLUMNS`): on the questions
    that have a content-free twin (``n``), the accuracy (mean over runs), the content-free
    accuracy, their difference ``above_content_free`` with its 95% interval (clusters of facts
    and shared right answers resampled, stratified by task, every run of the cell on the same draw, the mean
    over runs; the seeds are not resampled) and ``from_prior``, the share of answers equal to
    the run's content-free answer. A cell without any twin has n 0 and the rest empty."""
    import numpy as np
    import pandas as pd

    rows = []
    for (model, task), sub in headline.groupby(["model", "task"], sort=True):
        has = sub["prior_correct"].notna()
        doc_ids = tuple(sorted(set(sub.doc_id[has])))
        facts = dict(zip(sub.doc_id, sub.fact.astype(str), strict=True))
        keys = answer_keys(sub)
        answers = {} if keys is None else dict(zip(sub.doc_id, keys, strict=True))
        cells = {}
        for (comp, rec), frame in sub.groupby(["compression", "recovery"], sort=True):
            runs = tuple(sorted(set(frame.run)))
            correct = _wide(frame, "correct", doc_ids, runs)
            prior = _wide(frame.assign(p=frame.prior_correct.astype(float)), "p", doc_ids, runs)
            same = _wide(frame.assign(f=frame.from_prior.astype(float)), "f", doc_ids, runs)
            cells[(comp, rec)] = (runs, correct, prior, same)
        draws = {k: np.empty(iters) for k, (_, c, p, _s) in cells.items() if len(doc_ids) and not np.isnan(p).any()}
        if draws and doc_ids:
            clusters = question_clusters([facts[d] for d in doc_ids], [answers.get(d) for d in doc_ids])
            fact_index, strata = fact_strata(clusters, [source_task(task, d) for d in doc_ids])
            rng = np.random.default_rng(stable_seed(seed, model, task, "content_free"))
            for start in range(0, iters, CHUNK):
                size = min(CHUNK, iters - start)
                weights = cluster_weights(fact_index, strata, size, rng)
                total = weights.sum(axis=1, keepdims=True)
                for key in draws:
                    _, correct, prior, _s = cells[key]
                    draws[key][start:start + size] = (weights @ (correct - prior).T / total).mean(axis=1)
        for (comp, rec), (runs, correct, prior, same) in cells.items():
            row = {"model": model, "compression": comp, "recovery": rec, "task": task, "seeds": len(runs)}
            if (comp, rec) in draws:
                low, high = interval(draws[(comp, rec)])
                acc, cf = float(correct.mean()), float(prior.mean())
                row.update(n=len(doc_ids), acc=acc, acc_content_free=cf, above_content_free=acc - cf,
                           ci_low=low, ci_high=high, from_prior=float(same.mean()))
            else:
                row.update(n=0, **dict.fromkeys(CONTENT_FREE_COLUMNS[6:], float("nan")))
            rows.append(row)
    return pd.DataFrame(rows, columns=CONTENT_FREE_COLUMNS)
