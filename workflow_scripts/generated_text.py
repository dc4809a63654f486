"""Rule generated_text: recovery text written by the uncompressed model itself, leak-filtered."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.generated_text import generate_text

    generate_text(
        checkpoint_dir=snakemake.input.checkpoint,
        text_dir=snakemake.input.text,
        task_dirs=list(snakemake.input.tasks),
        out_dir=snakemake.output[0],
        model_name=snakemake.wildcards.model,
        generation=snakemake.params.generation,
        seed=snakemake.params.seed,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
