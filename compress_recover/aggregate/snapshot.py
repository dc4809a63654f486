"""The results snapshot: the headline numbers of a finished run (docs/results/snapshot.json), a view of its results record.

:func:`snapshot` reads a finished run through :meth:`.results.Results.load` (the analysis
record and rule summary's table) and keeps its headline numbers, as :class:`Snapshot`:
pooled test accuracy of every model, each remedy's recovery fractions and decision, the
verdicts, held-out perplexity, extra parameters and the anatomy of the loss, with the
commit and the seeds. ``python -m compress_recover.docs snapshot`` writes it to
``docs/results/snapshot.json``; :mod:`.results_pages` renders the pages' tables from that
file. The snapshot's layout is typed here, once: the records below are written by
:func:`as_json` and read back by :meth:`Snapshot.from_dict`.

Numbers are kept as the analysis CSVs write them (six significant digits, an integral value
as an integer: :func:`_number`), so a snapshot does not change when only the reading does.

Import-light: reading a snapshot back reads JSON only; pandas comes in with
:meth:`.results.Results.load` when a snapshot is taken.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from ..data.split import DEV, TEST
from ..io import read_json
from ..runs import BASE
from .results import FLOAT_FORMAT, Results, analysis_path, json_safe, summary_path
from .stats.anatomy import ALL_TASKS, AXES, PRESPECIFIED
from .stats.questions import ALL_KNOWLEDGE
from .stats.settings import Settings
from .stats.status import LOST

WHAT = "headline numbers of one run, written by `python -m compress_recover.docs snapshot`"
TOP_ANSWERS = 5  # the compressed model's most frequent wrong answers kept per compression
POPULARITY, CONFIDENCE = AXES  # the loss anatomy's two axes

# field metadata of the records below: the JSON key where it is not the field's name; a
# field left out of the JSON while None (absent in snapshots of older runs); a value kept
# key-sorted, as verdict.json writes it
KEY, OPTIONAL, AS_WRITTEN = "key", "optional", "as_written"


def _optional():
    return field(default=None, metadata={OPTIONAL: True})


def _as_written():
    return field(metadata={AS_WRITTEN: True})


# ---------------------------------------------------------------- the snapshot's records

@dataclass
class Remedy:
    """One remedy on one compressed model, pooled test questions: decisions.csv's row with
    recovery_fraction.csv's 95% intervals (``raw_f_holm``: the interval at its Holm level)."""

    side: str
    trained: bool
    runs: str
    accuracy: float | None
    raw_f: float | None
    raw_f_95: list
    control_gain: float | None
    controlled_f: float | None
    controlled_f_95: list
    raw_f_holm: list
    holm_level: float | None
    family_size: int | None
    decision: str

    @property
    def kind(self) -> str:
        """"side, trained" or "side, training-free"."""
        return f"{self.side}, {'trained' if self.trained else 'training-free'}"


@dataclass
class LossModel:
    """The pre-specified loss model's popularity term (``note``: why it has no estimate)."""

    term: str
    coef: float | None
    ci_95: list
    p_value: float | None
    n: int
    events: int
    note: str


@dataclass
class LostRate:
    """The loss rate in one quartile of an axis (all tasks), with its Wilson 95% interval."""

    quartile: int
    rate: float | None
    n: int
    ci_95: list


@dataclass
class WrongAnswer:
    task: str
    answer: str
    lost_questions: int


@dataclass
class Anatomy:
    """Which facts one compression lost; each part absent when the analysis found none."""

    loss_model: LossModel | None = _optional()
    lost_rate: dict | None = _optional()  # axis -> [LostRate]
    top_wrong_answers: list | None = _optional()  # [WrongAnswer], most frequent first

    def __post_init__(self):  # read back from JSON
        if isinstance(self.loss_model, dict):
            self.loss_model = LossModel(**self.loss_model)
        if self.lost_rate is not None:
            self.lost_rate = {axis: [_record(LostRate, q) for q in qs] for axis, qs in self.lost_rate.items()}
        if self.top_wrong_answers is not None:
            self.top_wrong_answers = [_record(WrongAnswer, w) for w in self.top_wrong_answers]


@dataclass
class ModelResults:
    """One model's headline numbers: ``accuracy``, ``perplexity`` and ``extra_params`` are
    compression -> remedy -> value; ``remedies`` compression -> remedy -> :class:`Remedy`;
    ``verdicts`` compression -> verdict; ``anatomy`` compression -> :class:`Anatomy`."""

    accuracy: dict
    n: int
    remedies: dict = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)
    perplexity: dict = field(default_factory=dict)
    extra_params: dict = field(default_factory=dict)
    seeds_per_run: int = 0
    base_precision: str | None = _optional()
    anatomy: dict | None = _optional()

    def __post_init__(self):  # read back from JSON
        self.remedies = {c: {r: _record(Remedy, d) for r, d in per.items()} for c, per in self.remedies.items()}
        if self.anatomy is not None:
            self.anatomy = {c: _record(Anatomy, a) for c, a in self.anatomy.items()}

    def compressions(self) -> list[str]:
        return [c for c in self.accuracy if c != BASE]

    def remedy(self, name: str) -> Remedy | None:
        """``name``'s record on the first compression that has one (its side is the same on each)."""
        return next((per[name] for per in self.remedies.values() if name in per), None)

    def remedy_names(self) -> list[str]:
        """Every remedy: none first, then parameter side before input side, trained before training-free."""
        names = [r for c in self.compressions() for r in self.accuracy[c]]
        return [BASE, *sorted(dict.fromkeys(r for r in names if r != BASE), key=lambda r: (*self._order(r), r))]

    def _order(self, name: str) -> tuple[bool, bool]:
        r = self.remedy(name)
        return (True, True) if r is None else (r.side != "parameters", not r.trained)

    def side(self, name: str) -> str:
        r = self.remedy(name)
        return "" if r is None else r.kind

    def family_size(self):
        """The Holm family's size (every decision of the run shares it)."""
        return next((r.family_size for per in self.remedies.values() for r in per.values()), None)


