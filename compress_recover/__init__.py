"""compress_recover: is a compressed language model's knowledge forgotten or displaced?

The package holds the logic of the Snakemake workflow beside it (download, data,
compress, recover, evaluate, aggregate). Modules import torch and friends lazily, so
``compress_recover.config`` stays cheap enough for Snakemake's DAG building.
"""

__version__ = "0.1.0"
