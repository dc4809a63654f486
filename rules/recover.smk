# Stage 4: recovery methods trained on the compressed model with the shared budget.


rule recover_lora:
    input:
        unpack(recover_inputs),
    output:
        directory(ADAPTER),
    log:
        "logs/{model}/{compression}/{recovery}/recover.log",
    benchmark:
        "benchmarks/{model}/{compression}/{recovery}/recover.tsv"
    params:
        method_config=recovery_config,
        key=recovery_key,
        budget=config["recovery"]["budget"],
        device=config["device"],
        dtype=config["dtype"],
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
    threads: 4
    wildcard_constraints:
        recovery=choice_regex(PLAN.recoveries_by_method("lora")),
    conda:
        "../envs/recover.yaml"
    script:
        "../workflow_scripts/recover.py"