@dataclass
class Seeds:
    """The run's three seeds, under their config.yaml keys."""

    seed: int | None = field(metadata={KEY: "seed"})
    split_seed: int | None = field(metadata={KEY: "data.split.seed"})
    recovery_seeds: list = field(metadata={KEY: "recovery.seeds"})


@dataclass
class Questions:
    dev: int
    test: int
    per_task: dict = _as_written()  # task -> {"dev": n, "test": n}


@dataclass
class Snapshot:
    """The headline numbers of one run (docs/results/snapshot.json)."""

    commit: str
    what: str
    seeds: Seeds
    budget: dict | None = _as_written()  # config.yaml recovery.budget as the analysis recorded it
    thresholds: dict = _as_written()  # config.yaml report: the verdict's thresholds (Settings' fields)
    questions: Questions
    sides: dict = _as_written()  # method -> side
    trained: dict = _as_written()  # method -> whether it trains
    models: dict = field(default_factory=dict)  # model -> ModelResults
    aggregate_commit: str | None = _optional()

    @classmethod
    def from_dict(cls, d: dict) -> "Snapshot":
        """The snapshot as read from its JSON."""
        snap = _record(cls, d)
        snap.seeds = _record(Seeds, snap.seeds)
        snap.questions = _record(Questions, snap.questions)
        snap.models = {name: _record(ModelResults, m) for name, m in snap.models.items()}
        return snap

    @property
    def settings(self) -> Settings:
        return Settings.from_report(self.thresholds)


def _record(cls, value):
    """``value`` as a ``cls`` record: as is, or built from its JSON dict (keys per :data:`KEY`)."""
    if not isinstance(value, dict):
        return value
    return cls(**{f.name: value[f.metadata.get(KEY, f.name)] for f in fields(cls)
                  if f.metadata.get(KEY, f.name) in value})


def as_json(value):
    """A record as the snapshot's JSON data: fields in order under their keys, an optional
    field left out while None, an :data:`AS_WRITTEN` value key-sorted (strict JSON)."""
    if is_dataclass(value):
        out = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if f.metadata.get(OPTIONAL) and v is None:
                continue
            out[f.metadata.get(KEY, f.name)] = _written(v) if f.metadata.get(AS_WRITTEN) else as_json(v)
        return out
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def _written(value):
    """``value`` as verdict.json holds it: strict JSON, keys sorted."""
    return json.loads(json.dumps(json_safe(value), sort_keys=True, default=str))


# ---------------------------------------------------------------- cells as the CSVs wrote them

def _missing(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


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
    of the final budget, the base precision and the anatomy of the loss."""
    models: dict[str, ModelResults] = {}
    tables = record.tables
    for row in tables.accuracy[tables.accuracy.task == ALL_KNOWLEDGE].itertuples(index=False):
        model = models.setdefault(row.model, ModelResults(accuracy={}, n=int(row.n)))
        model.accuracy.setdefault(row.compression, {})[row.recovery] = _number(row.acc)
        model.seeds_per_run = max(model.seeds_per_run, int(row.seeds))
    _add_remedies(models, record)
    for v in record.verdicts:
        models[v.model].verdicts[v.compression] = v.verdict
    _add_summary(models, record.summary)
    for name, anatomy in _anatomy(record).items():
        if name in models:
            models[name].anatomy = anatomy
    return models


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
            family_size=_number(d.family_size), decision=_text(d.decision))


def _add_summary(models: dict[str, ModelResults], summary) -> None:
    """Base precision, held-out word perplexity and extra parameters, from rule summary's table."""
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
    """Per model and compression: the pre-specified loss model's popularity term, the loss
    rate per quartile of popularity and of base confidence (all tasks), and the answers the
    compressed model gave most often to the questions it lost ({} for a run without them)."""
    tables = record.tables
    out: dict[str, dict[str, Anatomy]] = {}

    def anatomy(model, compression) -> Anatomy:
        return out.setdefault(model, {}).setdefault(compression, Anatomy())

    for r in tables.loss_model[tables.loss_model.status == PRESPECIFIED].itertuples(index=False):
        anatomy(r.model, r.compression).loss_model = LossModel(
            term=_text(r.term), coef=_number(r.coef), ci_95=_pair(r.ci_low, r.ci_high), p_value=_number(r.p_value),
            n=int(r.n), events=int(r.events), note=_text(r.note))
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
