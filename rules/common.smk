# Helpers for the rules: config validation, the job grid, input functions, paths.
# Imports nothing heavy: the package's config module is pure Python.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from compress_recover.aggregate.figures import FIGURES
from compress_recover.compress import COMPRESSION
from compress_recover.config import STEP_MARK, build_plan, canonical, choice_regex
from compress_recover.recover import RECOVERY
from compress_recover.runtime import Runtime

validate(config, "../compress_recover/schema/config.schema.yaml")
PLAN = build_plan(config)
COMPRESSION_METHODS = [m for m in COMPRESSION.names() if m != "none"]
RECOVERY_METHODS = [m for m in RECOVERY.names() if m != "none"]
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

# Every path of the workflow, in provenance order.
# The download: the uncompressed model.
BASE_CHECKPOINT = "results/{model}/none/checkpoint"
CHECKPOINT = "results/{model}/{compression}/checkpoint"
ADAPTER = "results/{model}/{compression}/{recovery}/adapter"
# An intermediate budget checkpoint of a trained run (its evaluations use run <recovery>.step<n>).
CHECKPOINT_ADAPTER = (
    "results/{model}/{compression}/{recovery}%s{steps}/adapter" % STEP_MARK
)
# The recovery text the uncompressed model writes itself (recovery text: generated).
GENERATED_TEXT = "results/{model}/none/generated_text"
# The uncompressed model's top-k logits on each training text, shared by distilling recoveries.
TEACHER_LOGITS = {
    "corpus": "results/{model}/none/teacher_logits",
    "generated": "results/{model}/none/teacher_logits_generated",
}
EVAL_JSON = "results/{model}/{compression}/{recovery}/eval/{task}.json"
EVAL_SAMPLES = "results/{model}/{compression}/{recovery}/eval/{task}.samples.jsonl"
COST = "results/{model}/{compression}/{recovery}/cost.json"
KNOWLEDGE_TASK = "results/data/tasks/{task}"
PERPLEXITY_TASK = "results/data/tasks/heldout_ppl"
TEXT = "results/data/text"
SUMMARY = "results/summary.csv"
SUMMARY_PARQUET = "results/summary.parquet"
ANALYSIS = "results/analysis"
FIGURE = "results/figures/{name}.png"
REPORT = "results/report.html"
ATTENTION_CSV = "results/{model}/{compression}/attention/analysis.csv"
ATTENTION_PNG = "results/{model}/{compression}/attention/attention.png"
# Snakemake's per-job timings (benchmark:) sit beside each job's log, under logs/.


wildcard_constraints:
    model=choice_regex(PLAN.models),
    compression=choice_regex(PLAN.compressions),
    recovery=choice_regex(PLAN.recoveries),
    task=choice_regex(PLAN.tasks),


def final_cells():
    """Every (model, compression, recovery run) at the final budget (no intermediate checkpoint)."""
    return [(m, c, r) for m, c, r in PLAN.cells() if PLAN.recoveries[r].parent is None]


def eval_results():
    return [
        EVAL_JSON.format(model=m, compression=c, recovery=r, task=t)
        for m, c, r in PLAN.cells()
        for t in PLAN.tasks
    ]


def cost_results():
    """Cost of every model at the final budget (a checkpoint costs what its final run costs)."""
    return [
        COST.format(model=m, compression=c, recovery=r) for m, c, r in final_cells()
    ]


def all_targets():
    return [SUMMARY, SUMMARY_PARQUET, REPORT]


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


def knowledge_cells():
    """The labels, training steps and task of every knowledge-task evaluation, in order."""
    return [
        {**run_labels(m, c, r), "steps": PLAN.recoveries[r].steps, "task": t}
        for m, c, r in PLAN.cells()
        for t in PLAN.knowledge()
    ]


def run_steps():
    """Recovery run -> the optimizer steps of its adapter (None for method none)."""
    return {run: entry.steps for run, entry in PLAN.recoveries.items()}


def knowledge_samples():
    """The samples file of each of knowledge_cells(), in the same order."""
    return [
        EVAL_SAMPLES.format(
            model=cell["model"],
            compression=cell["compression"],
            recovery=cell["run"],
            task=cell["task"],
        )
        for cell in knowledge_cells()
    ]


def recovery_methods():
    """Recovery entry (group) and run name -> method, and method -> side."""
    methods = {**PLAN.groups()}
    methods.update({run: entry.method for run, entry in PLAN.recoveries.items()})
    return canonical({"methods": methods, "sides": RECOVERY.sides()})


def attention_cells():
    """(model, compression) of every compressed model, when the analysis is on."""
    if not config["report"]["attention_analysis"]:
        return []
    return sorted({(m, c) for m, c, _ in final_cells() if c != "none"})


def attention_figures():
    return [ATTENTION_PNG.format(model=m, compression=c) for m, c in attention_cells()]


def cell_recoveries(wildcards):
    """The recoveries evaluated on one (model, compression)."""
    here = (wildcards.model, wildcards.compression)
    return [r for m, c, r in final_cells() if (m, c) == here]


def adapter_or_none(wildcards, recovery):
    """A recovery's adapter folder, or "" for the compressed model itself."""
    if PLAN.recoveries[recovery].method == "none":
        return ""
    return ADAPTER.format(recovery=recovery, **wildcards)


