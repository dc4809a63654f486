# Stage 6: one tidy table of every evaluation.


rule summary:
    input:
        eval_results(),
    output:
        SUMMARY,
    log:
        "logs/summary.log",
    threads: 1
    conda:
        "../envs/aggregate.yaml"
    script:
        "../workflow_scripts/aggregate.py"
