"""The report's explorer: every knowledge question with every model's answer, from questions.csv alone.

:func:`explorer_data` turns the analysis's per-question table (``results/analysis/questions.csv``,
the final budget's runs) into the one JSON object the page's script
(``templates/explorer.js``) filters, sorts and shows: per question its task, split, text,
choices, right answer and popularity; per model its chosen choice, right/wrong and the
probability of every choice and the KL divergence from the base model over the choices (means
over seeds, right/wrong by majority); per compressed model
each question's status (and, where the question has a content-free twin, each model's
content-free choice and whether it answered from the prior: :func:`prior_outcomes`), computed once by
:func:`compress_recover.aggregate.stats.status.question_status` (through
:func:`~compress_recover.aggregate.stats.status.status_table`), as the flips table counts it.
Nothing here is HTML: the page embeds the object with Jinja2's ``tojson`` (``<``, ``>``,
``&`` and quotes escaped) and the script writes every text with ``textContent``, so a task's
text is shown, never run.
"""

from __future__ import annotations

import json

from ..runs import BASE
from .stats.anatomy import popularity_percentiles
from .stats.budget import at_final_budget
from .stats.questions import ALL_KNOWLEDGE
from .stats.status import OUTCOME_KEYS, majority_right, outcomes, status_table


def _column_label(compression: str, recovery: str) -> str:
    """A column's short name in its view (one compressed model): base, the compression, + remedy."""
    if compression == BASE:
        return "base" if recovery == BASE else f"base + {recovery}"
    return compression if recovery == BASE else f"+ {recovery}"


def explorer_data(questions, final_steps: int | None) -> dict:
    """The explorer's object from the questions table (``results.tables.questions``, read by
    :data:`compress_recover.aggregate.results.QUESTIONS`): ``views`` (one per (model,
    compression): its columns and recoveries), ``columns`` (id -> short label), ``tasks`` and
    ``questions`` (see the module's doc)."""
    import pandas as pd

    table = questions[(questions.task != ALL_KNOWLEDGE) & at_final_budget(questions, final_steps)]
    if table.empty:
        return {"views": [], "columns": {}, "tasks": [], "questions": []}
    out = outcomes(table)
    status = status_table(out)
    described = table[["model", "task", "doc_id", "split", "question", "choices", "answer", "popularity",
                       "popularity_measure"]].drop_duplicates(["model", "task", "doc_id"])
    described = described.assign(pop_pct=popularity_percentiles(described))
    columns, views = {}, []
    for (model, comp, rec) in out[["model", "compression", "recovery"]].drop_duplicates().itertuples(index=False):
        columns[f"{model}/{comp}/{rec}"] = _column_label(comp, rec)
    for (model, comp) in status[["model", "compression"]].drop_duplicates().itertuples(index=False):
        recs = [r for r in dict.fromkeys(out.recovery[(out.model == model) & (out.compression == comp)]) if r != BASE]
        views.append({"key": f"{model}/{comp}", "model": model, "compression": comp, "recoveries": recs,
                      "columns": [f"{model}/{BASE}/{BASE}", f"{model}/{comp}/{BASE}",
                                  *(f"{model}/{comp}/{r}" for r in recs)]})
    statuses = {}
    for s in status.itertuples(index=False):
        statuses.setdefault((s.model, s.task, s.doc_id), {})[f"{s.model}/{s.compression}"] = [
            s.status, [x for x in s.won_back.split(";") if x], [x for x in s.broken.split(";") if x]]
    views += ladder_views(out, statuses)
    priors = prior_outcomes(table)
    runs = {}
    for r in out.itertuples(index=False):
        runs.setdefault((r.model, r.task, r.doc_id), {})[f"{r.model}/{r.compression}/{r.recovery}"] = [
            r.chosen, int(r.right), round(float(r.p_right), 4), json.loads(r.choice_probs),
            *priors.get((r.model, r.compression, r.recovery, r.task, r.doc_id), (None, None)),
            None if pd.isna(r.kl_base) else round(float(r.kl_base), 4)]
    rows = []
    for d in described.itertuples(index=False):
        key = (d.model, d.task, d.doc_id)
        pop = None if pd.isna(d.popularity) else float(d.popularity)
        rows.append({"m": d.model, "t": d.task, "id": str(d.doc_id), "s": d.split, "q": d.question,
                     "c": json.loads(d.choices) if isinstance(d.choices, str) else [], "a": d.answer,
                     "pop": pop, "pct": None if pop is None else round(float(d.pop_pct), 3),
                     "pm": d.popularity_measure, "r": runs.get(key, {}), "st": statuses.get(key, {})})
    return {"views": views, "columns": columns, "tasks": sorted(set(described.task)), "questions": rows,
            "prior": bool(priors)}


