"""Rule perplexity_task: a local lm-eval perplexity task over the held-out text."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.perplexity_task import build_perplexity_task

    build_perplexity_task(text_dir=snakemake.input.text, out_dir=snakemake.output[0])
