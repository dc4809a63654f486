"""Rule cost: extra parameters, bytes, training time and latency of one evaluated model."""
from typing import TYPE_CHECKING

from compress_recover.io import log_to
from compress_recover.runtime import Runtime

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    from compress_recover.evaluate.cost import run_cost

    cost = snakemake.params.cost
    run_cost(
        checkpoint_dir=snakemake.input.checkpoint,
        adapter_dir=snakemake.input.get("adapter"),
        text_dir=snakemake.input.text,
        out_json=snakemake.output[0],
        labels=snakemake.params.labels,
        batch_size=cost["batch_size"],
        seq_len=cost["seq_len"],
        new_tokens=cost["new_tokens"],
        repeats=cost["repeats"],
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
    )
