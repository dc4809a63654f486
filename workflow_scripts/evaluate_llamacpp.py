"""Rule evaluate_llamacpp: a GGUF checkpoint's knowledge tasks scored by llama.cpp's runtime."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.evaluate.evaluate import task_outputs
    from compress_recover.evaluate.evaluate_llamacpp import run_llamacpp_evaluation

    run_llamacpp_evaluation(
        checkpoint_dir=snakemake.input.checkpoint,
        tasks=task_outputs(snakemake.params.tasks, snakemake.output.results, snakemake.output.samples),
        labels=snakemake.params.labels,
        limit=snakemake.params.limit,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
