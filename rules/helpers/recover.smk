# The helpers of rules/recover.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).


# rule recover_<method>


def recover_inputs(wildcards):
    entry = PLAN.recoveries[wildcards.recovery]
    inputs = {
        "checkpoint": CHECKPOINT.format(**wildcards),
        "text": training_text(wildcards.model, entry.text),
    }
    if "uncompressed" in entry.config.needs:  # a residual's correction (and its calibration text)
        inputs["uncompressed"] = BASE_CHECKPOINT.format(model=wildcards.model)
    if "fewshot_tasks" in entry.config.needs:
        inputs["fewshot_tasks"] = fewshot_task_dirs()
    if not entry.config.trained:
        return inputs
    texts = entry.config.training_texts(entry.text)
    if len(texts) > 1:  # one part of the adapter per text (a curated prompt pool)
        inputs["sources"] = [training_text(wildcards.model, t) for t in texts]
    if entry.objective.needs_teacher:
        inputs["teacher"] = TEACHER_LOGITS[entry.text].format(model=wildcards.model)
    return inputs


def checkpoint_adapters(method):
    """The recover rule's outputs for the budget's intermediate steps (wildcards kept); none
    for a method that trains nothing."""
    if not RECOVERY[method].config_cls.trained:
        return []
    return [
        directory(CHECKPOINT_ADAPTER.replace("{steps}", str(n)))
        for n in PLAN.checkpoint_steps()
    ]


def recovery_config(wildcards):
    return canonical(PLAN.recoveries[wildcards.recovery].raw)


def recovery_key(wildcards):
    return PLAN.recoveries[wildcards.recovery].key


def recovery_objective(wildcards):
    objective = PLAN.recoveries[wildcards.recovery].objective
    return canonical(objective.params()) if objective is not None else None


def recovery_seed(wildcards):
    return PLAN.recoveries[wildcards.recovery].seed
