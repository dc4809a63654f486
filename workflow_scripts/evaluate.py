"""Rule evaluate: lm-eval on one (model, compression, recovery, task)."""
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
        task=snakemake.wildcards.task,
        task_dir=snakemake.params.task_dir,
        out_json=snakemake.output.results,
        out_samples=snakemake.output.samples,
        labels=snakemake.params.labels,
        batch_size=evaluation["batch_size"],
        rolling_batch_size=evaluation["rolling_batch_size"],
        limit=evaluation["limit"],
        num_fewshot=evaluation["num_fewshot"],
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
