"""The statistics behind the verdict, on per-question data read from lm-eval's samples.

Every model is scored on the same questions, so every comparison is paired:

- per question (:func:`question_table`): ``correct`` (lm-eval's ``acc``), ``margin``
  (log-likelihood of the right choice minus that of the best wrong choice, unnormalised
  as for ``acc``) and ``margin_norm`` (the same on log-likelihoods divided by each
  choice's length in characters, as for ``acc_norm``);
- bootstrap (:func:`accuracy_draws`, :func:`seed_means`): questions are resampled with
  replacement, the same draw for every model of a (model, task) grid; a recovery's seeds
  are resampled with replacement on top (two levels); with one seed this is the plain
  question bootstrap;
- recovery fraction (:func:`fraction`): (recovered - compressed - control gain) /
  (base - compressed), NaN (not infinite) where compression did no damage;
- Holm's step-down procedure (:func:`holm`) with the level each hypothesis was decided
  at, and bootstrap bounds that agree exactly with the bootstrap p-values
  (:func:`lower_bound`, :func:`upper_bound`);
- McNemar's exact test on right/wrong, a paired sign-flip permutation test with a t
  interval on the per-question margins, knowledge flips, and the ablation of methods that
  choose one prompt of a pool per question.

A recovery's side (``parameters``: new weights inside the model; ``input``: prompts at
the input) comes from its method's registration, passed in as ``methods`` (recovery
group or run name -> method) and ``sides`` (method -> side).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..data.split import question_splits, split_settings
from ..io import read_json, read_jsonl
from ..tokens import budget_steps as steps_list

BASE = "none"  # the compression (and recovery) of the base model
KEYS = ["model", "compression", "recovery", "seed", "steps", "run", "task"]
COLUMNS = [*KEYS, "doc_id", "split", "correct", "margin", "margin_norm", "pool_choice", "pool_correct"]
ALL_KNOWLEDGE = "all_knowledge"  # the pooled questions of every knowledge task
CHUNK = 256  # bootstrap resamples drawn at a time (bounds memory on large task suites)


def stable_seed(*parts) -> int:
    """A seed from ``parts`` that does not depend on Python's hash salt or on call order."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


# --------------------------------------------------------------------------- per question

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
    """For a method that keeps one prompt of a pool per question: the prompt it chose
    (``<method>_prompt``) and, when the evaluation scored the question under every prompt
    forced (``<method>_prompt_loglikelihoods``: per prompt, per choice), a string of 0/1,
    one per prompt: whether that prompt forced answers right."""
    key = f"{method}_prompt"
    chosen = row.get(key)
    forced = row.get(f"{key}_loglikelihoods")
    correct = ""
    if forced:
        correct = "".join("1" if max(range(len(s)), key=s.__getitem__) in gold else "0" for s in forced)
    return {"pool_choice": float("nan") if chosen is None else int(chosen), "pool_correct": correct}


def _int_or_none(value) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _labels(labels: dict) -> dict:
    seed = _int_or_none(labels.get("seed"))
    run = labels.get("run") or (labels["recovery"] if seed is None else f"{labels['recovery']}.seed{seed}")
    return {"model": labels["model"], "compression": labels["compression"], "recovery": labels["recovery"],
            "seed": seed, "steps": _int_or_none(labels.get("steps")), "run": run, "task": labels["task"]}


def method_of(recovery: str, run: str | None = None, methods: dict[str, str] | None = None) -> str:
    """The registered method of a recovery group (or run); the group's own name if unmapped."""
    methods = methods or {}
    return methods.get(recovery) or methods.get(run or "") or recovery


FAILED_RUN_COLUMNS = ["model", "compression", "recovery", "seed", "run", "steps", "failure"]
SAMPLES_SUFFIX = ".samples.jsonl"


def evaluation_failure(samples_file: str | Path) -> str | None:
    """Why the evaluation whose samples are ``samples_file`` (``<task>.samples.jsonl``) was not
    run, from its results JSON beside it (``<task>.json``: ``status`` failed, the run's
    recovery training failed); None for an evaluated run (or samples with no results beside)."""
    samples_file = Path(samples_file)
    if not samples_file.name.endswith(SAMPLES_SUFFIX):
        return None
    results = samples_file.with_name(samples_file.name[:-len(SAMPLES_SUFFIX)] + ".json")
    if not results.is_file():
        return None
    labels = read_json(results).get("compress_recover", {})
    if labels.get("status") != "failed":
        return None
    return labels.get("failure") or "no reason recorded"


