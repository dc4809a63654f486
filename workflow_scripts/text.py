"""Rule text: leak-filtered English text for calibration and recovery training."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.text import build_text

    text = snakemake.params.text
    build_text(
        corpus=text["corpus"],
        path=text["path"],
        task_dirs=list(snakemake.input.tasks),
        out_dir=snakemake.output[0],
        heldout_fraction=text["heldout_fraction"],
        min_chars=text["min_chars"],
        seed=snakemake.params.seed,
    )
