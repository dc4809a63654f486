"""The anatomy of the loss: which facts compression takes, what the errors look like, what remedies win back.

All on the test questions of the final budget's runs, per (model, compression), from each
question's status (:func:`compress_recover.aggregate.stats.status.status_table`):

- ``transitions.csv``: of the questions lost, the base model's answer -> the compressed
  model's answer, with counts (the errors' shape: a capital replaced by a larger city, one
  currency answered everywhere).
- ``loss_anatomy.csv``: the rate of an outcome per quartile of an axis, with Wilson 95%
  intervals; descriptive. Outcomes: ``lost`` (at risk: right in the base model) and
  ``won back by <recovery>`` (at risk: lost). Axes: ``popularity`` (the question's
  popularity percentile within its relation, :func:`popularity_percentiles`; relations
  measure popularity in different units, compress_recover/data/popularity.py) and
  ``base confidence`` (the base model's probability of the right choice among the choices).
- ``loss_model.csv``: a logistic regression per outcome, written down before any result was
  seen: ``outcome ~ popularity percentile + base confidence + relation`` (relation as fixed
  effects), standard errors clustered by fact and answer (a relation and its inverse ask one
  fact; questions with one right answer share its prior, :mod:`.clusters`), on
  the at-risk questions that have a popularity. Per compression the popularity term of
  ``lost`` is the one pre-specified test (95% interval, Wald p); every other row is labelled
  descriptive. A fit needs at least :data:`MIN_EVENTS` events and non-events; otherwise, or
  when it fails (separation), the row says why and carries no estimate.
"""

from __future__ import annotations

from ...runs import BASE
from .clusters import answer_keys, question_clusters
from .status import KEPT, LOST, outcomes, status_table

AXES = {"popularity": "pop_pct", "base confidence": "base_confidence"}
QUARTILES = 4
MIN_EVENTS = 10
PRESPECIFIED, DESCRIPTIVE = "pre-specified", "descriptive"
TRANSITION_COLUMNS = ["model", "compression", "task", "base_answer", "compressed_answer", "count"]
ANATOMY_COLUMNS = ["model", "compression", "task", "outcome", "axis", "bin", "range", "n", "events", "rate",
                   "ci_low", "ci_high"]
MODEL_COLUMNS = ["model", "compression", "outcome", "term", "n", "events", "without_popularity", "coef",
                 "odds_ratio", "ci_low", "ci_high", "p_value", "status", "note"]
ALL_TASKS = "all"


def popularity_percentiles(frame):
    """Each question's popularity as a percentile within its task, in (0, 1): the mid-rank
    of its popularity (ties share their mean rank) over the task's questions that have one;
    NaN without a popularity. ``frame``: one row per question, columns task and popularity."""
    ranks = frame.groupby("task").popularity.rank(method="average")
    counts = frame.groupby("task").popularity.transform("count")
    return (ranks - 0.5) / counts


def question_frame(table):
    """One row per (model, compression, task, doc_id) of a question table (one budget, no
    pooled task): its status, the recoveries that won it back, the base model's answer and
    confidence, the compressed model's answer, its fact, its cluster of facts and answers
    (:func:`.clusters.question_clusters`, the regression's cluster), popularity and percentile."""
    out = outcomes(table)
    status = status_table(out)
    columns = [c for c in ("task", "doc_id", "fact", "answer", "choices", "popularity", "popularity_measure")
               if c in table]
    described = table[columns].drop_duplicates(["task", "doc_id"]).reset_index(drop=True)
    facts = described.fact.fillna(described.task + ":" + described.doc_id.astype(str))
    answers = answer_keys(described)
    described = described.assign(pop_pct=popularity_percentiles(described),
                                 cluster=question_clusters(facts, answers))
    described = described.drop(columns=[c for c in ("answer", "choices") if c in described])
    base = out[(out.compression == BASE) & (out.recovery == BASE)][["model", "task", "doc_id", "p_right", "chosen"]]
    compressed = out[(out.compression != BASE) & (out.recovery == BASE)][
        ["model", "compression", "task", "doc_id", "chosen", "p_right"]]
    frame = status.merge(base.rename(columns={"p_right": "base_confidence", "chosen": "base_answer"}),
                         on=["model", "task", "doc_id"], validate="many_to_one")
    frame = frame.merge(compressed.rename(columns={"chosen": "compressed_answer", "p_right": "compressed_p"}),
                        on=["model", "compression", "task", "doc_id"], validate="one_to_one")
    return frame.merge(described, on=["task", "doc_id"], how="left", validate="many_to_one")


def transitions(frame):
    """``transitions.csv``: per (model, compression, task) the lost questions' (base answer,
    compressed answer) pairs with counts, most frequent first."""
    import pandas as pd

    lost = frame[frame.status == LOST]
    if lost.empty:
        return pd.DataFrame(columns=TRANSITION_COLUMNS)
    counts = lost.groupby(["model", "compression", "task", "base_answer", "compressed_answer"], sort=False).size()
    out = counts.rename("count").reset_index()
    return out.sort_values(["model", "compression", "count", "task", "base_answer"],
                           ascending=[True, True, False, True, True], kind="stable")[TRANSITION_COLUMNS]


def _at_risk(frame):
    """(outcome name, at-risk rows, event mask) per outcome of one (model, compression)."""
    risk = frame[frame.status.isin([LOST, KEPT])]
    yield "lost", risk, risk.status == LOST
    lost = frame[frame.status == LOST]
    recs = sorted({r for won in frame.won_back for r in won.split(";") if r}
                  | {r for broke in frame.broken for r in broke.split(";") if r})
    for rec in recs:
        yield f"won back by {rec}", lost, lost.won_back.str.split(";").apply(lambda rs, r=rec: r in rs)


