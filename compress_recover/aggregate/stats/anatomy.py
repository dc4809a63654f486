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
- ``loss_model.csv``: logistic regressions per outcome on the at-risk questions that have a
  popularity, relation as fixed effects, standard errors clustered by fact and answer (a
  relation and its inverse ask one fact; questions with one right answer share its prior,
  :mod:`.clusters`). Two fits (column ``fit``, :data:`FITS`):

  - ``total``: ``outcome ~ popularity percentile + relation``. Per compression its
    popularity term of ``lost`` is the one pre-specified test (95% interval, Wald p): the
    **total** effect of popularity given the relation, whatever path it takes, including
    the base model knowing popular facts more surely. "Does compression take the long
    tail?" asks this.
  - ``secondary``: ``outcome ~ popularity percentile + logit(base confidence) + relation``,
    descriptive. The base model's confidence lies on the path from popularity to loss (a
    mediator), so this fit's popularity term is popularity's **direct** effect, what is left
    at equal confidence, and is no answer to the long-tail question. Its confidence term is
    the gradient of loss with confidence, set beside a noise null (below) because noise
    alone produces a steep one. Confidence enters as its logit, clipped to
    [:data:`CONFIDENCE_CLIP`, 1 - :data:`CONFIDENCE_CLIP`], not as a probability nor a
    spline: a question is lost when the compressed model's scores move its right choice
    below another, the distance to move is a difference of log-probabilities (with two
    choices exactly the logit of the confidence), so the log-odds of loss is close to
    linear in it, where the probability scale crushes the confident questions against 1;
    and one coefficient, unlike a spline's several, can be set beside the null's.

  Every other row (every outcome ``won back by <recovery>``) is descriptive. A fit needs at
  least :data:`MIN_EVENTS` events and non-events; otherwise, or when it fails (separation),
  the row says why and carries no estimate.

  When the test was fixed. The first loss model (popularity and base confidence on the
  probability scale, its popularity term the test: commit dc1520d, 2026-12-03) was written
  after this project's per-question results existed (since f0e1a3c, 2026-11-28), so it was
  never specified before any result was seen, and its popularity term was a direct effect
  read as the total one. The total-effect model replaced it as the test in the revision
  that added this paragraph, written before its result on any run was looked at; the
  earlier model's results were known by then, so it too is specified after the data
  existed, not pre-registered.

- The noise null of the confidence gradient (columns ``null_*``, on the ``secondary`` fit's
  confidence row of ``lost``; :func:`confidence_null`). Among the questions the base model
  answers right, those answered with the right choice barely ahead are the ones any small
  change flips (regression to the mean), so loss falls steeply with base confidence under
  pure noise too. The null perturbs the base model's own outputs: its per-choice
  log-probabilities among the choices (``choice_probs``, 4 decimals, floored at
  :data:`PROB_FLOOR`) plus iid Gaussian noise, the noise's scale set by bisection
  (:func:`noise_scale`) so that the mean KL(base || perturbed) over the compression's
  questions equals its measured mean ``kl_base`` (:func:`.questions.with_kl_to_base`, the
  same :func:`.questions.kl_divergence`); a question the base model answers right is lost
  under the null when its perturbed top choice is not a right one; the ``secondary`` fit is
  fitted to that. Over :data:`NULL_DRAWS` seeded draws (:func:`.bootstrap.stable_seed`):
  ``null_coef`` (the mean confidence coefficient), ``null_low``/``null_high`` (its 2.5th and
  97.5th percentiles), ``null_draws`` (draws with an estimate), ``null_events`` (the mean
  number lost, beside ``events``: the null matches the KL, not the number lost) and
  ``null_kl`` (the KL matched). An observed coefficient inside the range is a gradient that
  noise of the compression's size gives; below it, loss falls with confidence more steeply
  than that noise explains. This is a perturbation of the outputs, a proxy for a
  perturbation of the weights of matched KL (which would need new model evaluations), not a
  weight perturbation; its noise is independent across questions and choices, so it
  reproduces neither questions moving together (a shared answer) nor how the compression
  spreads its KL over questions.
