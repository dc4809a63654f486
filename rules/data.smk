# Stage 2: the knowledge suite (lm-eval tasks from packaged facts), the content-free variants
# of the user's knowledge tasks, the general text and the recovery text each model writes
# itself (once per model).


include: "helpers/data.smk"


rule knowledge_task:
    output:
        directory(KNOWLEDGE_TASK),
    log:
        "logs/data/tasks/{task}.log",
    params:
        num_choices=config["data"]["num_choices"],
        max_questions=config["data"]["max_questions"],
        max_answer_presence=config["data"]["max_answer_presence"],
        content_free_mask=config["data"]["content_free_mask"],
        seed=config["seed"],
    threads: 1
    wildcard_constraints:
        task=choice_regex(PLAN.knowledge_tasks),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/knowledge_task.py"


rule fewshot_task:
    input:
        tasks=expand(KNOWLEDGE_TASK, task=PLAN.knowledge_tasks),
    output:
        task=directory(FEWSHOT_TASK),
        control=directory(FEWSHOT_CONTROL_TASK),
    log:
        "logs/data/fewshot_tasks/{task}.log",
    params:
        split=section("data", "split"),
        tasks=PLAN.knowledge_tasks,
        shots=most_shots(),
        control_shots=PLAN.control_shots(),
        content_free_mask=config["data"]["content_free_mask"],
    threads: 1
    wildcard_constraints:
        task=choice_regex(PLAN.knowledge_tasks),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/fewshot_task.py"


rule content_free_task:
    input:
        custom_task_files,
    output:
        directory(CONTENT_FREE_TASK),
    log:
        "logs/data/content_free_tasks/{task}.log",
    params:
        task_dir=custom_task_dir,
        subject=content_free_subject,
        mask=config["data"]["content_free_mask"],
    threads: 1
    wildcard_constraints:
        task=choice_regex(PLAN.custom_content_free()),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/content_free_task.py"


rule popularity:
    output:
        POPULARITY,
    log:
        "logs/data/popularity.log",
    params:
        relations=PLAN.knowledge_tasks,
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/popularity.py"


rule text:
    input:
        tasks=expand(KNOWLEDGE_TASK, task=PLAN.knowledge_tasks),
        corpus=corpus_file(),
    output:
        directory(TEXT),
    log:
        "logs/data/text.log",
    params:
        text=section("data", "text"),
        seed=config["seed"],
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/text.py"


rule perplexity_task:
    input:
        text=TEXT,
    output:
        directory(PERPLEXITY_TASK),
    log:
        "logs/data/tasks/heldout_ppl.log",
    threads: 1
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/perplexity_task.py"


rule generated_text:
    input:
        checkpoint=BASE_CHECKPOINT,
        text=TEXT,
        tasks=expand(KNOWLEDGE_TASK, task=PLAN.knowledge_tasks),
    output:
        directory(GENERATED_TEXT),
    log:
        "logs/{model}/generated_text.log",
    benchmark:
        "logs/{model}/generated_text.benchmark.tsv"
    params:
        generation=section("data", "generated"),
        seed=config["seed"],
        runtime=RUNTIME,
    threads: 4
    conda:
        "../envs/recover.yaml"
    script:
        "../workflow_scripts/generated_text.py"
