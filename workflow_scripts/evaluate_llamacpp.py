"""Rule evaluate_llamacpp: a GGUF checkpoint's knowledge tasks scored by llama.cpp's runtime."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.evaluate.llamacpp import run_llamacpp_evaluation

    run_llamacpp_evaluation(
        checkpoint_dir=snakemake.input.checkpoint,
        tasks=[
            {**spec, "out_json": results, "out_samples": samples}
            for spec, results, samples in zip(
                snakemake.params.tasks,
                snakemake.output.results,
                snakemake.output.samples,
                strict=True,
            )
        ],
        labels=snakemake.params.labels,
        limit=snakemake.params.limit,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
