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
