"""Rule report: one self-contained HTML page, the verdict first."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.aggregate.figures import FIGURES
    from compress_recover.aggregate.report import run_report

    run_report(
        summary_csv=snakemake.input.summary,
        analysis_dir=snakemake.input.analysis,
        figures={name: snakemake.input[name] for name in FIGURES},
        attention_figures=list(snakemake.input.attention),
        cost_files=list(snakemake.input.costs),
        manifest_dirs=list(snakemake.input.manifests),
        levels_dir=snakemake.input.levels,
        config=snakemake.params.config,
        knowledge_tasks=snakemake.params.knowledge_tasks,
        out_html=snakemake.output[0],
    )
