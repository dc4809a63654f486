# Stage 6: the tidy table of every evaluation, the statistics and verdict, the pictures
# and one self-contained HTML report.


include: "helpers/aggregate.smk"


rule summary:
    input:
        evals=eval_results(),
        costs=cost_results(),
        bases=base_checkpoints(),
    output:
        csv=SUMMARY,
        parquet=SUMMARY_PARQUET,
    log:
        "logs/summary.log",
    params:
        steps=run_steps(),
        recovery=recovery_methods(),
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/summary.py"


rule analysis:
    input:
        samples=knowledge_samples(),
        content_free=content_free_samples(),
        text=TEXT,
        generated=generated_texts(),
        tasks=expand(KNOWLEDGE_TASK, task=PLAN.knowledge_tasks),
        fewshot=fewshot_inputs(),
        popularity=POPULARITY,
        pools=pool_adapters(),
    output:
        directory(ANALYSIS),
    log:
        "logs/analysis.log",
    params:
        cells=knowledge_cells(),
        content_free_cells=content_free_cells(),
        knowledge_tasks=PLAN.knowledge(),
        recovery=recovery_methods(),
        report=section("report"),
        budget=section("recovery", "budget"),
        split=section("data", "split"),
        seeds=PLAN.seeds,
        seed=config["seed"],
        pool_runs=pool_runs(),
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/analysis.py"


rule levels:
    input:
        samples=[cell["samples"] for cell in level_cells()],
        base=sorted({cell["base_samples"] for cell in level_cells()}),
        llamacpp=llamacpp_results(),
        checkpoints=level_checkpoints(),
    output:
        directory(LEVELS),
    log:
        "logs/levels.log",
    params:
        cells=level_cells(),
        llamacpp=level_llamacpp(),
        split=section("data", "split"),
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/levels.py"


rule figures:
    input:
        summary=SUMMARY,
        analysis=ANALYSIS,
    output:
        **{
            name: report(path, category="Figures", labels={"figure": name})
            for name, path in figure_files().items()
        },
    log:
        "logs/figures.log",
    params:
        knowledge_tasks=PLAN.knowledge(),
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/figures.py"


rule report:
    input:
        unpack(figure_files),
        attention=attention_figures(),
        summary=SUMMARY,
        analysis=ANALYSIS,
        levels=LEVELS,
        costs=cost_results(),
        manifests=shortfall_sources(),
    output:
        report(REPORT, category="Report", labels={"page": "compress-recover report"}),
    log:
        "logs/report.log",
    params:
        config=section(),
        knowledge_tasks=PLAN.knowledge(),
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/report.py"
