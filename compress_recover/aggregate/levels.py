"""Every compression against its model, question by question, and a GGUF's two paths.

A quant ladder asks what each level loses against the model it was made from. Per
(model, compression), unrecovered, on the test questions of every knowledge task pooled
(:func:`level_tables`):

- ``accuracy_base``, ``accuracy``: the model's and the compression's (torch path);
- ``lost`` / ``gained``: questions the model answers right and the compression wrong, and
  the reverse (flips both ways; their difference is the accuracy change);
- ``same_top``: the share of questions whose top choice is the model's;
- ``mean_kl``: the mean KL(model || compression) over each question's choices, in nats;
- ``kl_auc_lost``: how well that distance ranks the lost questions above the kept ones
  among the questions the model answers right (the area under the ROC curve: 0.5 is
  chance), with ``n_lost``; near the model, where few questions are lost, it rests on few
  and says so (``kl_p_lost``: one-sided Mann-Whitney p-value);
- for a compression that keeps a GGUF file, the llama.cpp path beside it
  (:mod:`compress_recover.evaluate.evaluate_llamacpp`): ``accuracy_llamacpp``, ``path_flips`` (questions
  right in one path and wrong in the other), ``path_same_top``, ``path_mean_kl``
  (KL(torch || llama.cpp)) and ``tokens_mismatched`` (requests llama.cpp tokenized otherwise
  than the model's tokenizer);
- the types the GGUF's matrices really hold (``tensor_types``), its size and times.

:func:`level_steps` compares each GGUF quant level with the next larger one of the same
model: the questions lost and won back between them ("lost at Q3_K_M, kept at Q4_K_M").
The per-question table (``questions``) is what the explorer shows.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..data.split import TEST
from ..io import read_jsonl
from .stats.questions import kl_divergence, question_record


def _rows(samples_file: str) -> dict[tuple[str, str], dict]:
    """(task, doc_id) -> correct, top choice and log-probabilities over the choices."""
    out = {}
    for row in read_jsonl(samples_file):
        record = question_record(row)
        logp = record["_logp"]
        out[(row.get("task", ""), str(record["doc_id"]))] = {
            "correct": float(record["correct"]), "top": int(max(range(len(logp)), key=logp.__getitem__)),
            "logp": logp}
    return out


def auc(scores_pos: list[float], scores_neg: list[float]) -> float:
    """The area under the ROC curve of ``scores`` ranking positives above negatives (ties count half)."""
    if not scores_pos or not scores_neg:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata([*scores_pos, *scores_neg])
    n_pos, n_neg = len(scores_pos), len(scores_neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _mw_p(scores_pos: list[float], scores_neg: list[float]) -> float:
    if not scores_pos or not scores_neg:
        return float("nan")
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(scores_pos, scores_neg, alternative="greater").pvalue)


def question_rows(cells: list[dict]) -> list[dict]:
    """One row per (model, compression, task, question): ``cells`` are dicts with ``model``,
    ``compression``, ``task``, ``samples`` (torch path), ``base_samples`` (the model's) and
    ``llamacpp_samples`` (None without a llama.cpp path), ``splits`` ((task, doc_id) -> split)."""
    rows = []
    for cell in cells:
        base, mine = _rows(cell["base_samples"]), _rows(cell["samples"])
        other = _rows(cell["llamacpp_samples"]) if cell.get("llamacpp_samples") else {}
        for key, b in base.items():
            if key not in mine:
                raise ValueError(f"{cell['samples']}: question {key} of the model's samples is missing")
            m = mine[key]
            row = {"model": cell["model"], "compression": cell["compression"], "task": cell["task"],
                   "doc_id": key[1], "split": cell["splits"].get((cell["task"], key[1]), TEST),
                   "correct_base": b["correct"], "correct": m["correct"], "same_top": float(b["top"] == m["top"]),
                   "kl": kl_divergence(b["logp"], m["logp"]),
                   "correct_llamacpp": float("nan"), "path_same_top": float("nan"), "path_kl": float("nan")}
            if other:
                o = other.get(key)
                if o is None:
                    raise ValueError(f"{cell['llamacpp_samples']}: question {key} is missing")
                row.update(correct_llamacpp=o["correct"], path_same_top=float(o["top"] == m["top"]),
                           path_kl=kl_divergence(m["logp"], o["logp"]))
            row["status"] = ("lost" if b["correct"] and not m["correct"] else "gained" if m["correct"] and not
                             b["correct"] else "kept" if m["correct"] else "never")
            rows.append(row)
    return rows


def level_tables(questions, details: dict[tuple[str, str], dict]):
    """The per-level table from :func:`question_rows`' frame (test questions); ``details``:
    (model, compression) -> the compression's manifest facts (``gguf_type``,
    ``tensor_types_text``, ``disk_bytes``, ``wall_time_s`` (making it), ``torch_eval_s``,
    ``llamacpp``: its results' ``tokens_mismatched``, ``requests`` and ``wall_time_s``)."""
    import pandas as pd

    out = []
    test = questions[questions.split == TEST]
    for (model, comp), g in test.groupby(["model", "compression"], sort=False):
        right = g[g.correct_base == 1]
        lost_kl = right[right.correct == 0].kl.tolist()
        kept_kl = right[right.correct == 1].kl.tolist()
        info = details.get((model, comp), {})
        has_path = g.correct_llamacpp.notna().all() and len(g)
        flips = (g.correct != g.correct_llamacpp).sum() if has_path else math.nan
        out.append({
            "model": model, "compression": comp, "gguf_type": info.get("gguf_type"),
            "tensor_types": info.get("tensor_types_text"), "disk_bytes": info.get("disk_bytes"),
            "questions": len(g), "accuracy_base": g.correct_base.mean(), "accuracy": g.correct.mean(),
            "lost": int((g.status == "lost").sum()), "gained": int((g.status == "gained").sum()),
            "same_top": g.same_top.mean(), "mean_kl": g.kl.mean(),
            "n_lost": len(lost_kl), "kl_auc_lost": auc(lost_kl, kept_kl), "kl_p_lost": _mw_p(lost_kl, kept_kl),
            "accuracy_llamacpp": g.correct_llamacpp.mean() if has_path else math.nan,
            "path_flips": flips, "path_same_top": g.path_same_top.mean() if has_path else math.nan,
            "path_mean_kl": g.path_kl.mean() if has_path else math.nan,
            "tokens_mismatched": info.get("llamacpp", {}).get("tokens_mismatched"),
            "requests": info.get("llamacpp", {}).get("requests"),
            "compress_s": info.get("wall_time_s"), "torch_eval_s": info.get("torch_eval_s"),
            "llamacpp_eval_s": info.get("llamacpp", {}).get("wall_time_s"),
        })
    return pd.DataFrame(out)


def level_steps(questions, levels):
    """Each GGUF quant level against the next larger one of the same model (by file size):
    the test questions the smaller one loses that the larger keeps, and the reverse."""
    import pandas as pd

    test = questions[questions.split == TEST]
    out = []
    for model, g in levels[levels.gguf_type.notna()].groupby("model", sort=False):
        ladder = g.sort_values("disk_bytes", ascending=False).compression.tolist()
        for larger, smaller in zip(ladder, ladder[1:]):
            a = test[(test.model == model) & (test.compression == larger)].set_index(["task", "doc_id"]).correct
            b = test[(test.model == model) & (test.compression == smaller)].set_index(["task", "doc_id"]).correct
            b = b.reindex(a.index)
            out.append({"model": model, "larger": larger, "smaller": smaller,
                        "lost_going_down": int(((a == 1) & (b == 0)).sum()),
                        "won_going_down": int(((a == 0) & (b == 1)).sum()), "questions": len(a)})
    return pd.DataFrame(out, columns=["model", "larger", "smaller", "lost_going_down", "won_going_down", "questions"])


def run_levels(*, cells: list[dict], manifests: dict[tuple[str, str], str], llamacpp_results: dict, out_dir: str,
               split: dict | None = None) -> dict:
    """Write ``levels.csv``, ``level_steps.csv`` and ``levels_by_question.csv`` to ``out_dir``.
    ``cells``: :func:`question_rows`' cells without ``splits``; ``manifests``: (model,
    compression) -> its checkpoint's manifest.json; ``llamacpp_results``: (model,
    compression) -> its llama.cpp results JSON files."""
    import pandas as pd

    from ..data.facts import question_fact
    from ..data.split import question_splits, split_settings
    from ..io import atomic_dir, read_json

    questions_by_task: dict[str, set] = {}
    facts = {}
    for cell in cells:
        for row in read_jsonl(cell["base_samples"]):
            doc_id = str(row["doc_id"])
            questions_by_task.setdefault(cell["task"], set()).add(doc_id)
            facts[(cell["task"], doc_id)] = question_fact(row.get("doc"), cell["task"], doc_id)
    splits = question_splits({t: sorted(ids) for t, ids in questions_by_task.items()}, **split_settings(split),
                             facts=facts)
    questions = pd.DataFrame(question_rows([{**c, "splits": splits} for c in cells]))
    details = {}
    for key, manifest in manifests.items():
        m = read_json(manifest)
        d = m.get("details", {})
        info = {"gguf_type": d.get("gguf_type"), "tensor_types_text": d.get("tensor_types_text"),
                "disk_bytes": m.get("disk_bytes"), "wall_time_s": m.get("wall_time_s")}
        files = llamacpp_results.get(key) or []
        if files:
            runs = [read_json(f).get("compress_recover", {}) for f in files]
            info["llamacpp"] = {"tokens_mismatched": sum(r.get("tokens_mismatched", 0) for r in runs),
                                "requests": sum(r.get("requests", 0) for r in runs),
                                "wall_time_s": round(sum(r.get("wall_time_s", 0) for r in runs), 2)}
        details[key] = info
    for cell in cells:  # the torch path's time on the same tasks (its results JSON sits beside the samples)
        torch_json = Path(cell["samples"].removesuffix(".samples.jsonl") + ".json")
        info = details.setdefault((cell["model"], cell["compression"]), {})
        if torch_json.is_file():
            info["torch_eval_s"] = round(info.get("torch_eval_s", 0.0) + float(
                read_json(torch_json).get("compress_recover", {}).get("wall_time_s", 0.0)), 2)
    levels = level_tables(questions, details) if not questions.empty else pd.DataFrame()
    steps = level_steps(questions, levels) if not levels.empty else pd.DataFrame()
    with atomic_dir(out_dir) as tmp:
        levels.to_csv(tmp / "levels.csv", index=False)
        steps.to_csv(tmp / "level_steps.csv", index=False)
        questions.to_csv(tmp / "levels_by_question.csv", index=False)
    return {"levels": len(levels), "questions": len(questions)}
