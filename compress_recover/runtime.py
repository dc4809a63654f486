"""Device, threads, seeds and library versions: the run-time facts every heavy step sets.

:class:`Runtime` carries them as one object: ``rules/common.smk`` builds it once from
config.yaml (device, dtype, seed, trust_remote_code) and passes it to every heavy rule
as its ``runtime`` param; the job's script adds the threads Snakemake gave the job, and
the job starts with one call, :meth:`Runtime.start`.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass
from importlib import metadata

TRACKED_LIBRARIES = (
    "torch", "transformers", "gptqmodel", "optimum", "peft", "lm_eval", "accelerate",
    "datasets", "gguf", "safetensors", "snakemake", "compress-recover",
)


DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Runtime:
    """Where and how a job runs.

    ``threads`` is not part of the rules' ``runtime`` param: Snakemake reruns a job whose
    params changed, and the thread count changes with ``--cores`` and the executor, not
    with the experiment. The script adds it (:meth:`from_params`).
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"
    seed: int = 0
    trust_remote_code: bool = False
    threads: int = 1

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: {self.dtype!r} is not one of {list(DTYPES)}")
        if int(self.threads) < 1:
            raise ValueError(f"threads: {self.threads} must be >= 1")

    @classmethod
    def from_params(cls, params: dict, *, threads: int) -> "Runtime":
        """The rules' ``runtime`` param (a dict) plus the job's thread count."""
        return cls(**params, threads=int(threads))

    def params(self) -> dict:
        """The fields that go into a rule's ``runtime`` param (all but ``threads``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "threads"}

    def start(self) -> "Runtime":
        """Set threads and seeds; return a copy whose ``device`` is resolved (``auto`` -> cuda|cpu)."""
        configure_threads(self.threads)
        seed_everything(self.seed)
        return dataclasses.replace(self, device=resolve_device(self.device))


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


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul speed with torch's current threads (best of ``repeats``
    ``size`` x ``size`` products): printed beside every absolute time, so readers can scale it."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
