"""Rule teacher_logits: the uncompressed model's top-k logits on the training text, once per model."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.recover.teacher_logits import teacher_logits

    teacher_logits(
        teacher_dir=snakemake.input.checkpoint,
        text_dir=snakemake.input.text,
        out_dir=snakemake.output[0],
        seq_len=snakemake.params.seq_len,
        top_k=snakemake.params.top_k,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
