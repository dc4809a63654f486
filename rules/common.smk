# Helpers that rules of several stages use: config validation, the job grid, the runtime
# and the labels of every evaluation. The paths are in rules/paths.smk (included before
# this file); a helper that serves one rule sits in rules/helpers/<stage>.smk, included by
# the stage's file. Imports nothing heavy (the package's config is pure Python).
from pathlib import Path

from snakemake.utils import validate

from compress_recover.aggregate.figures import FIGURES
from compress_recover.compress import COMPRESSION
from compress_recover.config import build_plan, canonical, choice_regex
from compress_recover.data.task_yaml import folder_files
from compress_recover.recover import RECOVERY
from compress_recover.runs import BASE
from compress_recover.runtime import Runtime

validate(config, "../compress_recover/schema/config.schema.yaml")
PLAN = build_plan(config)
COMPRESSION_METHODS = [m for m in COMPRESSION.names() if m != BASE]
RECOVERY_METHODS = [m for m in RECOVERY.names() if m != BASE]
TRAINED_METHODS = [m for m in RECOVERY_METHODS if RECOVERY[m].config_cls.trained]
TRAINING_FREE_METHODS = [m for m in RECOVERY_METHODS if m not in TRAINED_METHODS]
# Where and how heavy jobs run: one object, passed to each as its `runtime` param. The
# job's script adds its threads (Runtime.from_params): threads are not a param, so a
# change of --cores or executor reruns nothing.
RUNTIME = canonical(
    Runtime(
        device=config["device"],
        dtype=config["dtype"],
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
    ).params()
)


wildcard_constraints:
    model=choice_regex(PLAN.models),
    compression=choice_regex(PLAN.compressions),
    recovery=choice_regex(PLAN.recoveries),
    task=choice_regex(PLAN.evaluated_tasks()),


def all_targets():
    """Every file a user reads from results/: the report and the tables, and the files no
    later rule reads (the attention CSVs), so a missing one is made again."""
    return [
        SUMMARY,
        SUMMARY_PARQUET,
        REPORT,
        ANALYSIS,
        LEVELS,
        *figure_files().values(),
        *attention_figures(),
        *[ATTENTION_CSV.format(model=m, compression=c) for m, c in attention_cells()],
    ]


def final_cells():
    """Every (model, compression, recovery run) at the final budget (no intermediate checkpoint)."""
    return [(m, c, r) for m, c, r in PLAN.cells() if PLAN.recoveries[r].parent is None]


def cost_results():
    """Cost of every model at the final budget (a checkpoint costs what its final run costs)."""
    return [
        COST.format(model=m, compression=c, recovery=r) for m, c, r in final_cells()
    ]


def run_labels(model, compression, run):
    """What an evaluation is of: the recovery entry (group), its seed and run folder."""
    entry = PLAN.recoveries[run]
    return {
        "model": model,
        "compression": compression,
        "recovery": entry.group,
        "seed": entry.seed,
        "run": run,
    }


def figure_files(wildcards=None):
    return {name: FIGURE.format(name=name) for name in FIGURES}


def training_text(model, text):
    """The folder of a recovery training text (TEXTS): the corpus or the model's own."""
    return TEXT if text == "corpus" else GENERATED_TEXT.format(model=model)


def task_dir_files(folder):
    """The files of a user's task folder (data.task_dirs) that its jobs read (inputs, so a
    changed one reruns them)."""
    return [str(f) for f in folder_files(Path(folder))]


def model_inputs(wildcards):
    """The compressed checkpoint and, for a recovered model, its adapter."""
    inputs = {"checkpoint": CHECKPOINT.format(**wildcards)}
    if PLAN.recoveries[wildcards.recovery].method != BASE:
        inputs["adapter"] = ADAPTER.format(**wildcards)
    return inputs


def section(*keys):
    """A config section as a params value, keys sorted (see compress_recover.config.canonical)."""
    value = config
    for key in keys:
        value = value[key]
    return canonical(value)


def eval_labels(wildcards):
    return run_labels(wildcards.model, wildcards.compression, wildcards.recovery)
