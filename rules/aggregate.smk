# Stage 6: one tidy table of every evaluation.


rule summary:
    input:
        evals=eval_results(),
        costs=cost_results(),
    output:
        SUMMARY,
    log:
        "logs/summary.log",
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/aggregate.py"
