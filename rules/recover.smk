# Stage 4: one rule per registered recovery method that trains (recover_lora,
# recover_prompt_tuning, ...), each trained on the compressed model with the shared budget
# (saving a checkpoint at every earlier step of a budget curve), and one per training-free
# method (compute_eora, compute_fewshot); distilling runs read the teacher's logits,
# computed once per model and training text.


include: "helpers/recover.smk"


for text, teacher_path in TEACHER_LOGITS.items():

    rule:
        name:
            f"teacher_logits_{text}"
        input:
            checkpoint=BASE_CHECKPOINT,
            text=training_text("{model}", text),
        output:
            directory(teacher_path),
        log:
            f"logs/{{model}}/teacher_logits_{text}.log",
        benchmark:
            f"logs/{{model}}/teacher_logits_{text}.benchmark.tsv"
        params:
            seq_len=config["recovery"]["budget"]["seq_len"],
            top_k=config["recovery"]["teacher_top_k"],
            runtime=RUNTIME,
        threads: 4
        conda:
            "../envs/recover.yaml"
        script:
            "../workflow_scripts/teacher_logits.py"


for method in TRAINED_METHODS:

    rule:
        name:
            f"recover_{method}"
        input:
            unpack(recover_inputs),
        output:
            adapter=directory(ADAPTER),
            checkpoints=checkpoint_adapters(),
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


# The remedies that train nothing (EoRA, few-shot prompting): one rule compute_<method> each,
# computed from the weights (and calibration data) or the task folders, no budget.
for method in TRAINING_FREE_METHODS:

    rule:
        name:
            f"compute_{method}"
        input:
            unpack(compute_inputs),
        output:
            adapter=directory(ADAPTER),
        log:
            "logs/{model}/{compression}/{recovery}/compute.log",
        benchmark:
            "logs/{model}/{compression}/{recovery}/compute.benchmark.tsv"
        params:
            method_config=recovery_config,
            key=recovery_key,
            seed=recovery_seed,
            runtime=RUNTIME,
        threads: 4
        wildcard_constraints:
            recovery=choice_regex(PLAN.recoveries_by_method(method)),
        conda:
            "../envs/recover.yaml"
        script:
            "../workflow_scripts/compute.py"
