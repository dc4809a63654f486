# The helpers of rules/evaluate.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).

# rule evaluate


def evaluate_inputs(wildcards):
    """The model and every task folder (the files of a user's task folder) it is scored on,
    content-free variants included, each listed once (a folder may define several tasks).
    """
    inputs = model_inputs(wildcards)
    shots = eval_shots(wildcards)
    control = format_control(wildcards)
    tasks = []
    for task in PLAN.evaluated_tasks():
        if task in PLAN.custom_tasks:
            tasks.extend(task_dir_files(PLAN.custom_tasks[task]))
        elif (folder := task_dir(task, shots, control)) is not None:
            tasks.append(folder)
    inputs["tasks"] = list(dict.fromkeys(tasks))
    return inputs


def task_dir(task, shots=0, control=False):
    """A task's folder for lm-eval (one we build, or the user's), or None for a built-in
    task; with ``shots`` > 0 a built knowledge task's few-shot folder (dev demonstrations),
    with ``control`` its format control's (the other relations' dev demonstrations).
    A built task's content-free variant is in its task's folder, a user's task's in a folder
    of its own (rule content_free_task, which includes the user's YAML).
    """
    source = PLAN.content_free().get(task)
    if source in PLAN.custom_tasks:
        return CONTENT_FREE_TASK.format(task=source)
    task = source or task
    if task in PLAN.custom_tasks:
        return PLAN.custom_tasks[task]
    if shots and task in PLAN.knowledge_tasks:
        return (FEWSHOT_CONTROL_TASK if control else FEWSHOT_TASK).format(task=task)
    if PLAN.task_kind(task) in ("knowledge", "perplexity"):
        return KNOWLEDGE_TASK.format(task=task)
    return None


def format_control(wildcards):
    """Whether an evaluation is a few-shot method's format control (Plan.format_control)."""
    return PLAN.format_control(wildcards.compression, wildcards.recovery)


def eval_shots(wildcards):
    """Demonstrations per prompt of an evaluation (Plan.shots)."""
    return PLAN.shots(wildcards.recovery)


def eval_cache(wildcards):
    """Where an evaluate job keeps each task's scores for reuse (not an output: it survives reruns)."""
    return EVAL_CACHE.format(**wildcards)


def eval_settings(wildcards):
    """config.yaml's evaluation section, with the run's own num_fewshot (eval_shots); without
    llamacpp (rule evaluate_llamacpp's, so turning it on reruns no torch evaluation)."""
    settings = {k: v for k, v in config["evaluation"].items() if k != "llamacpp"}
    return canonical({**settings, "num_fewshot": eval_shots(wildcards)})


def eval_tasks(wildcards):
    """Every task an evaluate job scores (content-free variants included), in the order of its outputs."""
    shots, control = eval_shots(wildcards), format_control(wildcards)
    return [
        {"task": task, "task_dir": task_dir(task, shots, control)}
        for task in PLAN.evaluated_tasks()
    ]


# rule evaluate_llamacpp


def llamacpp_tasks():
    """The knowledge tasks llama.cpp's runtime scores (zero-shot), in the order of its outputs."""
    return [{"task": t, "task_dir": task_dir(t)} for t in PLAN.knowledge()]


def llamacpp_task_dirs():
    folders = []
    for t in PLAN.knowledge():
        if t in PLAN.custom_tasks:
            folders.extend(task_dir_files(PLAN.custom_tasks[t]))
        else:
            folders.append(task_dir(t))
    return list(dict.fromkeys(folders))


def llamacpp_labels(wildcards):
    return run_labels(wildcards.model, wildcards.compression, BASE)


def llamacpp_results():
    """Both files of every GGUF checkpoint's llama.cpp evaluation (evaluation.llamacpp)."""
    if not PLAN.llamacpp:
        return []
    return [
        path.format(model=m, compression=c, task=t)
        for m, c in PLAN.gguf_cells()
        for t in PLAN.knowledge()
        for path in (LLAMACPP_JSON, LLAMACPP_SAMPLES)
    ]


# rule cost


def cost_inputs(wildcards):
    return {**model_inputs(wildcards), "text": TEXT}


def all_cores(wildcards):
    """Every core Snakemake may use locally: a job that asks for them all runs alone."""
    cores = workflow.cores
    return cores if isinstance(cores, int) and 0 < cores < 1024 else 4


# rule attention


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


def cell_recoveries(wildcards):
    """The recoveries evaluated on one (model, compression) that change the model itself
    (not few-shot prompting: its demonstrations are built by lm-eval, and the attention
    analysis reads the question alone)."""
    here = (wildcards.model, wildcards.compression)
    return [
        r
        for m, c, r in final_cells()
        if (m, c) == here and PLAN.recoveries[r].config.num_fewshot() is None
    ]


def adapter_or_none(wildcards, recovery):
    """A recovery's adapter folder, or "" for the compressed model itself."""
    if PLAN.recoveries[recovery].method == BASE:
        return ""
    return ADAPTER.format(recovery=recovery, **wildcards)


def compression_labels(wildcards):
    return {"model": wildcards.model, "compression": wildcards.compression}


def attention_figures():
    return [ATTENTION_PNG.format(model=m, compression=c) for m, c in attention_cells()]


def attention_cells():
    """(model, compression) of every compressed model, when the analysis is on."""
    if not config["report"]["attention_analysis"]:
        return []
    return sorted({(m, c) for m, c, _ in final_cells() if c != BASE})
