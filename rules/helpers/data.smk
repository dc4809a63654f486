# The helpers of rules/data.smk, rule by rule (Snakemake's linter keeps functions out of
# the files that hold rules).


# rule text


def corpus_file():
    """The user's text file (data.text.corpus: file): changing it rebuilds the text."""
    text = config["data"]["text"]
    return [text["path"]] if text["corpus"] == "file" and text.get("path") else []


# rule fewshot_task


def fewshot_task_dirs():
    """The few-shot folder of every built knowledge task."""
    return expand(FEWSHOT_TASK, task=PLAN.knowledge_tasks)


def most_shots():
    """The most demonstrations any evaluation asks for (Plan.most_shots), at least 1."""
    return max(PLAN.most_shots(), 1)


# rule content_free_task


def custom_task_files(wildcards):
    """The files of the user's folder that defines the task (data.task_dirs)."""
    return task_dir_files(PLAN.custom_tasks[wildcards.task])


def custom_task_dir(wildcards):
    """The user's folder that defines the task."""
    return PLAN.custom_tasks[wildcards.task]


def content_free_subject(wildcards):
    """The task's subject_field and masked_fields (its data.task_dirs entry)."""
    return canonical(PLAN.custom_subjects[wildcards.task])
