"""Rule figures: the report's pictures as PNG files."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.aggregate.figures import FIGURES, run_figures

    run_figures(
        summary_csv=snakemake.input.summary,
        analysis_dir=snakemake.input.analysis,
        knowledge_tasks=snakemake.params.knowledge_tasks,
        out_files={name: snakemake.output[name] for name in FIGURES},
    )
