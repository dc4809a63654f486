"""Rule levels: every compression against its model question by question, and a GGUF's two paths."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.aggregate.levels import run_levels

    run_levels(
        cells=snakemake.params.cells,
        manifests={
            (c["model"], c["compression"]): f"{c['checkpoint']}/manifest.json"
            for c in snakemake.params.cells
        },
        llamacpp_results={(m, c): files for m, c, files in snakemake.params.llamacpp},
        out_dir=snakemake.output[0],
        split=snakemake.params.split,
    )
