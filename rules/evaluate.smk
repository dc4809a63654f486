# Stage 5: lm-eval on every (model, compression, recovery, task), and the cost of every model.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        results=EVAL_JSON,
        samples=EVAL_SAMPLES,
    log:
        "logs/{model}/{compression}/{recovery}/eval/{task}.log",
    benchmark:
        "benchmarks/{model}/{compression}/{recovery}/eval/{task}.tsv"
    params:
        task_dir=task_dir,
        labels=eval_labels,
        evaluation=section("evaluation"),
        device=config["device"],
        dtype=config["dtype"],
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
    threads: 4
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule cost:
    input:
        unpack(cost_inputs),
    output:
        COST,
    log:
        "logs/{model}/{compression}/{recovery}/cost.log",
    params:
        cost=section("cost"),
        labels=eval_labels,
        device=config["device"],
        dtype=config["dtype"],
        seed=config["seed"],
        trust_remote_code=config["trust_remote_code"],
    threads: 4
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/cost.py"
