# Stage 4: one rule per registered recovery method (recover_lora, recover_prompt_tuning, ...),
# each trained on the compressed model with the shared budget; distilling runs read the
# teacher's logits, computed once per model.


rule teacher_logits:
    input:
        checkpoint=BASE_CHECKPOINT,
        text=TEXT,
    output:
        directory(TEACHER_LOGITS),
    log:
        "logs/{model}/teacher_logits.log",
    benchmark:
        "logs/{model}/teacher_logits.benchmark.tsv"
    params:
        seq_len=config["recovery"]["budget"]["seq_len"],
        top_k=config["recovery"]["teacher_top_k"],
        runtime=RUNTIME,
    threads: 4
    conda:
        "../envs/recover.yaml"
    script:
        "../workflow_scripts/teacher_logits.py"


for method in RECOVERY_METHODS:

    rule:
        name:
            f"recover_{method}"
        input:
            unpack(recover_inputs),
        output:
            directory(ADAPTER),
        log:
            "logs/{model}/{compression}/{recovery}/recover.log",
        benchmark:
            "logs/{model}/{compression}/{recovery}/recover.benchmark.tsv"
        params:
            method_config=recovery_config,
            key=recovery_key,
            budget=section("recovery", "budget"),
            objective=recovery_objective,
            seed=recovery_seed,
            runtime=RUNTIME,
        threads: 4
        wildcard_constraints:
            recovery=choice_regex(PLAN.recoveries_by_method(method)),
        conda:
            "../envs/recover.yaml"
        script:
            "../workflow_scripts/recover.py"
