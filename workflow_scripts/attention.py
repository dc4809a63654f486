"""Rule attention: per-layer attention and activation analysis of one compressed model's family."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.evaluate.attention import run_attention_analysis

    run_attention_analysis(
        base_dir=snakemake.input.base,
        checkpoint_dir=snakemake.input.checkpoint,
        adapters=snakemake.params.adapters,
        task_dir=snakemake.input.task,
        questions=snakemake.params.questions,
        labels=snakemake.params.labels,
        out_csv=snakemake.output.csv,
        out_png=snakemake.output.png,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
