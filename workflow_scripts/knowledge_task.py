"""Rule knowledge_task: one multiple-choice lm-eval task built from packaged facts."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.knowledge_task import build_knowledge_task

    build_knowledge_task(
        task=snakemake.wildcards.task,
        out_dir=snakemake.output[0],
        num_choices=snakemake.params.num_choices,
        seed=snakemake.params.seed,
        max_questions=snakemake.params.max_questions,
        max_answer_presence=snakemake.params.max_answer_presence,
        content_free_mask=snakemake.params.content_free_mask,
    )
