"""The results record: every analysis table and the verdict, typed, between the statistics and every reader.

Rule ``analysis`` computes a :class:`Results` (:func:`.analysis.run_analysis`) and
:meth:`Results.save` writes it to ``results/analysis/``: one CSV per table of :data:`TABLE_SPECS`,
``verdict.json`` and ``record.json`` (the schema version and the tables written). Every
reader — the figures, the report, the results docs and snapshot, the studies — opens it with
:meth:`Results.load` and reads typed values: :class:`~.stats.verdict.Verdict` records (each
with its :class:`~.stats.decisions.Damage` and :class:`~.stats.decisions.Decision` s, rebuilt
by their ``from_dict``), the settings, the split, and one pandas frame per table. This module
is the only place that spells an analysis file name, and the one place a reader finds every
table and its columns: a reader names a table by attribute (``results.tables.flips``) and
reads a column by attribute on the frame or its rows, or through the table's spec
(``FLIPS.c.count``), never by a spelled string (``tests/test_results.py`` checks both).

The files are those the analysis has always written, byte for byte (the same CSV float
format, the same key-sorted JSON), plus ``record.json``. :data:`SCHEMA_VERSION` changes when
a table or the verdict's layout changes; :meth:`Results.load` refuses a record written by
another version, naming the folder, rather than misreading it.

Import-light: importing this module pulls in no pandas, numpy or torch (they are imported
when a table is written or read).

Adding a statistic: see ``docs/extending.md`` ("A new statistic in the verdict").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from types import SimpleNamespace

from ..failures import FAILED_RUN_COLUMNS
from ..io import atomic_file, read_json, write_json
from .stats.ablation import POOL_COLUMNS
from .stats.accuracy import CONTROL_COLUMNS
from .stats.anatomy import ANATOMY_COLUMNS, MODEL_COLUMNS, TRANSITION_COLUMNS
from .stats.budget import CHECKPOINT_COLUMNS
from .stats.collateral import COLLATERAL_COLUMNS
from .stats.content_free import CONTENT_FREE_COLUMNS, PRIOR_COLUMNS
from .stats.distance import DISTANCE_COLUMNS
from .stats.methods import Methods
from .stats.paired import FLIP_COLUMNS, MARGIN_COLUMNS, PAIRED_COLUMNS
from .stats.questions import COLUMNS as ANSWER_COLUMNS
from .stats.questions import QUESTION_COLUMNS
from .stats.settings import Settings
from .stats.verdict import Verdict
from .tables import CELL

SCHEMA_VERSION = 3
VERDICT_FILE = "verdict.json"
RECORD_FILE = "record.json"
SUMMARY_FILE = "summary.csv"  # rule summary's table, beside the analysis folder
FLOAT_FORMAT = "%.6g"  # every analysis CSV's number format


@dataclass(frozen=True)
class TableSpec:
    """One analysis table: its name (file ``<name>.csv``), its columns in order, their
    dtypes where a reader needs more than pandas' guess (``str``: text kept as text, an
    answer "NA" is not missing; ``Int64``: an integer that may be missing; ``bool``), what it
    means in one line, and how it is read (``keep_na``: False keeps empty cells and "NA" as
    text in every column, as the paired tests and flips need; ``open``: the columns listed
    are the fixed ones, a row type may add its own)."""

    name: str
    columns: tuple[str, ...]
    meaning: str
    dtypes: dict = field(default_factory=dict)
    keep_na: bool = True
    open: bool = False

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def c(self) -> SimpleNamespace:
        """The columns by attribute: ``spec.c.ci_low == "ci_low"`` (a misspelt column is an
        AttributeError, never a silent KeyError at run time)."""
        return SimpleNamespace(**{c: c for c in self.columns})

    def empty(self):
        import pandas as pd

        return pd.DataFrame(columns=list(self.columns))

    def read(self, folder: str | Path):
        """The table as written (an empty frame with the spec's columns for a missing or empty
        file: a table with no row)."""
        import pandas as pd

        path = Path(folder) / self.file
        if not path.exists() or path.stat().st_size == 0:
            return self.empty()
        kw: dict = {"float_precision": "round_trip"}
        numeric = [c for c, t in self.dtypes.items() if t in ("float", "Int64")]
        if not self.keep_na:
            kw["keep_default_na"] = False
        elif any(t == "str" for t in self.dtypes.values()):
            # text kept as text; only the numeric columns' empty cells are missing
            kw.update(keep_default_na=False, na_values={c: [""] for c in numeric})
        kw["dtype"] = {c: str for c, t in self.dtypes.items() if t == "str"}
        try:
            frame = pd.read_csv(path, **kw)
        except pd.errors.EmptyDataError:
            return self.empty()
        for column, kind in self.dtypes.items():
            if column not in frame:
                continue
            if kind == "Int64":
                frame[column] = frame[column].astype("Int64")
            elif kind == "bool":
                frame[column] = frame[column].map({"True": True, "False": False, True: True, False: False})
        return frame

    def check(self, frame) -> None:
        """Refuse a frame that lacks a column of the spec, or (a closed table) has one more."""
        have = list(frame.columns)
        missing = [c for c in self.columns if c not in have]
        extra = [c for c in have if c not in self.columns]
        if (missing and len(frame)) or (extra and not self.open):
            raise ValueError(f"table {self.name}: columns {have} do not match its spec {list(self.columns)} "
                             f"(missing {missing}, extra {extra}); change compress_recover/aggregate/results.py")

    def write(self, folder: str | Path, frame) -> None:
        self.check(frame)
        with atomic_file(Path(folder) / self.file) as tmp:
            frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)


# The columns of a table its producer builds from a list are that list (stats/*.py), named here
# with their meaning and dtypes; the others are listed here, and checked when written.
QUESTIONS = TableSpec(
    "questions",
    (*ANSWER_COLUMNS, *QUESTION_COLUMNS, *PRIOR_COLUMNS),
    "every scored question of every run: right or not, the right choice's probability, the chosen answer, every "
    "choice's probability (JSON), the prompt a pool chose, the question's text, choices (JSON), answer, popularity, "
    "the run's answer with the subject masked (prior_choice, prior_correct) and whether it answered so (from_prior), "
    "KL(base || run) over the choices (kl_base)",
    dtypes={**dict.fromkeys(("model", "compression", "recovery", "run", "task", "doc_id", "fact", "split",
                             "pool_correct", "chosen", "choice_probs", "question", "choices", "answer",
                             "popularity_measure", "prior_choice"), "str"),
            "seed": "Int64", "steps": "Int64", "p_right": "float", "p_right_norm": "float", "pool_choice": "float",
            "kl_base": "float",
            "popularity": "float", "correct": "bool", "prior_correct": "bool", "from_prior": "bool"})
SPLIT = TableSpec("split", ("task", "doc_id", "split"), "each question's split: dev (choices) or test (decisions)")
ACCURACY = TableSpec(
    "accuracy", (*CELL, "task", "seeds", "n", "acc", "acc_sd", "p_right", "p_right_norm"),
    "test accuracy per model and task (pooled task included): mean and sd over seeds, mean P(right choice)")
RECOVERY_FRACTION = TableSpec(
    "recovery_fraction",
    (*CELL, "method", "side", "task", "n", "seeds", "base_acc", "compressed_acc", "recovered_acc", "recovered_sd",
     "control_gain", "recovery_fraction", "fraction_sd", "ci_low", "ci_high", "controlled_fraction", "controlled_sd",
     "controlled_ci_low", "controlled_ci_high"),
    "raw and control-subtracted recovery fractions per task with 95% bootstrap intervals (no multiplicity)")
DECISIONS = TableSpec(
    "decisions",
    (*CELL, "method", "side", "trained", "decision", "status", "failure", "note", "family_size"),
    "the verdict's decision per remedy, flattened from Decision.csv_row (estimates, bounds at the Holm level, "
    "p-values, power); a failed group's row has its own columns", open=True)
NONINFERIORITY = TableSpec(
    "noninferiority",
    ("model", "compression", "input", "parameters", "fractions", "difference", "lower_bound", "upper_bound",
     "holm_level", "confidence", "margin", "p_value", "p_holm", "family_size", "result"),
    "every input-side remedy against every parameter-side one: F_I - F_P, its bound at the Holm level, the result")
FORMAT_CONTROL = TableSpec(
    "format_control",
    tuple(CONTROL_COLUMNS),
    "how much each remedy gains on the uncompressed model (the control run), with its 95% interval")
MARGIN_TESTS = TableSpec(
    "margin_tests",
    tuple(MARGIN_COLUMNS),
    "paired change in the right choice's probability per remedy: mean, 95% t interval, sign-flip p (descriptive)")
PAIRED_TESTS = TableSpec(
    "paired_tests",
    tuple(PAIRED_COLUMNS),
    "exact McNemar tests per seed (descriptive)", keep_na=False)
FLIPS = TableSpec(
    "flips", tuple(FLIP_COLUMNS),
    "questions kept, lost, gained, won back and newly broken, per seed and by majority of seeds", keep_na=False)
PROMPT_POOL_ABLATION = TableSpec(
    "prompt_pool_ablation",
    tuple(POOL_COLUMNS),
    "per prompt pool: which prompt each question kept and what the pool adds over a random or the best fixed prompt")
_CHECKPOINT = tuple(CHECKPOINT_COLUMNS)
DEV_ACCURACY = TableSpec(
    "dev_accuracy", (*_CHECKPOINT, "rank"),
    "every remedy and checkpoint on the pooled dev questions, ranked per method: what choices are made on",
    dtypes={"rank": "Int64"})
BUDGET_CURVE = TableSpec(
    "budget_curve", _CHECKPOINT,
    "accuracy and recovery fraction against training tokens, every checkpoint, test questions (descriptive)")
COLLATERAL = TableSpec(
    "collateral",
    tuple(COLLATERAL_COLUMNS),
    "what a remedy did to each knowledge task, held-out tasks flagged")
CONTENT_FREE = TableSpec(
    "content_free", tuple(CONTENT_FREE_COLUMNS),
    "the content-free baseline (subject masked, same choices) per model and task, test questions: accuracy, "
    "content-free accuracy, accuracy above it with its 95% interval, share answered as without the subject",
    dtypes={"n": "Int64", "seeds": "Int64"})
DISTANCE = TableSpec(
    "distance", tuple(DISTANCE_COLUMNS),
    "KL(base || model) over the choices per run and task, test questions: mean, 90th and 99th percentiles, and the "
    "AUC with which it tells the lost questions from the kept ones, with its 95% cluster-bootstrap interval",
    dtypes={"seed": "str", "run": "str", "n": "Int64", "at_risk": "Int64", "lost": "Int64"})
FAILED_RUNS = TableSpec("failed_runs", tuple(FAILED_RUN_COLUMNS),
                        "the recovery trainings that produced no adapter, and why", dtypes={"seed": "Int64",
                                                                                            "steps": "Int64"})
TRANSITIONS = TableSpec(
    "transitions", tuple(TRANSITION_COLUMNS),
    "for each lost question, the base model's (right) answer and the compressed model's", keep_na=False,
    dtypes=dict.fromkeys(("task", "base_answer", "compressed_answer"), "str"))
LOSS_ANATOMY = TableSpec(
    "loss_anatomy",
    tuple(ANATOMY_COLUMNS),
    "loss rate per quartile of popularity and of base confidence, with Wilson 95% intervals (descriptive)")
LOSS_MODEL = TableSpec(
    "loss_model",
    tuple(MODEL_COLUMNS),
    "logistic regressions of a question's loss: on popularity (the total fit, its popularity term the pre-specified "
    "test) and on popularity and logit base confidence (the secondary fit, its confidence term beside a noise null)",
    dtypes={"null_draws": "Int64"})

TABLE_SPECS = (QUESTIONS, SPLIT, ACCURACY, RECOVERY_FRACTION, DECISIONS, NONINFERIORITY, FORMAT_CONTROL,
               MARGIN_TESTS, PAIRED_TESTS, FLIPS, PROMPT_POOL_ABLATION, DEV_ACCURACY, BUDGET_CURVE, COLLATERAL,
               CONTENT_FREE, DISTANCE, FAILED_RUNS, TRANSITIONS, LOSS_ANATOMY, LOSS_MODEL)

def tables_class(specs=TABLE_SPECS) -> type:
    """The record's tables: a dataclass with one field (a frame) per spec, in order, and
    ``items()``: (spec, frame) pairs. Built from the specs, so a new table is one spec."""
    def items(self):
        return [(spec, getattr(self, spec.name)) for spec in specs]

    return make_dataclass("Tables", [(spec.name, object) for spec in specs], namespace={
        "items": items, "__doc__": "One frame per analysis table, in TABLE_SPECS order."})


Tables = tables_class()


def json_safe(obj):
    """NaN as null and infinities as "inf"/"-inf" (strict JSON), numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