def split_failed(entries: list[tuple[dict, str]]) -> tuple[list[tuple[dict, str]], list[dict]]:
    """``entries`` ((labels, samples file)) as the evaluated ones and the failed runs: one
    record per run whose recovery training failed (:data:`FAILED_RUN_COLUMNS`, its tasks
    merged), in order."""
    kept, failed = [], {}
    for labels, samples_file in entries:
        failure = evaluation_failure(samples_file)
        if failure is None:
            kept.append((labels, samples_file))
            continue
        run = _labels(labels)
        failed.setdefault((run["model"], run["compression"], run["run"]),
                          {**{k: run[k] for k in FAILED_RUN_COLUMNS if k != "failure"}, "failure": failure})
    return kept, list(failed.values())


def failure_text(runs: list[dict]) -> str:
    """Why ``runs`` (of one recovery group) failed: the reason, or each seed's where they differ."""
    reasons = list(dict.fromkeys(r["failure"] for r in runs))
    return reasons[0] if len(reasons) == 1 else "; ".join(f"seed {r['seed']}: {r['failure']}" for r in runs)


def seeds_text(runs: list[dict]) -> str:
    """"seed 1" or "seeds 0, 2": the seeds of ``runs``."""
    seeds = [str(r["seed"]) for r in runs]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"


def failed_groups(failed: list[dict], final: int | None) -> dict[tuple, list[dict]]:
    """(model, compression, recovery) -> its runs whose training failed, at the final budget
    ``final`` (every run when None; a run without steps counts as the final budget's)."""
    out = {}
    for run in failed:
        if final is None or run["steps"] is None or run["steps"] == final:
            out.setdefault((run["model"], run["compression"], run["recovery"]), []).append(run)
    return out


def question_table(entries: list[tuple[dict, str]], methods: dict[str, str] | None = None,
                   split: dict | None = None):
    """One row per (model, compression, recovery, seed, steps, run, task, doc_id): ``split``
    (``dev`` or ``test``, :func:`compress_recover.data.split.question_splits` with the settings
    ``split``, config.yaml ``data.split``; ``None``: every question test), ``correct``,
    ``margin``, ``margin_norm``, and for prompt-pool methods ``pool_choice`` and ``pool_correct``.
    ``steps``: the training steps of the run's checkpoint (None without training, or for
    labels written before budget curves). Runs whose recovery training failed have no
    question (:func:`split_failed` sets them apart)."""
    import pandas as pd

    rows = []
    for labels, samples_file in entries:
        labels = _labels(labels)
        method = method_of(labels["recovery"], labels["run"], methods)
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


correctness_table = question_table  # the former name


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


# --------------------------------------------------------------------------- aligned cells

@dataclass(frozen=True)
class Cell:
    """One (compression, recovery) of a (model, task) grid: one row per run (seed), one
    column per question, in the grid's question order."""

    runs: tuple
    seeds: tuple
    correct: "numpy.ndarray"  # noqa: F821
    margin: "numpy.ndarray"  # noqa: F821
    margin_norm: "numpy.ndarray"  # noqa: F821

    @property
    def run_accuracies(self):
        return self.correct.mean(axis=1)

    @property
    def accuracy(self) -> float:
        """Mean over runs of each run's accuracy."""
        return float(self.correct.mean())


@dataclass(frozen=True)
class Grid:
    model: str
    task: str
    doc_ids: tuple
    cells: dict  # (compression, recovery) -> Cell

    def get(self, compression: str, recovery: str) -> Cell | None:
        return self.cells.get((compression, recovery))

    @property
    def n(self) -> int:
        return len(self.doc_ids)

    def compressions(self) -> list[str]:
        return sorted({c for c, r in self.cells if c != BASE and r == BASE})

    def recoveries(self, compression: str) -> list[str]:
        return sorted(r for c, r in self.cells if c == compression and r != BASE)


def _seed_order(seed) -> tuple:
    return (seed is not None, -1 if seed is None else seed)


