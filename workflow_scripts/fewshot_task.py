"""Rule fewshot_task: a built knowledge task whose demonstrations come from its dev questions."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.fewshot_task import build_fewshot_task

    build_fewshot_task(
        task=snakemake.wildcards.task,
        task_dirs=dict(zip(snakemake.params.tasks, snakemake.input.tasks, strict=True)),
        out_dir=snakemake.output.task,
        split=snakemake.params.split,
        shots=snakemake.params.shots,
        control_dir=snakemake.output.control,
        control_shots=snakemake.params.control_shots,
        content_free_mask=snakemake.params.content_free_mask,
    )
