# Stage 1: a model entry of config.yaml -> a plain safetensors checkpoint.
# The base model is the 'none' compression, so its checkpoint sits where compressed ones do.


include: "helpers/download.smk"


rule download:
    input:
        unpack(download_inputs),
    output:
        directory(BASE_CHECKPOINT),
    log:
        "logs/{model}/none/download.log",
    benchmark:
        "logs/{model}/none/download.benchmark.tsv"
    params:
        spec=model_spec,
        runtime=RUNTIME,
    threads: 4
    conda:
        "../envs/download.yaml"
    script:
        "../workflow_scripts/download.py"