def _cell(frame, doc_ids) -> Cell:
    import numpy as np
    import pandas as pd

    seeds = {r.run: (None if pd.isna(r.seed) else int(r.seed))
             for r in frame[["run", "seed"]].drop_duplicates().itertuples(index=False)}
    runs = sorted(seeds, key=lambda run: (_seed_order(seeds[run]), run))
    arrays = {}
    for column in ("correct", "margin", "margin_norm"):
        wide = frame.pivot(index="doc_id", columns="run", values=column)
        arrays[column] = np.asarray(wide.loc[list(doc_ids), runs].to_numpy(dtype=float).T)
    return Cell(runs=tuple(runs), seeds=tuple(seeds[r] for r in runs), **arrays)


def build_grids(table) -> dict[tuple[str, str], Grid]:
    """(model, task) -> its grid of cells aligned on the base model's questions."""
    grids = {}
    for (model, task), sub in table.groupby(["model", "task"], sort=True):
        frames = dict(iter(sub.groupby(["compression", "recovery"], sort=True)))
        reference = frames.get((BASE, BASE), next(iter(frames.values())))
        doc_ids = tuple(sorted(set(reference.doc_id)))
        for key, frame in frames.items():
            for run, ids in frame.groupby("run").doc_id:
                if set(ids) != set(doc_ids) or ids.duplicated().any():
                    raise ValueError(f"{model}/{task}: {'/'.join(key)} ({run}) was scored on other questions "
                                     "than the base model")
        grids[(model, task)] = Grid(model, task, doc_ids, {k: _cell(f, doc_ids) for k, f in frames.items()})
    return grids


# --------------------------------------------------------------------------- bootstrap

def accuracy_draws(grid: Grid, iters: int, seed: int) -> dict:
    """(compression, recovery) -> (iters, runs) array: each run's accuracy on resampled
    questions, the same resample of questions for every cell of the grid (paired)."""
    import numpy as np

    keys = list(grid.cells)
    stacked = np.concatenate([grid.cells[k].correct for k in keys])
    n = grid.n
    out = np.empty((iters, stacked.shape[0]))
    rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, "questions"))
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        idx = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        counts = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n)
        out[start:start + size] = counts @ stacked.T / n
    sizes = np.cumsum([0] + [len(grid.cells[k].runs) for k in keys])
    return {k: out[:, sizes[i]:sizes[i + 1]] for i, k in enumerate(keys)}


def seed_means(per_run, rng):
    """Mean over runs resampled with replacement, per bootstrap row of ``per_run``
    ((iters, runs) or (runs,) with ``rng`` drawing iters)."""
    import numpy as np

    if per_run.ndim == 1:
        raise ValueError("pass (iters, runs)")
    iters, runs = per_run.shape
    if runs == 1:
        return per_run[:, 0].copy()
    pick = rng.integers(0, runs, size=(iters, runs))
    return np.take_along_axis(per_run, pick, axis=1).mean(axis=1)


