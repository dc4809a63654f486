# Stage 5: lm-eval on every (model, compression, recovery), all its tasks and their
# content-free variants in one job (one results + samples file per task), the cost of every model, and the attention and
# activation analysis of every compressed model (it loads the models, as evaluation does).


include: "helpers/evaluate.smk"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        results=expand(EVAL_JSON, task=PLAN.evaluated_tasks(), allow_missing=True),
        samples=expand(EVAL_SAMPLES, task=PLAN.evaluated_tasks(), allow_missing=True),
    log:
        "logs/{model}/{compression}/{recovery}/evaluate.log",
    benchmark:
        "logs/{model}/{compression}/{recovery}/evaluate.benchmark.tsv"
    params:
        tasks=eval_tasks,
        cache_dir=eval_cache,
        labels=eval_labels,
        evaluation=eval_settings,
        runtime=RUNTIME,
    # One thread per evaluation job: on a few cores, two 1-thread jobs side by side
    # finish ~15% sooner than two 2-thread jobs in a row (per-job start-up overlaps).
    threads: 1
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_llamacpp:
    input:
        checkpoint=CHECKPOINT,
        tasks=llamacpp_task_dirs(),
    output:
        results=expand(LLAMACPP_JSON, task=PLAN.knowledge(), allow_missing=True),
        samples=expand(LLAMACPP_SAMPLES, task=PLAN.knowledge(), allow_missing=True),
    log:
        "logs/{model}/{compression}/evaluate_llamacpp.log",
    benchmark:
        "logs/{model}/{compression}/evaluate_llamacpp.benchmark.tsv"
    params:
        tasks=llamacpp_tasks(),
        labels=llamacpp_labels,
        limit=config["evaluation"]["limit"],
        runtime=RUNTIME,
    threads: 1
    wildcard_constraints:
        compression=choice_regex(sorted({c for _, c in PLAN.gguf_cells()}) or ["-"]),
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/evaluate_llamacpp.py"


rule cost:
    input:
        unpack(cost_inputs),
    output:
        COST,
    log:
        "logs/{model}/{compression}/{recovery}/cost.log",
    benchmark:
        "logs/{model}/{compression}/{recovery}/cost.benchmark.tsv"
    params:
        cost=section("cost"),
        labels=eval_labels,
        runtime=RUNTIME,
    # Latency is timed with every local core, so no other job runs beside it.
    threads: all_cores
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/cost.py"


rule attention:
    input:
        unpack(attention_inputs),
    output:
        csv=ATTENTION_CSV,
        png=report(ATTENTION_PNG, category="Attention and activations"),
    log:
        "logs/{model}/{compression}/attention.log",
    benchmark:
        "logs/{model}/{compression}/attention.benchmark.tsv"
    params:
        adapters=attention_adapters,
        questions=config["report"]["attention_questions"],
        labels=compression_labels,
        runtime=RUNTIME,
    threads: 4
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/attention.py"
