# The helpers of rules/compress.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).


from pathlib import Path

# rule compress_<method>


def compression_config(wildcards):
    return canonical(PLAN.compressions[wildcards.compression].raw)


def compression_key(wildcards):
    return PLAN.compressions[wildcards.compression].key


def compression_inputs(wildcards):
    """The base checkpoint, the text (calibration) and, for a compressed checkpoint made
    elsewhere, its files (a GGUF file, or a folder's): changing one reruns its import.
    """
    inputs = {"checkpoint": BASE_CHECKPOINT.format(model=wildcards.model), "text": TEXT}
    for source in PLAN.compressions[wildcards.compression].config.source_files():
        path = Path(source)
        inputs.setdefault("source", []).extend(
            [str(path)]
            if path.is_file()
            else sorted(str(f) for f in path.rglob("*") if f.is_file())
        )
    return inputs
