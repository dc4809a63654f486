"""Rule content_free_task: the content-free variant of a user's knowledge task (data.task_dirs subject_field)."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.data.content_free_task import build_content_free_task

    build_content_free_task(
        task=snakemake.wildcards.task,
        task_dir=snakemake.params.task_dir,
        out_dir=snakemake.output[0],
        mask=snakemake.params.mask,
        subject_field=snakemake.params.subject["subject_field"],
        masked_fields=snakemake.params.subject["masked_fields"],
    )
