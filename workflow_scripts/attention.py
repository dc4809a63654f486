"""Rule attention: per-layer attention and activation analysis of one compressed model's family."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.attention import run_attention_analysis

    run_attention_analysis(
        base_dir=snakemake.input.base,
        checkpoint_dir=snakemake.input.checkpoint,
        adapters=snakemake.params.adapters,
        task_dir=snakemake.input.task,
        questions=snakemake.params.questions,
        labels=snakemake.params.labels,
        out_csv=snakemake.output.csv,
        out_png=snakemake.output.png,
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        trust_remote_code=snakemake.params.trust_remote_code,
    )