def fraction(base, compressed, recovered, gain=0.0):
    """(recovered - compressed - gain) / (base - compressed); NaN where base - compressed <= 0."""
    import numpy as np

    base, compressed, recovered, gain = (np.asarray(x, dtype=float) for x in (base, compressed, recovered, gain))
    damage = base - compressed
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(damage > 0, (recovered - compressed - gain) / np.where(damage > 0, damage, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def tail_count(a: float, iters: int) -> int:
    """How many of ``iters`` ordered resamples lie beyond a bound of tail probability ``a``."""
    return int(math.floor(a * iters * (1 + 1e-9)))


def lower_bound(draws, a: float) -> float:
    """Lower bootstrap bound with tail ``a``: undefined resamples (NaN) count as -inf, so
    ``lower_bound(d, a) >= t`` exactly when ``share_below(d, t) <= a``."""
    import numpy as np

    ordered = np.sort(np.where(np.isnan(draws), -np.inf, draws))
    return float(ordered[min(tail_count(a, len(ordered)), len(ordered) - 1)])


def upper_bound(draws, a: float) -> float:
    """Upper bootstrap bound with tail ``a`` (NaN counts as +inf): ``upper_bound(d, a) < t``
    exactly when ``share_at_or_above(d, t) <= a``."""
    import numpy as np

    ordered = np.sort(np.where(np.isnan(draws), np.inf, draws))
    return float(ordered[max(len(ordered) - 1 - tail_count(a, len(ordered)), 0)])


def share_below(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is at least ``threshold``": the share of
    resamples below it (undefined resamples count against the claim)."""
    import numpy as np

    return float(np.mean(np.isnan(draws) | (draws < threshold)))


def share_at_or_above(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is below ``threshold``"."""
    import numpy as np

    return float(np.mean(np.isnan(draws) | (draws >= threshold)))


def share_at_or_below(draws, threshold: float) -> float:
    """Bootstrap p-value against "the value is above ``threshold``": ``lower_bound(d, a) >
    t`` exactly when this is <= a."""
    import numpy as np

    return float(np.mean(np.isnan(draws) | (draws <= threshold)))


def holm(p_values: list[float], alpha: float) -> tuple[list[float], list[float], list[bool]]:
    """Holm's step-down procedure: adjusted p-values, the level each hypothesis was decided
    at, and whether it is rejected.

    Sorted p(1) <= ... <= p(m): H(r) is rejected while p(j) <= alpha / (m - j + 1) for every
    j <= r. A rejected H(r) was decided at alpha / (m - r + 1); every other hypothesis at the
    level where the procedure stopped, alpha / (m - s + 1) (s the first rank not rejected),
    which its p-value exceeds. So an interval at that level excludes the hypothesis exactly
    when Holm rejects it."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, levels, rejected = [1.0] * m, [alpha] * m, [False] * m
    running, stopped = 0.0, None
    for rank, i in enumerate(order, start=1):
        level = alpha / (m - rank + 1)
        running = max(running, min(1.0, (m - rank + 1) * p_values[i]))
        adjusted[i] = running
        if stopped is None and p_values[i] > level * (1 + 1e-9):
            stopped = level
        rejected[i] = stopped is None
        levels[i] = level if stopped is None else stopped
    return adjusted, levels, rejected


# --------------------------------------------------------------------------- paired tests

def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a right & b wrong,
    a wrong & b right): a binomial test of a_only out of a_only + b_only at 1/2."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def sign_flip_p(differences, iters: int, seed: int) -> float:
    """Two-sided paired permutation test of mean(differences) = 0: each question's
    difference has its sign flipped at random (exchangeable under H0: the two models'
    margins have the same distribution per question); p = (1 + #|T*| >= |T|) / (1 + iters)."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    if not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        signs = rng.integers(0, 2, size=(size, len(d))) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d / len(d)) >= observed * (1 - 1e-12)))
    return (1 + hits) / (1 + iters)


def t_interval(differences, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean difference."""
    import numpy as np
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def _run_label(cell: Cell, i: int) -> str:
    return "" if cell.seeds[i] is None else str(cell.seeds[i])


def _same_seed_runs(a: Cell, b: Cell) -> list[tuple[int, int]]:
    """Run index pairs of two cells with the same seed (else the i-th run of each)."""
    pairs = [(i, b.seeds.index(seed)) for i, seed in enumerate(a.seeds) if seed in b.seeds]
    return pairs or list(zip(range(len(a.runs)), range(len(b.runs))))


def paired_tests(grids: dict, *, methods: dict[str, str], sides: dict[str, str]):
    """McNemar exact tests per run: compressed vs base, each recovery vs its compressed
    model, each format control (the uncompressed model recovered) vs the base, and every
    input-side recovery (b) vs every parameter-side one (a) of the same seed."""
    import pandas as pd

    rows = []

    def test(grid, comparison, a_key, a_i, b_key, b_i):
        a_cell, b_cell = grid.get(*a_key), grid.get(*b_key)
        a, b = a_cell.correct[a_i] > 0.5, b_cell.correct[b_i] > 0.5
        a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
        rows.append({"model": grid.model, "task": grid.task, "comparison": comparison, "a": "/".join(a_key),
                     "a_seed": _run_label(a_cell, a_i), "b": "/".join(b_key), "b_seed": _run_label(b_cell, b_i),
                     "n": len(a), "a_acc": a.mean(), "b_acc": b.mean(), "a_only": a_only, "b_only": b_only,
                     "p_value": mcnemar_exact(a_only, b_only)})

    for grid in grids.values():
        if grid.get(BASE, BASE) is None:
            continue
        for rec in grid.recoveries(BASE):
            for i in range(len(grid.get(BASE, rec).runs)):
                test(grid, "control", (BASE, BASE), 0, (BASE, rec), i)
        for comp in grid.compressions():
            test(grid, "compression", (BASE, BASE), 0, (comp, BASE), 0)
            recs = grid.recoveries(comp)
            for rec in recs:
                for i in range(len(grid.get(comp, rec).runs)):
                    test(grid, "recovery", (comp, BASE), 0, (comp, rec), i)
            side = {r: sides.get(method_of(r, None, methods)) for r in recs}
            for p in (r for r in recs if side[r] == "parameters"):
                for q in (r for r in recs if side[r] == "input"):
                    for i, j in _same_seed_runs(grid.get(comp, p), grid.get(comp, q)):
                        test(grid, "input_vs_parameters", (comp, p), i, (comp, q), j)
    return pd.DataFrame(rows, columns=["model", "task", "comparison", "a", "a_seed", "b", "b_seed", "n", "a_acc",
                                       "b_acc", "a_only", "b_only", "p_value"])


def margin_tests(grids: dict, *, iters: int, seed: int, level: float = 0.95):
    """Each recovery vs its compressed model on the per-question margin (the recovery's
    margin averaged over its seeds first): mean difference, t interval, sign-flip p-value;
    once on ``margin`` and once on ``margin_norm``."""
    import numpy as np
    import pandas as pd

    rows = []
    for grid in grids.values():
        for comp in grid.compressions():
            compressed = grid.get(comp, BASE)
            for rec in grid.recoveries(comp):
                cell = grid.get(comp, rec)
                for metric in ("margin", "margin_norm"):
                    d = getattr(cell, metric).mean(axis=0) - getattr(compressed, metric)[0]
                    if np.isnan(d).any():
                        continue
                    low, high = t_interval(d, level)
                    p = sign_flip_p(d, iters, stable_seed(seed, grid.model, grid.task, comp, rec, metric))
                    rows.append({"model": grid.model, "task": grid.task, "compression": comp, "recovery": rec,
                                 "metric": metric, "seeds": len(cell.runs), "n": grid.n,
                                 "compressed_mean": float(np.mean(getattr(compressed, metric)[0])),
                                 "recovered_mean": float(np.mean(getattr(cell, metric))),
                                 "mean_difference": float(d.mean()), "ci_low": low, "ci_high": high,
                                 "improved": int((d > 0).sum()), "worsened": int((d < 0).sum()), "p_value": p})
    return pd.DataFrame(rows, columns=["model", "task", "compression", "recovery", "metric", "seeds", "n",
                                       "compressed_mean", "recovered_mean", "mean_difference", "ci_low", "ci_high",
                                       "improved", "worsened", "p_value"])


def flips(grids: dict):
    """Question counts per (model, compression, task, category, recovery, seed).

    Categories: ``kept`` (right before and after compression), ``lost`` (right before,
    wrong after), ``gained`` (wrong before, right after), per recovery run ``recovered``
    (lost, then right after this recovery) and ``broken`` (right after compression, wrong
    after this recovery), and ``recovered_by_several`` (lost, won back by two or more
    recovery methods, each counted when a majority of its seeds won it back)."""
    import numpy as np
    import pandas as pd

    rows = []
    for grid in grids.values():
        if grid.get(BASE, BASE) is None:
            continue
        b = grid.get(BASE, BASE).correct[0] > 0.5
        for comp in grid.compressions():
            c = grid.get(comp, BASE).correct[0] > 0.5
            lost = b & ~c

            def add(category, count, recovery="", seed=""):
                rows.append({"model": grid.model, "compression": comp, "task": grid.task, "category": category,
                             "recovery": recovery, "seed": seed, "count": int(count)})

            add("kept", (b & c).sum())
            add("lost", lost.sum())
            add("gained", (~b & c).sum())
            majorities = []
            for rec in grid.recoveries(comp):
                cell = grid.get(comp, rec)
                for i in range(len(cell.runs)):
                    r = cell.correct[i] > 0.5
                    add("recovered", (lost & r).sum(), rec, _run_label(cell, i))
                    add("broken", (c & ~r).sum(), rec, _run_label(cell, i))
                majorities.append(cell.correct.mean(axis=0) > 0.5)
            if majorities:
                add("recovered_by_several", (lost & (np.sum(majorities, axis=0) >= 2)).sum())
    return pd.DataFrame(rows, columns=["model", "compression", "task", "category", "recovery", "seed", "count"])


# --------------------------------------------------------------------------- prompt pools

def _pool_run_ablation(frame, seed: int) -> dict:
    """The ablation numbers of one run of a prompt-pool method (see :func:`pool_ablation`)."""
    import numpy as np

    chosen = frame.pool_choice.to_numpy(dtype=float)
    out = {"n": len(frame), "acc_as_chosen": float(frame.correct.mean())}
    forced_rows = [s for s in frame.pool_correct if s]
    size = len(forced_rows[0]) if forced_rows and len(forced_rows) == len(frame) else None
    pool = size or int(np.nanmax(chosen)) + 1
    counts = np.bincount(chosen.astype(int), minlength=pool)
    out.update(pool_size=pool, chosen_counts="/".join(map(str, counts)))
    if size is None:
        return out
    forced = np.array([[c == "1" for c in s] for s in frame.pool_correct], dtype=float)  # questions × prompts
    n = len(forced)
    rng = np.random.default_rng(seed)
    random_pick = rng.integers(0, size, size=n)
    halves = np.array_split(rng.permutation(n), 2)
    best = [int(np.argmax(forced[h].mean(axis=0))) for h in halves]  # first maximum on ties
    crossfit = (forced[halves[1], best[0]].sum() + forced[halves[0], best[1]].sum()) / n
    out.update(
        acc_chosen_forced=float(forced[np.arange(n), chosen.astype(int)].mean()),
        acc_random_prompt=float(forced[np.arange(n), random_pick].mean()),
        acc_random_expected=float(forced.mean()),
        acc_best_fixed_crossfit=float(crossfit),
        best_fixed_prompts=f"{best[0]}|{best[1]}",
        acc_best_fixed_in_sample=float(forced.mean(axis=0).max()),
        acc_any_prompt=float(forced.max(axis=1).mean()),
        acc_per_prompt="/".join(f"{a:.3f}" for a in forced.mean(axis=0)),
    )
    return out


POOL_COLUMNS = ["model", "compression", "recovery", "seed", "run", "task", "n", "pool_size", "chosen_counts",
                "acc_as_chosen", "acc_chosen_forced", "acc_random_prompt", "acc_random_expected",
                "acc_best_fixed_crossfit", "best_fixed_prompts", "acc_best_fixed_in_sample", "acc_any_prompt",
                "acc_per_prompt"]


def pool_ablation(table, *, seed: int):
    """Per run of a method that keeps one prompt of a pool per question: how often each
    prompt was chosen, the accuracy as chosen, with one prompt drawn at random per question
    (seeded; and its expectation, the mean over prompts), with the best fixed prompt chosen
    by 2-fold cross-fitting (questions split in two seeded halves; the prompt best on one
    half is scored on the other and vice versa), the in-sample best fixed prompt (optimistic)
    and the share of questions some prompt answers right (an upper bound for any choice)."""
    import pandas as pd

    rows = []
    pooled = table[table.pool_choice.notna()]
    for (model, comp, rec, run, task), frame in pooled.groupby(["model", "compression", "recovery", "run", "task"],
                                                               sort=True):
        run_seed = frame.seed.iloc[0]
        rows.append({"model": model, "compression": comp, "recovery": rec,
                     "seed": None if pd.isna(run_seed) else int(run_seed), "run": run, "task": task,
                     **_pool_run_ablation(frame, stable_seed(seed, model, comp, run, task, "pool"))})
    return pd.DataFrame(rows, columns=POOL_COLUMNS)


# --------------------------------------------------------------------------- budgets

def budget_steps(budget: dict | None) -> list[int]:
    """The evaluated budgets, sorted: config.yaml ``recovery.budget.steps`` (an int, or a
    list for a budget curve); empty without a budget."""
    return steps_list(budget["steps"]) if budget else []


def final_steps(budget: dict | None) -> int | None:
    """The final budget: the largest of ``recovery.budget.steps`` (None without a budget)."""
    steps = budget_steps(budget)
    return steps[-1] if steps else None


def at_final_budget(frame, final: int | None):
    """Mask of the rows of ``frame`` (a question table or the summary) that belong to the
    final budget: without training (``steps`` empty, as for labels written before budget
    curves) or trained for ``final`` steps. Every row when ``final`` is None or there is no
    ``steps`` column."""
    import pandas as pd

    if final is None or "steps" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["steps"].isna() | (frame["steps"] == final)
