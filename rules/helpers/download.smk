# The helpers of rules/download.smk, rule by rule (Snakemake's linter keeps functions out
# of the files that hold rules).
from pathlib import Path

# rule download


def download_inputs(wildcards):
    """A local model's files (a local folder or a GGUF file): changing one reruns its download
    and everything after it. Embedded and hub models are pinned by version and revision.
    """
    spec = PLAN.models[wildcards.model]
    if spec["source"] == "local":
        folder = Path(spec["path"])
        return {"source": sorted(str(f) for f in folder.rglob("*") if f.is_file())}
    if spec["source"] == "gguf":
        return {"source": [spec["path"]]}
    return {}


def model_spec(wildcards):
    """The model's entry, without its own compressions (adding one reruns no download)."""
    spec = PLAN.models[wildcards.model]
    return canonical({k: v for k, v in spec.items() if k != "compressions"})
