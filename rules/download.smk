# Stage 1: a model entry of config.yaml -> a plain safetensors checkpoint.
# The base model is the 'none' compression, so its checkpoint sits where compressed ones do.


rule download:
    output:
        directory(BASE_CHECKPOINT),
    log:
        "logs/{model}/none/download.log",
    benchmark:
        "benchmarks/{model}/none/download.tsv"
    params:
        spec=model_spec,
        dtype=config["dtype"],
        trust_remote_code=config["trust_remote_code"],
    threads: 4
    conda:
        "../envs/download.yaml"
    script:
        "../workflow_scripts/download.py"