def _quartile_bins(values):
    """Quartile bin (1..4) of each value (NaN stays NaN) and each bin's range text."""
    import pandas as pd

    present = values.dropna()
    if present.nunique() < QUARTILES:
        return pd.Series(float("nan"), index=values.index), {}
    bins = pd.qcut(present.rank(method="first"), QUARTILES, labels=False) + 1
    ranges = {int(b): f"{present[bins == b].min():.3g}–{present[bins == b].max():.3g}" for b in sorted(set(bins))}
    return bins.reindex(values.index), ranges


def loss_anatomy(frame):
    """``loss_anatomy.csv``: each outcome's rate per quartile of each axis, per task and over
    all tasks (``all``), with Wilson 95% intervals. Quartiles are cut over the at-risk
    questions of the (model, compression, outcome) that have a value on the axis."""
    import pandas as pd
    from statsmodels.stats.proportion import proportion_confint

    rows = []
    for (model, comp), sub in frame.groupby(["model", "compression"], sort=False):
        for outcome, risk, event in _at_risk(sub):
            for axis, column in AXES.items():
                bins, ranges = _quartile_bins(risk[column])
                for task in [ALL_TASKS, *sorted(risk.task.unique())]:
                    in_task = risk.task == task if task != ALL_TASKS else pd.Series(True, index=risk.index)
                    for b, label in ranges.items():
                        mask = in_task & (bins == b)
                        n, k = int(mask.sum()), int((mask & event).sum())
                        low, high = proportion_confint(k, n, method="wilson") if n else (float("nan"),) * 2
                        rows.append({"model": model, "compression": comp, "task": task, "outcome": outcome,
                                     "axis": axis, "bin": b, "range": label, "n": n, "events": k,
                                     "rate": k / n if n else float("nan"), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=ANATOMY_COLUMNS)


def fit_logit(y, popularity, confidence, relation, clusters) -> dict:
    """The pre-registered model ``y ~ popularity + confidence + C(relation)`` by maximum
    likelihood (statsmodels Logit), standard errors clustered by ``clusters``: per term
    (``popularity``, ``base confidence``) the coefficient, its 95% interval, odds ratio and
    Wald p; ``{"note": why}`` when too few events or the fit fails."""
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    y = np.asarray(y, dtype=float)
    events = int(y.sum())
    if min(events, len(y) - events) < MIN_EVENTS:
        return {"note": f"not estimated: {events} events and {len(y) - events} non-events "
                        f"(needs {MIN_EVENTS} of each)"}
    X = pd.DataFrame({"popularity": np.asarray(popularity, dtype=float),
                      "base confidence": np.asarray(confidence, dtype=float)})
    dummies = pd.get_dummies(pd.Series(np.asarray(relation), dtype=str), prefix="relation", drop_first=True,
                             dtype=float)
    X = sm.add_constant(pd.concat([X, dummies.set_axis(X.index)], axis=1), has_constant="add")
    groups = pd.factorize(pd.Series(np.asarray(clusters), dtype=str))[0]
    try:
        fit = sm.Logit(y, X).fit(disp=0, maxiter=200, cov_type="cluster", cov_kwds={"groups": groups})
    except Exception as err:  # perfect separation, a singular design: say so, estimate nothing
        return {"note": f"not estimated: {type(err).__name__}: {err}"}
    if not fit.mle_retvals.get("converged", True):
        return {"note": "not estimated: the fit did not converge"}
    ci = fit.conf_int(0.05)
    return {term: {"coef": float(fit.params[term]), "odds_ratio": float(np.exp(fit.params[term])),
                   "ci_low": float(ci.loc[term, 0]), "ci_high": float(ci.loc[term, 1]),
                   "p_value": float(fit.pvalues[term])} for term in ("popularity", "base confidence")}


def loss_model(frame):
    """``loss_model.csv``: :func:`fit_logit` per (model, compression, outcome); the
    popularity term of ``lost`` pre-specified, all else descriptive. Coefficients are per
    unit of the percentile (least to most popular) and of the probability (0 to 1)."""
    import pandas as pd

    rows = []
    for (model, comp), sub in frame.groupby(["model", "compression"], sort=False):
        for outcome, risk, event in _at_risk(sub):
            has = risk.pop_pct.notna()
            fit = fit_logit(event[has], risk.pop_pct[has], risk.base_confidence[has], risk.task[has],
                            risk.cluster[has])
            common = {"model": model, "compression": comp, "outcome": outcome, "n": int(has.sum()),
                      "events": int(event[has].sum()), "without_popularity": int((~has).sum())}
            for term in ("popularity", "base confidence"):
                status = PRESPECIFIED if outcome == "lost" and term == "popularity" else DESCRIPTIVE
                rows.append({**common, "term": term, **fit.get(term, {}), "status": status,
                             "note": fit.get("note", "")})
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def anatomy_tables(table) -> dict:
    """``transitions``, ``loss_anatomy`` and ``loss_model`` from a question table (test
    questions, final budget, knowledge tasks, no pooled task)."""
    import pandas as pd

    if table.empty:
        return {"transitions": pd.DataFrame(columns=TRANSITION_COLUMNS),
                "loss_anatomy": pd.DataFrame(columns=ANATOMY_COLUMNS),
                "loss_model": pd.DataFrame(columns=MODEL_COLUMNS)}
    frame = question_frame(table)
    return {"transitions": transitions(frame), "loss_anatomy": loss_anatomy(frame), "loss_model": loss_model(frame)}

