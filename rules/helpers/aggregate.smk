# The helpers of rules/aggregate.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).


# rule summary


def eval_results():
    return [
        EVAL_JSON.format(model=m, compression=c, recovery=r, task=t)
        for m, c, r in PLAN.cells()
        for t in PLAN.tasks
    ]


def base_checkpoints():
    """The downloaded checkpoint of every model (their manifests state its precision)."""
    return [BASE_CHECKPOINT.format(model=m) for m in PLAN.models]


def run_steps():
    """Recovery run -> the optimizer steps of its adapter (None for method none)."""
    return {run: entry.steps for run, entry in PLAN.recoveries.items()}


# rule analysis


def knowledge_cells():
    """The labels, training steps and task of every knowledge-task evaluation, in order."""
    return [
        {**run_labels(m, c, r), "steps": PLAN.recoveries[r].steps, "task": t}
        for m, c, r in PLAN.cells()
        for t in PLAN.knowledge()
    ]


def pool_runs():
    """(model, compression, run) at the final budget of every method that keeps one prompt
    of a pool per input: the analysis reads each one's adapter manifest (the examples each
    prompt trained with) and excludes a run whose test answers came from undertrained prompts.
    """
    return [
        [m, c, r] for m, c, r in final_cells() if PLAN.recoveries[r].config.choice_field
    ]


def pool_adapters():
    """The adapter folder of each of pool_runs(), in the same order."""
    return [
        ADAPTER.format(model=m, compression=c, recovery=r) for m, c, r in pool_runs()
    ]


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


def content_free_cells():
    """The labels, training steps and task (the knowledge task it pairs with: a built one, or
    a user's whose data.task_dirs entry names its subject_field) of every content-free
    evaluation, in order (none without data.content_free_mask)."""
    return [
        {**run_labels(m, c, r), "steps": PLAN.recoveries[r].steps, "task": t}
        for m, c, r in PLAN.cells()
        for t in PLAN.content_free().values()
    ]


def content_free_samples():
    """The samples file of each of content_free_cells() (its task's content-free variant)."""
    variants = {t: v for v, t in PLAN.content_free().items()}
    return [
        EVAL_SAMPLES.format(
            model=cell["model"],
            compression=cell["compression"],
            recovery=cell["run"],
            task=variants[cell["task"]],
        )
        for cell in content_free_cells()
    ]


def generated_texts():
    """The self-generated text of every model, when some recovery trains on it."""
    if "generated" not in PLAN.texts_used():
        return []
    return [GENERATED_TEXT.format(model=m) for m in PLAN.models]


def fewshot_inputs():
    """The few-shot task folders, when an evaluation draws demonstrations, and the format
    control's folders, when a format control does (the analysis checks that every
    demonstration was a dev fact)."""
    control = (
        expand(FEWSHOT_CONTROL_TASK, task=PLAN.knowledge_tasks)
        if PLAN.control_shots() > 0
        else []
    )
    return (fewshot_task_dirs() if PLAN.most_shots() > 0 else []) + control


def recovery_methods():
    """Recovery entry (group) and run name -> method, method -> side and whether it
    trains, and group -> where a reference method's information comes from."""
    methods = {**PLAN.groups()}
    methods.update({run: entry.method for run, entry in PLAN.recoveries.items()})
    trained = {m: RECOVERY[m].config_cls.trained for m in RECOVERY.names() if m != BASE}
    return canonical(
        {
            "methods": methods,
            "sides": RECOVERY.sides(),
            "trained": trained,
            "references": PLAN.references(),
        }
    )


# rule levels


def level_cells():
    """Every compression of every model, unrecovered, against the model, per knowledge task:
    the samples of both (torch path) and the llama.cpp path's where it has one."""
    gguf = set(PLAN.gguf_cells()) if PLAN.llamacpp else set()
    return [
        {
            "model": m,
            "compression": c,
            "task": t,
            "checkpoint": CHECKPOINT.format(model=m, compression=c),
            "samples": EVAL_SAMPLES.format(
                model=m, compression=c, recovery=BASE, task=t
            ),
            "base_samples": EVAL_SAMPLES.format(
                model=m, compression=BASE, recovery=BASE, task=t
            ),
            "llamacpp_samples": (
                LLAMACPP_SAMPLES.format(model=m, compression=c, task=t)
                if (m, c) in gguf
                else None
            ),
        }
        for m in PLAN.models
        for c in PLAN.model_compressions(m)
        if c != BASE
        for t in PLAN.knowledge()
    ]


def level_checkpoints():
    """The checkpoint folder of every compression of every model (their manifests)."""
    return sorted({cell["checkpoint"] for cell in level_cells()})


def level_llamacpp():
    """[model, compression, [its llama.cpp results JSON per knowledge task]] per GGUF cell."""
    if not PLAN.llamacpp:
        return []
    return [
        [
            m,
            c,
            [
                LLAMACPP_JSON.format(model=m, compression=c, task=t)
                for t in PLAN.knowledge()
            ],
        ]
        for m, c in PLAN.gguf_cells()
    ]


# rule report


def shortfall_sources():
    """The folders whose manifest.json records what a job served with less than asked
    (calibration blocks, questions, generated passages): compressed checkpoints, built
    knowledge tasks, the training-free runs' adapters and the generated texts; the report
    lists their shortfalls."""
    folders = [
        CHECKPOINT.format(model=m, compression=c)
        for m in PLAN.models
        for c in PLAN.model_compressions(m)
        if c != BASE
    ]
    folders += expand(KNOWLEDGE_TASK, task=PLAN.knowledge_tasks)
    folders += [
        ADAPTER.format(model=m, compression=c, recovery=r)
        for m, c, r in final_cells()
        if r != BASE and not PLAN.recoveries[r].config.trained
    ]
    return folders + generated_texts()