LADDER = "levels"  # a model's levels view: key "<model>/:levels" (":" is in no compression's name)


def ladder_views(out, statuses: dict) -> list[dict]:
    """A model's compressions evaluated as they are (no recovery run: a quant ladder), two or
    more, side by side in one view ``<model>/levels``: per question its status against the
    model (lost at one level or more, kept at every level, gained at one or more, never
    known), the levels it is gained at (``won``) and lost at (``broken``), so "lost at
    Q3_K_M, kept at Q4_K_M" is one filter and one row. Its key ``<model>/:levels`` cannot be a
    compression's view (a compression's name has no ":"). Adds each question's status to
    ``statuses``; returns the views."""
    views = []
    for model in dict.fromkeys(out.model):
        mine = out[out.model == model]
        levels = [c for c in dict.fromkeys(mine.compression) if c != BASE
                  and set(mine.recovery[mine.compression == c]) == {BASE}]
        if len(levels) < 2:
            continue
        key = f"{model}/:{LADDER}"
        views.append({"key": key, "model": model, "compression": LADDER, "recoveries": levels,
                      "won_text": "gained at ", "broken_text": "lost at ", "several_text": "gained at several levels",
                      "columns": [f"{model}/{BASE}/{BASE}", *(f"{model}/{c}/{BASE}" for c in levels)]})
        for (task, doc_id), group in mine[mine.recovery == BASE].groupby(["task", "doc_id"], sort=False):
            right = dict(zip(group.compression, group.right.astype(bool), strict=True))
            if BASE not in right:
                continue
            lost = [c for c in levels if right[BASE] and not right.get(c, True)]
            gained = [c for c in levels if not right[BASE] and right.get(c, False)]
            status = ("lost" if lost else "kept" if right[BASE] else "gained" if gained else "never known")
            statuses.setdefault((model, task, doc_id), {})[key] = [status, gained, lost]
    return views


def prior_outcomes(table) -> dict:
    """(model, compression, recovery, task, doc_id) -> (the content-free choice, 1 when the
    answer with the subject equals it, else 0) for every question with a content-free twin
    (:mod:`.stats.content_free`); over several seeds the most frequent content-free choice
    and "from the prior" by majority, as right/wrong is."""
    if "from_prior" not in table:
        return {}
    paired = table[table.from_prior.notna()]
    out = {}
    for key, group in paired.groupby(OUTCOME_KEYS, sort=False):
        choice = group.prior_choice.astype(str).value_counts().index[0]
        out[key] = (choice, int(bool(majority_right(group.from_prior.astype(float)))))
    return out


def explorer_counts(data: dict, view: str, split: str = "test") -> dict:
    """Per status (and per recovery: ``won back by <r>``, ``broken by <r>``; ``won back by
    several``) the number of questions of ``split`` in ``view``: what the page shows for
    each status filter, computed from the same object."""
    counts: dict[str, int] = {}
    for q in data["questions"]:
        if q["s"] != split or view not in q["st"]:
            continue
        status, won, broken = q["st"][view]
        counts[status] = counts.get(status, 0) + 1
        for r in won:
            counts[f"won back by {r}"] = counts.get(f"won back by {r}", 0) + 1
        for r in broken:
            counts[f"broken by {r}"] = counts.get(f"broken by {r}", 0) + 1
        if len(won) >= 2:
            counts["won back by several"] = counts.get("won back by several", 0) + 1
    return counts
