"""Rule download: materialise a config.yaml model entry as a safetensors checkpoint."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.download.download import download_model

    download_model(
        name=snakemake.wildcards.model,
        spec=snakemake.params.spec,
        out_dir=snakemake.output[0],
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
