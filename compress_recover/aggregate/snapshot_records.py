"""The snapshot's layout (docs/results/snapshot.json), typed once: records written by :func:`as_json` and read back by :meth:`Snapshot.from_dict`.

:mod:`.snapshot` fills them from a finished run's results record; :mod:`.results_pages`
renders the README's and docs/results.md's tables from them. Import-light: JSON only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass

from ..runs import BASE
from .results import json_safe
from .stats.anatomy import AXES
from .stats.settings import Settings

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
    recovery_fraction.csv's 95% intervals. ``raw_f_holm``: the raw F's interval shown with
    the decision (at the Bonferroni level alpha / m since the family holds only the label's
    claims; at its Holm level in snapshots of older runs); ``decision_ci`` the decision's
    interval over both fractions and ``interval_confidence`` its confidence; ``reference``
    where a reference's information comes from (outside the family); ``won_back`` and
    ``never_known_right`` the shares of the lost and of the never-known questions it gets
    right. The last five are absent in snapshots of older runs."""

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
    decision_ci: list | None = _optional()
    interval_confidence: float | None = _optional()
    reference: str | None = _optional()
    won_back: float | None = _optional()
    never_known_right: float | None = _optional()

    @property
    def kind(self) -> str:
        """"side, trained" or "side, training-free"."""
        return f"{self.side}, {'trained' if self.trained else 'training-free'}"


@dataclass
class LossModel:
    """The pre-specified loss model's popularity term (``note``: why it has no estimate);
    ``fit``: ``total`` (popularity's total effect, :mod:`.stats.anatomy`), absent in the
    snapshot of a run that predates it, whose term is the direct effect at equal base
    confidence."""

    term: str
    coef: float | None
    ci_95: list
    p_value: float | None
    n: int
    events: int
    note: str
    fit: str | None = _optional()


@dataclass
class ConfidenceGradient:
    """The secondary loss model's confidence term (log-odds of loss per unit of the logit of
    base confidence, 95% interval) beside its noise null (:mod:`.stats.anatomy`): output
    noise of mean KL ``null_kl`` gives ``null_coef`` (the mean over ``null_draws`` draws),
    ``null_95`` (their 2.5th and 97.5th percentiles), ``null_events`` lost on average against
    ``events``; ``note``: why either has no estimate."""

    coef: float | None
    ci_95: list
    events: int
    null_kl: float | None
    null_coef: float | None
    null_95: list
    null_draws: int
    null_events: float | None
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
    confidence_gradient: ConfidenceGradient | None = _optional()
    lost_rate: dict | None = _optional()  # axis -> [LostRate]
    top_wrong_answers: list | None = _optional()  # [WrongAnswer], most frequent first

    def __post_init__(self):  # read back from JSON
        self.loss_model = _record(LossModel, self.loss_model)
        self.confidence_gradient = _record(ConfidenceGradient, self.confidence_gradient)
        if self.lost_rate is not None:
            self.lost_rate = {axis: [_record(LostRate, q) for q in qs] for axis, qs in self.lost_rate.items()}
        if self.top_wrong_answers is not None:
            self.top_wrong_answers = [_record(WrongAnswer, w) for w in self.top_wrong_answers]


@dataclass
class ContentFree:
    """One model's pooled test accuracy beside its content-free baseline (content_free.csv's
    pooled row): on the ``n`` questions with a content-free twin, the accuracy, the accuracy
    with the subject masked, their difference with its 95% interval (clusters of facts and shared answers resampled), and
    the share of answers equal to the masked answer (``from_prior``)."""

    n: int
    seeds: int
    accuracy: float | None
    content_free: float | None
    above: float | None
    above_95: list
    from_prior: float | None


@dataclass
class Distance:
    """One run's distance from the base model (distance.csv's pooled row, final budget):
    KL(base || run) over the choices, its mean and 90th percentile; of the ``at_risk``
    questions the base model answers right, the ``lost`` ones, and the KL's AUC for telling
    them from the kept ones with its 95% interval. ``seed`` None for a run without one."""

    seed: int | None
    run: str
    n: int
    kl_mean: float | None
    kl_p90: float | None
    at_risk: int | None
    lost: int | None
    auc_lost: float | None
    auc_95: list


@dataclass
class OneToOne:
    """The verdict decided again on the one-to-one relations alone (a sensitivity check, never
    deciding): the relations, their pooled test questions, and per compression the verdict
    and whether it is the main verdict (``same``)."""

    tasks: list
    questions: int
    verdicts: dict = field(default_factory=dict)  # compression -> verdict
    same: dict = field(default_factory=dict)  # compression -> whether it equals the main verdict


@dataclass
class ResamplingUnits:
    """The pooled test questions' resampling clusters (facts and shared answers): their count,
    the largest, and the size-weighted mean size (the cluster a random question sits in)."""

    questions: int
    clusters: int
    largest: int
    weighted_mean_size: float | None


@dataclass
class ModelResults:
    """One model's headline numbers: ``accuracy``, ``perplexity`` and ``extra_params`` are
    compression -> remedy -> value; ``remedies`` compression -> remedy -> :class:`Remedy`;
    ``verdicts`` compression -> verdict; ``anatomy`` compression -> :class:`Anatomy`;
    ``content_free`` compression -> remedy -> :class:`ContentFree`; ``distance`` compression ->
    remedy -> [:class:`Distance`], one per run (seed); ``one_to_one``: :class:`OneToOne`;
    ``resampling_units``: :class:`ResamplingUnits`. The last four are absent (None) in the
    snapshot of a run that predates them."""

    accuracy: dict
    n: int
    remedies: dict = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)
    perplexity: dict = field(default_factory=dict)
    extra_params: dict = field(default_factory=dict)
    seeds_per_run: int = 0
    base_precision: str | None = _optional()
    # the precision its evaluations computed in (summary column dtype; ``dtype: auto`` resolved)
    compute_dtype: str | None = _optional()
    anatomy: dict | None = _optional()
    content_free: dict | None = _optional()
    distance: dict | None = _optional()
    one_to_one: OneToOne | None = _optional()
    resampling_units: ResamplingUnits | None = _optional()
    references: dict | None = _optional()  # compression -> the references' label in words

    def __post_init__(self):  # read back from JSON
        self.remedies = {c: {r: _record(Remedy, d) for r, d in per.items()} for c, per in self.remedies.items()}
        if self.anatomy is not None:
            self.anatomy = {c: _record(Anatomy, a) for c, a in self.anatomy.items()}
        if self.content_free is not None:
            self.content_free = {c: {r: _record(ContentFree, d) for r, d in per.items()}
                                 for c, per in self.content_free.items()}
        if self.distance is not None:
            self.distance = {c: {r: [_record(Distance, d) for d in runs] for r, runs in per.items()}
                             for c, per in self.distance.items()}
        self.one_to_one = _record(OneToOne, self.one_to_one)
        self.resampling_units = _record(ResamplingUnits, self.resampling_units)

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
        """The Holm family's size (every decision in it shares it; a reference is outside it)."""
        return next((r.family_size for per in self.remedies.values() for r in per.values()
                     if r.family_size is not None), None)


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
