# Is a compressed LM's knowledge forgotten or displaced?
# download -> compress -> recover -> evaluate -> aggregate; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/paths.smk"
include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/data.smk"
include: "rules/compress.smk"
include: "rules/recover.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"


# Cheap bookkeeping runs on the submit host when a cluster executor is used.
localrules:
    all,
    knowledge_task,
    fewshot_task,
    content_free_task,
    popularity,
    text,
    perplexity_task,
    summary,
    analysis,
    levels,
    figures,
    report,


rule all:
    input:
        all_targets(),
    default_target: True
