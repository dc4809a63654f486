"""What became of each question: the one place a question's status is computed.

Per compressed model, a question is ``kept`` (right in the base model and after compression),
``lost`` (right before, wrong after), ``gained`` (wrong before, right after) or ``never known``
(wrong in both). Per recovery, a lost question is ``won back`` when the recovered model
answers it right, and a question right after compression is ``broken`` when the recovered
model answers it wrong; a lost question won back by two or more recoveries is ``won back by
several``. :func:`question_status` computes all of it from right/wrong arrays; the flips
table (:func:`compress_recover.aggregate.stats.paired.flips`) counts it and the report's explorer
(:mod:`compress_recover.aggregate.explorer`) shows it per question, so their counts agree.
"""

from __future__ import annotations

from dataclasses import dataclass

KEPT, LOST, GAINED, NEVER = "kept", "lost", "gained", "never known"
STATUSES = (KEPT, LOST, GAINED, NEVER)


@dataclass(frozen=True)
class QuestionStatus:
    status: object  # array of STATUSES, one per question
    won_back: dict  # recovery -> bool array: lost, and right after it
    broken: dict  # recovery -> bool array: right after compression, wrong after it
    several: object  # bool array: lost and won back by two or more of ``won_back``'s recoveries

    def count(self, status: str) -> int:
        return int((self.status == status).sum())


def question_status(base, compressed, recovered: dict | None = None) -> QuestionStatus:
    """Each question's status from boolean arrays (one entry per question, in one order):
    right in the base model, right after compression and, per recovery (any key: a method,
    or a method's seed), right after it."""
    import numpy as np

    b, c = np.asarray(base, dtype=bool), np.asarray(compressed, dtype=bool)
    if b.shape != c.shape:
        raise ValueError(f"question_status: base has {b.shape} questions, compressed {c.shape}")
    status = np.select([b & c, b & ~c, ~b & c], [KEPT, LOST, GAINED], NEVER).astype(object)
    lost = b & ~c
    won, broken = {}, {}
    for key, right in (recovered or {}).items():
        r = np.asarray(right, dtype=bool)
        if r.shape != c.shape:
            raise ValueError(f"question_status: recovery {key} has {r.shape} questions, compressed {c.shape}")
        won[key], broken[key] = lost & r, c & ~r
    several = np.sum(list(won.values()), axis=0) >= 2 if won else np.zeros_like(lost)
    return QuestionStatus(status, won, broken, lost & several)


def majority_right(correct):
    """Right in a majority of the runs: per question for rows of ``correct`` (1/0 per
    question, one row per run), or for one question's runs as a flat array."""
    import numpy as np

    return np.asarray(correct, dtype=float).mean(axis=0) > 0.5


OUTCOME_KEYS = ["model", "compression", "recovery", "task", "doc_id"]


def outcomes(table):
    """Per (model, compression, recovery, task, doc_id) of a question table (one budget's
    runs): ``right`` (in a majority of the seeds: :func:`majority_right`),
    ``p_right`` and ``choice_probs`` (means over seeds; the probabilities a JSON list),
    ``chosen`` (the choice of the single run, or of the highest mean probability),
    ``seeds`` (the number of runs) and ``kl_base`` (the mean over seeds of the KL to the
    base model, :func:`.questions.with_kl_to_base`; NaN without it)."""
    import json

    import numpy as np
    import pandas as pd

    rows = []
    for key, group in table.groupby(OUTCOME_KEYS, sort=False):
        probs = np.mean([json.loads(p) for p in group.choice_probs], axis=0)
        choices = json.loads(group.choices.iloc[0]) if "choices" in group else None
        if len(group) == 1:
            chosen = group.chosen.iloc[0]
        else:
            top = int(np.argmax(probs))
            chosen = choices[top] if choices and len(choices) == len(probs) else str(top)
        rows.append({**dict(zip(OUTCOME_KEYS, key, strict=True)),
                     "right": bool(majority_right(group.correct)), "p_right": float(group.p_right.mean()),
                     "choice_probs": json.dumps([round(float(x), 4) for x in probs]), "chosen": chosen,
                     "seeds": len(group),
                     "kl_base": float(group.kl_base.mean()) if "kl_base" in group else float("nan")})
    return pd.DataFrame(rows, columns=[*OUTCOME_KEYS, "right", "p_right", "choice_probs", "chosen", "seeds",
                                       "kl_base"])


STATUS_COLUMNS = ["model", "compression", "task", "doc_id", "status", "won_back", "broken", "won_back_by_several"]


def status_table(outcome):
    """Every question's status per (model, compression) from :func:`outcomes` through
    :func:`question_status`: ``won_back`` / ``broken`` list the recoveries (``;``-joined)."""
    import pandas as pd

    from ...runs import BASE

    rows = []
    for model, runs in outcome.groupby("model", sort=False):
        runs = runs.set_index(["task", "doc_id"])
        base = runs[(runs.compression == BASE) & (runs.recovery == BASE)]
        for comp in dict.fromkeys(runs.compression[runs.compression != BASE]):
            compressed = runs[(runs.compression == comp) & (runs.recovery == BASE)]
            if compressed.empty or base.empty:
                continue
            index = base.index
            recs = [r for r in dict.fromkeys(runs.recovery[runs.compression == comp]) if r != BASE]
            after = {rec: runs[(runs.compression == comp) & (runs.recovery == rec)] for rec in recs}
            for name, cell in {comp: compressed, **{f"{comp} / {r}": c for r, c in after.items()}}.items():
                if len(cell.index) != len(index) or not cell.index.isin(index).all():
                    raise ValueError(f"{model} / {name}: scored on other questions than the base model "
                                     f"({len(cell.index)} vs {len(index)}); every model must answer the same ones")
            st = question_status(base.right.loc[index], compressed.right.loc[index],
                                 {rec: cell.right.loc[index] for rec, cell in after.items()})
            for i, (task, doc_id) in enumerate(index):
                rows.append({"model": model, "compression": comp, "task": task, "doc_id": doc_id,
                             "status": st.status[i], "won_back": ";".join(r for r in recs if st.won_back[r][i]),
                             "broken": ";".join(r for r in recs if st.broken[r][i]),
                             "won_back_by_several": bool(st.several[i])})
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)
