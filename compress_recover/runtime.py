"""Device, threads, seeds and library versions: the run-time facts every heavy step sets."""

from __future__ import annotations

import os
import random
from importlib import metadata

TRACKED_LIBRARIES = (
    "torch", "transformers", "gptqmodel", "optimum", "peft", "lm_eval", "accelerate",
    "datasets", "gguf", "safetensors", "snakemake", "compress-recover",
)


def configure_threads(threads: int) -> None:
    """Make torch and the libraries below it use ``threads`` cores and no more.

    Snakemake gives each job a thread count; honouring it keeps ``--cores all`` from
    oversubscribing. GPTQModel spawns its own CPU workers unless told otherwise.
    """
    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    # GPTQModel's CPU pool needs at least two workers (its model loader asks for two).
    os.environ["GPTQMODEL_CPU_WORKERS"] = str(max(2, threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def resolve_device(requested: str = "auto") -> str:
    """``auto`` picks CUDA when present, else CPU; an explicit device must exist."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config 'device: {requested}' asks for CUDA, but torch sees no CUDA device")
    return requested


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
