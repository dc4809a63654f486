"""Rule summary: the tidy table of every evaluation with the cost columns (CSV and Parquet)."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.aggregate.summary import summarize

    summarize(
        eval_files=list(snakemake.input.evals),
        cost_files=list(snakemake.input.costs),
        base_dirs=list(snakemake.input.bases),
        steps=dict(snakemake.params.steps),
        recovery=snakemake.params.recovery,
        out_csv=snakemake.output.csv,
        out_parquet=snakemake.output.parquet,
    )
