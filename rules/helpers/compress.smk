# The helpers of rules/compress.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).


# rule compress_<method>


def compression_config(wildcards):
    return canonical(PLAN.compressions[wildcards.compression].raw)


def compression_key(wildcards):
    return PLAN.compressions[wildcards.compression].key
