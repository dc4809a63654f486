# Stage 3: one rule per registered compression method (compress_gptq, compress_wanda, ...);
# 'none' is the downloaded checkpoint itself.


include: "helpers/compress.smk"


for method in COMPRESSION_METHODS:

    rule:
        name:
            f"compress_{method}"
        input:
            unpack(compression_inputs),
        output:
            directory(CHECKPOINT),
        log:
            "logs/{model}/{compression}/compress.log",
        benchmark:
            "logs/{model}/{compression}/compress.benchmark.tsv"
        params:
            method_config=compression_config,
            key=compression_key,
            calibration=section("compression", "calibration"),
            runtime=RUNTIME,
        threads: 4
        wildcard_constraints:
            compression=choice_regex(PLAN.compressions_by_method(method)),
        conda:
            "../envs/compress.yaml"
        script:
            "../workflow_scripts/compress.py"