def attention_inputs(wildcards):
    task = config["report"]["attention_task"]
    return {
        "base": BASE_CHECKPOINT.format(model=wildcards.model),
        "checkpoint": CHECKPOINT.format(**wildcards),
        "task": KNOWLEDGE_TASK.format(task=task),
        "adapters": [
            a
            for r in cell_recoveries(wildcards)
            if (a := adapter_or_none(wildcards, r))
        ],
    }


def attention_adapters(wildcards):
    """Recovery name -> adapter folder ("" for the compressed model itself)."""
    return {r: adapter_or_none(wildcards, r) for r in cell_recoveries(wildcards)}


def figure_files(wildcards=None):
    return {name: FIGURE.format(name=name) for name in FIGURES}


def download_inputs(wildcards):
    """A local model's files (a local folder or a GGUF file): changing one reruns its download
    and everything after it. Embedded and hub models are pinned by version and revision.
    """
    spec = PLAN.models[wildcards.model]
    if spec["source"] == "local":
        folder = Path(spec["path"])
        return {"source": sorted(str(f) for f in folder.rglob("*") if f.is_file())}
    if spec["source"] == "gguf":
        return {"source": [spec["path"]]}
    return {}


def corpus_file():
    """The user's text file (data.text.corpus: file): changing it rebuilds the text."""
    text = config["data"]["text"]
    return [text["path"]] if text["corpus"] == "file" and text.get("path") else []


def model_spec(wildcards):
    return canonical(PLAN.models[wildcards.model])


def compression_config(wildcards):
    return canonical(PLAN.compressions[wildcards.compression].raw)


def compression_key(wildcards):
    return PLAN.compressions[wildcards.compression].key


def recovery_config(wildcards):
    return canonical(PLAN.recoveries[wildcards.recovery].raw)


def recovery_key(wildcards):
    return PLAN.recoveries[wildcards.recovery].key


def recovery_objective(wildcards):
    return canonical(PLAN.recoveries[wildcards.recovery].objective.params())


def recovery_seed(wildcards):
    return PLAN.recoveries[wildcards.recovery].seed


def training_text(model, text):
    """The folder of a recovery training text (TEXTS): the corpus or the model's own."""
    return TEXT if text == "corpus" else GENERATED_TEXT.format(model=model)


def recover_inputs(wildcards):
    entry = PLAN.recoveries[wildcards.recovery]
    inputs = {
        "checkpoint": CHECKPOINT.format(**wildcards),
        "text": training_text(wildcards.model, entry.text),
    }
    if entry.objective.needs_teacher:
        inputs["teacher"] = TEACHER_LOGITS[entry.text].format(model=wildcards.model)
    return inputs


def checkpoint_adapters():
    """The recover rule's outputs for the budget's intermediate steps (wildcards kept)."""
    return [
        directory(CHECKPOINT_ADAPTER.replace("{steps}", str(n)))
        for n in PLAN.checkpoint_steps()
    ]


def generated_texts():
    """The self-generated text of every model, when some recovery trains on it."""
    if "generated" not in PLAN.texts_used():
        return []
    return [GENERATED_TEXT.format(model=m) for m in PLAN.models]


def model_inputs(wildcards):
    """The compressed checkpoint and, for a recovered model, its adapter."""
    inputs = {"checkpoint": CHECKPOINT.format(**wildcards)}
    if PLAN.recoveries[wildcards.recovery].method != "none":
        inputs["adapter"] = ADAPTER.format(**wildcards)
    return inputs


def cost_inputs(wildcards):
    return {**model_inputs(wildcards), "text": TEXT}


def evaluate_inputs(wildcards):
    """The model and every task folder (the files of a user's task folder) it is scored on."""
    inputs = model_inputs(wildcards)
    inputs["tasks"] = []
    for task in PLAN.tasks:
        if task in PLAN.custom_tasks:
            folder = Path(PLAN.custom_tasks[task])
            inputs["tasks"].extend(
                sorted(str(f) for f in folder.rglob("*") if f.is_file())
            )
        elif (folder := task_dir(task)) is not None:
            inputs["tasks"].append(folder)
    return inputs


def task_dir(task):
    """A task's folder for lm-eval (one we build, or the user's), or None for a built-in task."""
    if task in PLAN.custom_tasks:
        return PLAN.custom_tasks[task]
    if PLAN.task_kind(task) in ("knowledge", "perplexity"):
        return KNOWLEDGE_TASK.format(task=task)
    return None


def eval_tasks():
    """Every task an evaluate job scores, in the order of its outputs."""
    return [{"task": task, "task_dir": task_dir(task)} for task in PLAN.tasks]


def section(*keys):
    """A config section as a params value, keys sorted (see compress_recover.config.canonical)."""
    value = config
    for key in keys:
        value = value[key]
    return canonical(value)


def all_cores(wildcards):
    """Every core Snakemake may use locally: a job that asks for them all runs alone."""
    cores = workflow.cores
    return cores if isinstance(cores, int) and 0 < cores < 1024 else 4


def compression_labels(wildcards):
    return {"model": wildcards.model, "compression": wildcards.compression}


def eval_labels(wildcards):
    return run_labels(wildcards.model, wildcards.compression, wildcards.recovery)


def base_checkpoints():
    """The downloaded checkpoint of every model (their manifests state its precision)."""
    return [BASE_CHECKPOINT.format(model=m) for m in PLAN.models]
