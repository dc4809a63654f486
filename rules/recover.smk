# Stage 4: one rule per registered recovery method (recover_lora, recover_prompt_tuning, ...),
# each trained on the compressed model with the shared budget.

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