"""

from __future__ import annotations

import json

from ...runs import BASE
from .bootstrap import stable_seed
from .clusters import NO_TEXTS, answer_keys, question_clusters
from .questions import kl_divergence, log_softmax
from .status import KEPT, LOST, outcomes, status_table

AXES = {"popularity": "pop_pct", "base confidence": "base_confidence"}
QUARTILES = 4
MIN_EVENTS = 10
PRESPECIFIED, DESCRIPTIVE = "pre-specified", "descriptive"
POPULARITY, CONFIDENCE = "popularity", "logit(base confidence)"  # the loss model's terms
TOTAL, SECONDARY = "total", "secondary"
FITS = {TOTAL: (POPULARITY,), SECONDARY: (POPULARITY, CONFIDENCE)}  # fit -> its terms besides relation
CONFIDENCE_CLIP = 1e-4
NULL_DRAWS = 20
PROB_FLOOR = 5e-5  # half the last decimal of choice_probs: a choice shown as 0 keeps a probability
TRANSITION_COLUMNS = ["model", "compression", "task", "base_answer", "compressed_answer", "count"]
ANATOMY_COLUMNS = ["model", "compression", "task", "outcome", "axis", "bin", "range", "n", "events", "rate",
                   "ci_low", "ci_high"]
NULL_COLUMNS = ["null_kl", "null_draws", "null_events", "null_coef", "null_low", "null_high"]
MODEL_COLUMNS = ["model", "compression", "outcome", "term", "n", "events", "without_popularity", "coef",
                 "odds_ratio", "ci_low", "ci_high", "p_value", "status", "note", "fit", *NULL_COLUMNS]
ALL_TASKS = "all"


def popularity_percentiles(frame):
    """Each question's popularity as a percentile within its task, in (0, 1): the mid-rank
    of its popularity (ties share their mean rank) over the task's questions that have one;
    NaN without a popularity. ``frame``: one row per question, columns task and popularity."""
    ranks = frame.groupby("task").popularity.rank(method="average")
    counts = frame.groupby("task").popularity.transform("count")
    return (ranks - 0.5) / counts


def right_choices(answer, choices) -> tuple | None:
    """The indices of a question's right choice(s) from the question table's ``answer`` (their
    texts " / "-joined, or their indices where the choices have no texts) and ``choices`` (a
    JSON list, "null" without texts); None when the question has no answer."""
    if not isinstance(answer, str):
        return None
    texts = json.loads(choices) if isinstance(choices, str) and choices not in NO_TEXTS else None
    if texts is None:
        return tuple(int(a) for a in answer.split(" / "))
    named = {answer, *answer.split(" / ")}
    return tuple(i for i, text in enumerate(texts) if text in named) or None


def question_frame(table):
    """One row per (model, compression, task, doc_id) of a question table (one budget, no
    pooled task): its status, the recoveries that won it back, the base model's answer,
    confidence and choice probabilities, the compressed model's answer and KL to the base
    model, the question's right choices (:func:`right_choices`), its fact, its cluster of
    facts and answers (:func:`.clusters.question_clusters`, the regression's cluster),
    popularity and percentile."""
    out = outcomes(table)
    status = status_table(out)
    columns = [c for c in ("task", "doc_id", "fact", "answer", "choices", "popularity", "popularity_measure")
               if c in table]
    described = table[columns].drop_duplicates(["task", "doc_id"]).reset_index(drop=True)
    facts = described.fact.fillna(described.task + ":" + described.doc_id.astype(str))
    answers = answer_keys(described)
    rights = ([right_choices(a, c) for a, c in zip(described.answer, described.choices, strict=True)]
              if answers is not None else None)
    described = described.assign(pop_pct=popularity_percentiles(described), right_choices=rights,
                                 cluster=question_clusters(facts, answers))
    described = described.drop(columns=[c for c in ("answer", "choices") if c in described])
    base = out[(out.compression == BASE) & (out.recovery == BASE)][
        ["model", "task", "doc_id", "p_right", "chosen", "choice_probs"]]
    compressed = out[(out.compression != BASE) & (out.recovery == BASE)][
        ["model", "compression", "task", "doc_id", "chosen", "p_right", "kl_base"]]
    frame = status.merge(base.rename(columns={"p_right": "base_confidence", "chosen": "base_answer",
                                              "choice_probs": "base_probs"}),
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


def fit_logit(y, terms: dict, relation, clusters) -> dict:
    """``y ~ terms + C(relation)`` by maximum likelihood (statsmodels Logit), standard errors
    clustered by ``clusters``: per term of ``terms`` (name -> one value per question) the
    coefficient, its 95% interval, odds ratio and Wald p; ``{"note": why}`` when too few
    events or the fit fails."""
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    y = np.asarray(y, dtype=float)
    events = int(y.sum())
    if min(events, len(y) - events) < MIN_EVENTS:
        return {"note": f"not estimated: {events} events and {len(y) - events} non-events "
                        f"(needs {MIN_EVENTS} of each)"}
    X = pd.DataFrame({name: np.asarray(values, dtype=float) for name, values in terms.items()})
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
                   "p_value": float(fit.pvalues[term])} for term in terms}


def logit_confidence(p):
    """The logit of the base model's confidence, clipped to [:data:`CONFIDENCE_CLIP`,
    1 - :data:`CONFIDENCE_CLIP`] (a probability of 0 or 1 has none)."""
    import numpy as np
    from scipy.special import logit

    return logit(np.clip(np.asarray(p, dtype=float), CONFIDENCE_CLIP, 1 - CONFIDENCE_CLIP))


def fit_model(y, risk, fit: str) -> dict:
    """:func:`fit_logit` of ``fit`` (:data:`FITS`: ``total`` or ``secondary``) on the
    at-risk questions ``risk`` (columns pop_pct, base_confidence, task, cluster)."""
    values = {POPULARITY: risk.pop_pct, CONFIDENCE: logit_confidence(risk.base_confidence)}
    return fit_logit(y, {term: values[term] for term in FITS[fit]}, risk.task, risk.cluster)


MAX_SCALE = 2.0 ** 10  # noise scales tried before a mean KL is called out of reach (an infinite one)
BISECTIONS = 40


def choice_blocks(probs) -> list:
    """The base model's log-probabilities of each question's choices (``probs``: its
    ``choice_probs``, JSON lists; floored at :data:`PROB_FLOOR`, renormalised), grouped by
    number of choices: per group (the questions' positions, their log-probabilities as one
    array, a row per question)."""
    import numpy as np

    logps = [np.asarray(log_softmax(np.log(np.maximum(json.loads(p), PROB_FLOOR)))) for p in probs]
    groups: dict = {}
    for i, logp in enumerate(logps):
        groups.setdefault(len(logp), []).append(i)
    return [(np.array(pos), np.array([logps[i] for i in pos])) for pos in groups.values()]


def mean_kl(blocks, noise, scale: float) -> float:
    """The mean over questions of KL(base || base + ``scale`` * noise) (:func:`choice_blocks`;
    ``noise``: an array like each block's), each question's perturbed scores renormalised.
    :func:`.questions.kl_divergence` of a whole block sums every entry: the block's KLs."""
    from scipy.special import log_softmax as log_softmax_rows

    total = sum(kl_divergence(logp, log_softmax_rows(logp + scale * z, axis=1))
                for (_, logp), z in zip(blocks, noise, strict=True))
    return total / sum(len(pos) for pos, _ in blocks)


def noise_scale(blocks, noise, target: float) -> float | None:
    """The scale at which :func:`mean_kl` is ``target``, by bisection (to 2^-:data:`BISECTIONS`
    of the bracket); None when no scale up to :data:`MAX_SCALE` reaches it. For fixed draws the
    KL grows with the scale: it is the draws' cumulant generating function under the base
    distribution less its tangent at 0, convex and 0 at scale 0."""
    high = 1.0
    while mean_kl(blocks, noise, high) < target:
        if high >= MAX_SCALE:
            return None
        high *= 2
    low = 0.0
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if mean_kl(blocks, noise, mid) < target else (low, mid)
    return high


def confidence_null(sub, risk, *, seed: int) -> dict:
    """The noise null of the ``secondary`` fit's confidence coefficient for ``lost``
    (:mod:`.anatomy`): ``sub``, every question of one (model, compression)
    (:func:`question_frame`); ``risk``, its questions the base model answers right that have
    a popularity. Its :data:`NULL_COLUMNS`, with a ``note`` where it has no estimate."""
    import numpy as np

    kl = sub.kl_base.to_numpy(dtype=float)
    if not np.isfinite(kl).all() or risk.right_choices.isna().any():
        return {"null_draws": 0, "note": "no noise null: a question lacks its KL to the base model or its right "
                                         "choices"}
    out = {"null_kl": float(kl.mean())}
    blocks = choice_blocks(sub.base_probs)
    at = sub.index.get_indexer(risk.index)
    model, compression = sub.model.iloc[0], sub.compression.iloc[0]
    rng = np.random.default_rng(stable_seed(seed, model, compression, "loss null"))
    top = np.empty(len(sub), dtype=int)
    coefs, events = [], []
    for _ in range(NULL_DRAWS):
        noise = [rng.standard_normal(logp.shape) for _, logp in blocks]
        scale = noise_scale(blocks, noise, out["null_kl"])
        if scale is None:
            return {**out, "null_draws": 0,
                    "note": f"no noise null: no noise scale reaches a mean KL of {out['null_kl']:.3g}"}
        for (pos, logp), z in zip(blocks, noise, strict=True):
            top[pos] = np.argmax(logp + scale * z, axis=1)
        lost = np.array([t not in right for t, right in zip(top[at], risk.right_choices, strict=True)])
        events.append(int(lost.sum()))
        fit = fit_model(lost, risk, SECONDARY)
        if CONFIDENCE in fit:
            coefs.append(fit[CONFIDENCE]["coef"])
    out.update(null_draws=len(coefs), null_events=float(np.mean(events)))
    if not coefs:
        return {**out, "note": "no noise null: no draw's fit has an estimate"}
    low, high = np.quantile(coefs, [0.025, 0.975])
    return {**out, "null_coef": float(np.mean(coefs)), "null_low": float(low), "null_high": float(high)}


def loss_model(frame, *, seed: int):
    """``loss_model.csv``: per (model, compression, outcome) each fit of :data:`FITS`
    (:func:`fit_model`); the ``total`` fit's popularity term of ``lost`` pre-specified, all
    else descriptive; the ``secondary`` fit's confidence term of ``lost`` with its noise null
    (:func:`confidence_null`, seeded by ``seed``). Coefficients are per unit of the
    percentile (least to most popular) and of the confidence's logit."""
    import pandas as pd

    rows = []
    for (model, comp), sub in frame.groupby(["model", "compression"], sort=False):
        for outcome, risk, event in _at_risk(sub):
            has = risk.pop_pct.notna()
            common = {"model": model, "compression": comp, "outcome": outcome, "n": int(has.sum()),
                      "events": int(event[has].sum()), "without_popularity": int((~has).sum())}
            for fit_name, terms in FITS.items():
                fit = fit_model(event[has], risk[has], fit_name)
                for term in terms:
                    null = confidence_null(sub, risk[has], seed=seed) if (outcome, term) == ("lost", CONFIDENCE) \
                        else {}
                    pre = (outcome, fit_name, term) == ("lost", TOTAL, POPULARITY)
                    note = "; ".join(n for n in (fit.get("note", ""), null.pop("note", "")) if n)
                    rows.append({**common, "term": term, **fit.get(term, {}), **null, "fit": fit_name,
                                 "status": PRESPECIFIED if pre else DESCRIPTIVE, "note": note})
    return pd.DataFrame(rows, columns=MODEL_COLUMNS).astype({"null_draws": "Int64"})


def anatomy_tables(table, *, seed: int) -> dict:
    """``transitions``, ``loss_anatomy`` and ``loss_model`` from a question table (test
    questions, final budget, knowledge tasks, no pooled task); ``seed`` seeds the noise null."""
    import pandas as pd

    if table.empty:
        return {"transitions": pd.DataFrame(columns=TRANSITION_COLUMNS),
                "loss_anatomy": pd.DataFrame(columns=ANATOMY_COLUMNS),
                "loss_model": pd.DataFrame(columns=MODEL_COLUMNS)}
    frame = question_frame(table)
    return {"transitions": transitions(frame), "loss_anatomy": loss_anatomy(frame),
            "loss_model": loss_model(frame, seed=seed)}
