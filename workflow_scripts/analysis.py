"""Rule analysis: recovery fractions, knowledge flips, McNemar tests and the verdict."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.aggregate.analysis import run_analysis

    report = snakemake.params.report
    run_analysis(
        samples=[
            (dict(cell), path)
            for cell, path in zip(
                snakemake.params.cells, snakemake.input.samples, strict=True
            )
        ],
        content_free=[
            (dict(cell), path)
            for cell, path in zip(
                snakemake.params.content_free_cells,
                snakemake.input.get("content_free", []),
                strict=True,
            )
        ],
        knowledge_tasks=snakemake.params.knowledge_tasks,
        task_dirs=list(snakemake.input.tasks),
        text_dir=snakemake.input.text,
        methods=snakemake.params.recovery["methods"],
        sides=snakemake.params.recovery["sides"],
        trained=snakemake.params.recovery["trained"],
        references=snakemake.params.recovery["references"],
        alpha=report["alpha"],
        min_recovery_fraction=report["min_recovery_fraction"],
        bootstrap_iters=report["bootstrap_iters"],
        budget=snakemake.params.budget,
        seed=snakemake.params.seed,
        report=report,
        seeds=list(snakemake.params.seeds),
        split=snakemake.params.split,
        generated_text_dirs=list(snakemake.input.get("generated", [])),
        fewshot_task_dirs=list(snakemake.input.get("fewshot", [])),
        popularity_csv=snakemake.input.popularity,
        pool_adapters=[
            (tuple(run), path)
            for run, path in zip(
                snakemake.params.pool_runs, snakemake.input.pools, strict=True
            )
        ],
        out_dir=snakemake.output[0],
    )
