# The helpers of rules/recover.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).


# rule recover_<method>


def recover_inputs(wildcards):
    entry = PLAN.recoveries[wildcards.recovery]
    inputs = {
        "checkpoint": CHECKPOINT.format(**wildcards),
        "text": training_text(wildcards.model, entry.text),
    }
    texts = entry.config.training_texts(entry.text)
    if len(texts) > 1:  # one part of the adapter per text (a curated prompt pool)
        inputs["sources"] = [training_text(wildcards.model, t) for t in texts]
    if entry.objective.needs_teacher:
        inputs["teacher"] = TEACHER_LOGITS[entry.text].format(model=wildcards.model)
    return inputs


def checkpoint_adapters():
    """The recover rule's outputs for the budget's intermediate steps (wildcards kept)."""
    return [
        directory(CHECKPOINT_ADAPTER.replace("{steps}", str(n)))
        for n in PLAN.checkpoint_steps()
    ]


def recovery_config(wildcards):
    return canonical(PLAN.recoveries[wildcards.recovery].raw)


def recovery_key(wildcards):
    return PLAN.recoveries[wildcards.recovery].key


def recovery_objective(wildcards):
    return canonical(PLAN.recoveries[wildcards.recovery].objective.params())


# rule compute_<method>


def compute_inputs(wildcards):
    """The compressed checkpoint and the calibration text, and what the method needs besides:
    the uncompressed checkpoint (a residual's correction), the few-shot task folders."""
    entry = PLAN.recoveries[wildcards.recovery]
    inputs = {"checkpoint": CHECKPOINT.format(**wildcards), "text": TEXT}
    if "uncompressed" in entry.config.needs:
        inputs["uncompressed"] = BASE_CHECKPOINT.format(model=wildcards.model)
    if (
        "fewshot_tasks" in entry.config.needs
    ):  # a format control's demonstrations: the other relations'
        control = PLAN.format_control(wildcards.compression, wildcards.recovery)
        inputs["fewshot_tasks"] = expand(
            FEWSHOT_CONTROL_TASK if control else FEWSHOT_TASK, task=PLAN.knowledge_tasks
        )
    return inputs


def recovery_seed(wildcards):
    return PLAN.recoveries[wildcards.recovery].seed
