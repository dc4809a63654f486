"""Rule evaluate: lm-eval on one (model, compression, recovery), every task in one process."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.evaluate.evaluate import run_evaluation

    evaluation = snakemake.params.evaluation
    run_evaluation(
        checkpoint_dir=snakemake.input.checkpoint,
        adapter_dir=snakemake.input.get("adapter"),
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
        batch_size=evaluation["batch_size"],
        rolling_batch_size=evaluation["rolling_batch_size"],
        limit=evaluation["limit"],
        num_fewshot=evaluation["num_fewshot"],
        pool_ablation=evaluation["idp_ablation"],
        cache_dir=snakemake.params.cache_dir,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
