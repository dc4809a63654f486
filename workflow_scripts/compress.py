"""Rule compress_<method>: compress the base checkpoint with one registered method."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.compress.compress import run_compression

    run_compression(
        model_dir=snakemake.input.checkpoint,
        out_dir=snakemake.output[0],
        method_config=snakemake.params.method_config,
        key=snakemake.params.key,
        text_dir=snakemake.input.text,
        calibration_samples=snakemake.params.calibration["samples"],
        calibration_seq_len=snakemake.params.calibration["seq_len"],
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