@dataclass
class Results:
    """Everything rule ``analysis`` found: the verdict per (model, compression) with its
    evidence, the rule in words, the settings, the methods and their sides, the budget, the
    dev/test split, the leak filter's counts, the failed runs, the seeds, the resamples, and
    every table. ``summary``: rule summary's table when :meth:`load` was given it (else None)."""

    verdicts: list[Verdict]
    rule: str
    noninferiority_rule: str
    settings: Settings
    bootstrap_iters: dict
    seeds: list
    methods: Methods
    budget: dict | None
    final_steps: int | None
    split: dict
    leaks: dict
    failed_runs: list[dict]
    tables: Tables
    summary: object = None
    # name -> {"tasks", "questions", "verdicts"}: the verdict decided again on a subset
    # (``one_to_one``: the questions of the relations where at most 5% share a right answer, unshared ones,
    # stats/sensitivity.py); reported beside the verdict, never deciding it
    sensitivity: dict = field(default_factory=dict)
    # model -> the pooled test questions' resampling clusters (stats/clusters.py cluster_sizes):
    # questions, clusters, largest, size-weighted mean size
    resampling_units: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ verdict.json

    def verdict_dict(self) -> dict:
        """verdict.json's content (before it is made strict JSON)."""
        from dataclasses import asdict

        return {
            "rule": self.rule,
            "noninferiority_rule": self.noninferiority_rule,
            "thresholds": asdict(self.settings),
            "bootstrap_iters": self.bootstrap_iters,
            "seeds": self.seeds,
            "methods": dict(self.methods.methods),
            "sides": dict(self.methods.sides),
            "trained": dict(self.methods.trained),
            "references": dict(self.methods.references),
            "budget": self.budget,
            "final_steps": self.final_steps,
            "split": self.split,
            "leaks": self.leaks,
            "verdicts": [v.as_dict() for v in self.verdicts],
            "failed_runs": self.failed_runs,
            "sensitivity": {name: {**row, "verdicts": [v.as_dict() for v in row["verdicts"]]}
                            for name, row in self.sensitivity.items()},
            "resampling_units": self.resampling_units,
        }

    def verdict_json(self) -> dict:
        """verdict.json's content as written: strict JSON (NaN null, infinities "inf")."""
        return json_safe(json.loads(json.dumps(json_safe(self.verdict_dict()), default=str)))

    @classmethod
    def from_verdict_dict(cls, d: dict, tables: Tables, summary=None) -> "Results":
        """The inverse of :meth:`verdict_dict` (as read back from verdict.json)."""
        return cls(verdicts=[Verdict.from_dict(v) for v in d["verdicts"]], rule=d["rule"],
                   noninferiority_rule=d.get("noninferiority_rule", ""), settings=Settings(**d["thresholds"]),
                   bootstrap_iters=d.get("bootstrap_iters", {}), seeds=list(d.get("seeds", [])),
                   methods=Methods(dict(d.get("methods", {})), dict(d.get("sides", {})), dict(d.get("trained", {})),
                                   dict(d.get("references", {}))),
                   budget=d.get("budget"), final_steps=d.get("final_steps"), split=d.get("split", {}),
                   leaks=d.get("leaks", {}), failed_runs=list(d.get("failed_runs", [])), tables=tables,
                   summary=summary,
                   sensitivity={name: {**row, "verdicts": [Verdict.from_dict(v) for v in row["verdicts"]]}
                                for name, row in d.get("sensitivity", {}).items()},
                   resampling_units=dict(d.get("resampling_units", {})))

    # ------------------------------------------------------------------ files

    def save(self, folder: str | Path) -> None:
        """Every table as ``<name>.csv``, ``verdict.json`` and ``record.json``, each written atomically."""
        out = Path(folder)
        for spec, frame in self.tables.items():
            spec.write(out, frame)
        write_json(out / VERDICT_FILE, self.verdict_json())
        write_json(out / RECORD_FILE, {"schema_version": SCHEMA_VERSION,
                                       "tables": {s.name: s.file for s in TABLE_SPECS}, "verdict": VERDICT_FILE})

    @classmethod
    def load(cls, folder: str | Path, summary: str | Path | None = None) -> "Results":
        """The record in ``folder`` (results/analysis/); ``summary``: rule summary's CSV, read
        into :attr:`summary` as written (None: not read)."""
        folder = Path(folder)
        record = folder / RECORD_FILE
        if not record.is_file():
            raise FileNotFoundError(f"{folder}: no {RECORD_FILE}; not a results record of this version "
                                    f"(schema {SCHEMA_VERSION}): run rule analysis again "
                                    "(snakemake --forcerun analysis)")
        version = read_json(record).get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{record}: schema version {version}, this code reads {SCHEMA_VERSION}; "
                             "run rule analysis again (snakemake --forcerun analysis)")
        tables = Tables(**{spec.name: spec.read(folder) for spec in TABLE_SPECS})
        return cls.from_verdict_dict(read_json(folder / VERDICT_FILE), tables,
                                     None if summary is None else read_summary(summary))

    # ------------------------------------------------------------------ questions a reader asks

    @property
    def method_names(self) -> dict:
        """recovery group -> method (verdict.json's ``methods``)."""
        return self.methods.methods


def read_summary(path: str | Path):
    """rule summary's table as written (every column pandas' guess)."""
    import pandas as pd

    return pd.read_csv(path)


def summary_path(results_dir: str | Path) -> Path:
    """The summary CSV of a ``results/`` folder."""
    return Path(results_dir) / SUMMARY_FILE


def analysis_path(results_dir: str | Path) -> Path:
    """The analysis folder of a ``results/`` folder."""
    return Path(results_dir) / "analysis"
