"""Rule recover_<method>: train one registered recovery method on a compressed model."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.recover.recover import run_recovery

    budget = snakemake.params.budget
    run_recovery(
        checkpoint_dir=snakemake.input.checkpoint,
        out_dir=snakemake.output.adapter,
        checkpoint_dirs=list(snakemake.output.checkpoints),
        method_config=snakemake.params.method_config,
        key=snakemake.params.key,
        text_dir=snakemake.input.text,
        source_dirs=snakemake.input.get("sources"),
        steps=budget["steps"],
        batch_size=budget["batch_size"],
        seq_len=budget["seq_len"],
        gradient_clip=budget["gradient_clip"],
        objective=snakemake.params.objective,
        teacher_dir=snakemake.input.get("teacher"),
        seed=snakemake.params.seed,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
