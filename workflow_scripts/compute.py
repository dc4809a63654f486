"""Rule compute_<method>: a recovery method that trains nothing, computed for a compressed model."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.recover.compute import run_compute

    run_compute(
        checkpoint_dir=snakemake.input.checkpoint,
        out_dir=snakemake.output.adapter,
        method_config=snakemake.params.method_config,
        key=snakemake.params.key,
        text_dir=snakemake.input.text,
        base_dir=snakemake.input.get("uncompressed"),
        fewshot_task_dirs=snakemake.input.get("fewshot_tasks", []),
        seed=snakemake.params.seed,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
