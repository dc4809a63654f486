"""The results snapshot: the headline numbers of a finished run (docs/results/snapshot.json), a view of its results record.

:func:`snapshot` reads a finished run through :meth:`.results.Results.load` (the analysis
record and rule summary's table) and keeps its headline numbers, as :class:`Snapshot`:
pooled test accuracy of every model, each remedy's recovery fractions and decision, the
verdicts, held-out perplexity, extra parameters and the anatomy of the loss, each model's
content-free baseline, each run's distance from the base model, the verdict on the
one-to-one relations alone and the resampling units, with the commit and the seeds.
``python -m compress_recover.docs snapshot`` writes it to ``docs/results/snapshot.json``;
:mod:`.results_pages` renders the pages' tables from that file. The snapshot's layout is typed once, in :mod:`.snapshot_records`.

Numbers are kept as the analysis CSVs write them (six significant digits, an integral value
as an integer: :func:`_number`), so a snapshot does not change when only the reading does.

Import-light: reading a snapshot back reads JSON only; pandas comes in with
:meth:`.results.Results.load` when a snapshot is taken.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict
from pathlib import Path

from ..data.split import DEV, TEST
from ..io import read_json
from .results import FLOAT_FORMAT, Results, analysis_path, summary_path
from .snapshot_records import (Anatomy, ConfidenceGradient, ContentFree, Distance, LossModel, LostRate,
                               ModelResults, OneToOne, Questions, Remedy, ResamplingUnits, Seeds, Snapshot,
                               WrongAnswer, as_json)
from .stats.anatomy import ALL_TASKS, CONFIDENCE, PRESPECIFIED, SECONDARY
from .stats.questions import ALL_KNOWLEDGE
from .stats.status import LOST
from .tables import compute_dtypes

WHAT = "headline numbers of one run, written by `python -m compress_recover.docs snapshot`"
TOP_ANSWERS = 5  # the compressed model's most frequent wrong answers kept per compression
ONE_TO_ONE = "one_to_one"  # the sensitivity verdict the snapshot keeps (Results.sensitivity)


# ---------------------------------------------------------------- cells as the CSVs wrote them

def _missing(value) -> bool:
    import pandas as pd

    # "": an empty cell of a table read with its text kept as text (distance.csv)
    return value is None or (isinstance(value, str) and not value.strip()) or bool(pd.isna(value))


def _number(value):
    """A numeric cell as its CSV text reads: None when empty; an integer when the text has no
    decimal point ("3", "1e+06": how the analysis writes an integral value); else a float."""
    if _missing(value):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if not value.is_integer():
        return value
    # an integral float: its text was FLOAT_FORMAT's ("3", "1e+06" or "2.5e+06", which has a point)
    # unless that would not read back as the value (an integer column with an empty cell: "2442241")
    text = FLOAT_FORMAT % value
    return value if "." in text and float(text) == value else int(value)


def _text(value) -> str:
    """A text cell ("" when empty: pandas reads an empty cell as missing)."""
    return "" if _missing(value) else str(value)


def _pair(low, high) -> list:
    return [_number(low), _number(high)]


# ---------------------------------------------------------------- the snapshot

def snapshot(results: Path, commit: str, aggregate_commit: str | None = None) -> dict:
    """The headline numbers of a finished run, from its ``results/`` folder, as JSON data."""
    results = Path(results)
    record = Results.load(analysis_path(results), summary=summary_path(results))
    counts = record.split["counts"]
    snap = Snapshot(
        commit=commit, what=WHAT,
        seeds=Seeds(_run_seed(results), record.split["seed"], record.seeds),
        budget=record.budget, thresholds=asdict(record.settings),
        questions=Questions(sum(c[DEV] for c in counts.values()), sum(c[TEST] for c in counts.values()), counts),
        sides=record.methods.sides, trained=record.methods.trained,
        models=_models(record), aggregate_commit=aggregate_commit or None)
    return as_json(snap)


def _run_seed(results: Path):
    """The run's ``seed``, as the training text's manifest records it (None without one)."""
    manifest = results / "data" / "text" / "manifest.json"
    return read_json(manifest).get("seed") if manifest.is_file() else None


def _models(record: Results) -> dict[str, ModelResults]:
    """Per model: pooled test accuracy, remedies, verdicts, perplexity and extra parameters
    of the final budget, the base precision, the anatomy of the loss, the content-free
    baseline, the distance from the base model, the one-to-one verdict and the resampling
    units."""
    models: dict[str, ModelResults] = {}
    tables = record.tables
    for row in tables.accuracy[tables.accuracy.task == ALL_KNOWLEDGE].itertuples(index=False):
        model = models.setdefault(row.model, ModelResults(accuracy={}, n=int(row.n)))
        model.accuracy.setdefault(row.compression, {})[row.recovery] = _number(row.acc)
        model.seeds_per_run = max(model.seeds_per_run, int(row.seeds))
    _add_remedies(models, record)
    for v in record.verdicts:
        models[v.model].verdicts[v.compression] = v.verdict
        if v.reference:
            model = models[v.model]
            model.references = {**(model.references or {}), v.compression: v.reference}
    _add_summary(models, record.summary)
    for name, anatomy in _anatomy(record).items():
        if name in models:
            models[name].anatomy = anatomy
    _add_content_free(models, record)
    _add_distance(models, record)
    _add_one_to_one(models, record)
    for name, units in record.resampling_units.items():
        if name in models:
            models[name].resampling_units = ResamplingUnits(
                questions=_number(units["questions"]), clusters=_number(units["clusters"]),
                largest=_number(units["largest"]), weighted_mean_size=_number(units["weighted_mean_size"]))
    return models


def _add_content_free(models: dict[str, ModelResults], record: Results) -> None:
    """Per model, compression and remedy (pooled task): the content-free baseline and the
    accuracy above it ({} for a model without one)."""
    table = record.tables.content_free
    for model in models.values():
        model.content_free = {}
    for r in table[table.task == ALL_KNOWLEDGE].itertuples(index=False):
        if r.model in models:
            models[r.model].content_free.setdefault(r.compression, {})[r.recovery] = ContentFree(
                n=_number(r.n), seeds=_number(r.seeds), accuracy=_number(r.acc),
                content_free=_number(r.acc_content_free), above=_number(r.above_content_free),
                above_95=_pair(r.ci_low, r.ci_high), from_prior=_number(r.from_prior))


def _add_distance(models: dict[str, ModelResults], record: Results) -> None:
    """Per model, compression and remedy (pooled task, the final budget's runs): each run's
    KL from the base model and how well it tells the lost questions, one row per seed (a
    mean over seeds would be a number distance.csv does not hold)."""
    table = record.tables.distance
    for model in models.values():
        model.distance = {}
    for r in table[table.task == ALL_KNOWLEDGE].itertuples(index=False):
        if r.model in models:
            models[r.model].distance.setdefault(r.compression, {}).setdefault(r.recovery, []).append(Distance(
                seed=_number(r.seed), run=_text(r.run), n=_number(r.n), kl_mean=_number(r.kl_mean),
                kl_p90=_number(r.kl_p90), at_risk=_number(r.at_risk), lost=_number(r.lost),
                auc_lost=_number(r.auc_lost), auc_95=_pair(r.auc_low, r.auc_high)))


def _add_one_to_one(models: dict[str, ModelResults], record: Results) -> None:
    """Per model: the verdict decided again on the one-to-one relations alone, per compression,
    and whether it is the main verdict."""
    row = record.sensitivity.get(ONE_TO_ONE)
    if row is None:
        return
    for model in models.values():
        model.one_to_one = OneToOne(tasks=list(row["tasks"]), questions=_number(row["questions"]))
    for v in row["verdicts"]:
        if v.model in models:
            model = models[v.model]
            model.one_to_one.verdicts[v.compression] = v.verdict
            model.one_to_one.same[v.compression] = v.verdict == model.verdicts.get(v.compression)


def _add_remedies(models: dict[str, ModelResults], record: Results) -> None:
    """Each remedy's decision with its fractions' 95% intervals (pooled task)."""
    pooled = record.tables.recovery_fraction
    fractions = {(f.model, f.compression, f.recovery): f
                 for f in pooled[pooled.task == ALL_KNOWLEDGE].itertuples(index=False)}
    for d in record.tables.decisions.itertuples(index=False):
        f = fractions.get((d.model, d.compression, d.recovery))
        models[d.model].remedies.setdefault(d.compression, {})[d.recovery] = Remedy(
            side=_text(d.side), trained=d.trained in (True, "True"), runs=_text(d.runs),
            accuracy=_number(d.recovered_acc), raw_f=_number(d.recovery_fraction),
            raw_f_95=_pair(f.ci_low, f.ci_high) if f else [None, None],
            control_gain=_number(d.control_gain), controlled_f=_number(d.controlled_fraction),
            controlled_f_95=_pair(f.controlled_ci_low, f.controlled_ci_high) if f else [None, None],
            raw_f_holm=_pair(d.raw_ci_low, d.raw_ci_high), holm_level=_number(d.holm_level),
            family_size=_number(d.family_size), decision=_text(d.decision),
            **_newer(d))


def _newer(d) -> dict:
    """The decision's fields a record of an older run lacks (left out, so absent in the JSON)."""
    def get(name):
        return getattr(d, name, None)

    if _missing(get("interval_confidence")):
        return {}
    return {"decision_ci": _pair(get("ci_low"), get("ci_high")),
            "interval_confidence": _number(get("interval_confidence")),
            "reference": _text(get("reference")) or None, "won_back": _number(get("won_back")),
            "never_known_right": _number(get("never_known_right"))}


def _add_summary(models: dict[str, ModelResults], summary) -> None:
    """Base precision, the precision the weights were computed in, held-out word perplexity and
    extra parameters, from rule summary's table."""
    for name, dtype in compute_dtypes(summary).items():
        if name in models:
            models[name].compute_dtype = dtype
    for row in summary.itertuples(index=False):
        model = models.get(row.model)
        if model is None:
            continue
        model.base_precision = _text(row.base_precision)
        if ".step" in _text(row.run):  # a budget curve's earlier checkpoint: the headline is the final budget
            continue
        if row.metric == "word_perplexity":
            model.perplexity.setdefault(row.compression, {})[row.recovery] = _number(row.value)
        if not _missing(row.extra_params):
            model.extra_params.setdefault(row.compression, {})[row.recovery] = _number(row.extra_params)


def _anatomy(record: Results) -> dict[str, dict[str, Anatomy]]:
    """Per model and compression: the pre-specified loss model's popularity term, the
    secondary model's confidence term beside its noise null, the loss rate per quartile of
    popularity and of base confidence (all tasks), and the answers the compressed model gave
    most often to the questions it lost ({} for a run without them)."""
    tables = record.tables
    out: dict[str, dict[str, Anatomy]] = {}

    def anatomy(model, compression) -> Anatomy:
        return out.setdefault(model, {}).setdefault(compression, Anatomy())

    models = tables.loss_model
    for r in models[models.status == PRESPECIFIED].itertuples(index=False):
        anatomy(r.model, r.compression).loss_model = LossModel(
            term=_text(r.term), coef=_number(r.coef), ci_95=_pair(r.ci_low, r.ci_high), p_value=_number(r.p_value),
            n=int(r.n), events=int(r.events), note=_text(r.note), fit=_text(r.fit))
    gradients = models[(models.outcome == LOST) & (models.fit == SECONDARY) & (models.term == CONFIDENCE)]
    for r in gradients.itertuples(index=False):
        anatomy(r.model, r.compression).confidence_gradient = ConfidenceGradient(
            coef=_number(r.coef), ci_95=_pair(r.ci_low, r.ci_high), events=int(r.events), null_kl=_number(r.null_kl),
            null_coef=_number(r.null_coef), null_95=_pair(r.null_low, r.null_high), null_draws=int(r.null_draws),
            null_events=_number(r.null_events), note=_text(r.note))
    rates = tables.loss_anatomy
    for r in rates[(rates.task == ALL_TASKS) & (rates.outcome == LOST)].itertuples(index=False):
        a = anatomy(r.model, r.compression)
        a.lost_rate = a.lost_rate or {}
        a.lost_rate.setdefault(r.axis, []).append(
            LostRate(quartile=int(r.bin), rate=_number(r.rate), n=int(r.n), ci_95=_pair(r.ci_low, r.ci_high)))
    answers: dict = {}
    for r in tables.transitions.itertuples(index=False):
        key = (r.model, r.compression, _text(r.task), _text(r.compressed_answer))
        answers[key] = answers.get(key, 0) + int(r.count)
    for (model, comp, task, answer), count in sorted(answers.items(), key=lambda kv: (-kv[1], kv[0])):
        a = anatomy(model, comp)
        a.top_wrong_answers = a.top_wrong_answers or []
        if len(a.top_wrong_answers) < TOP_ANSWERS:
            a.top_wrong_answers.append(WrongAnswer(task=task, answer=answer, lost_questions=count))
    return out
