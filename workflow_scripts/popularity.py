"""Rule popularity: how well known each built question's subject is, per relation."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.popularity import run_popularity

    run_popularity(
        relations=snakemake.params.relations, out_csv=snakemake.output[0]
    )
