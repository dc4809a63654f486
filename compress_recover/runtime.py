"""Device, threads, seeds and library versions: the run-time facts every heavy step sets.

:class:`Runtime` carries them as one object: ``rules/common.smk`` builds it once from
config.yaml (device, dtype, seed, trust_remote_code) and passes it to every heavy rule
as its ``runtime`` param; the job's script adds the threads Snakemake gave the job, and
the job starts with one call, :meth:`Runtime.start`.

``dtype: auto`` is resolved there, once per job, on the node that runs it
(:func:`resolve_dtype`): bfloat16 where the hardware computes it natively, float32
elsewhere. The stages that write shared checkpoints (download, compress) keep float32
under ``auto`` (``start(storage=True)``), so a checkpoint never depends on the node that
wrote it; training, scoring, cost and the teacher/generated text compute in the resolved
precision, and every manifest they write records it as ``dtype``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

TRACKED_LIBRARIES = (
    "torch", "transformers", "gptqmodel", "optimum", "peft", "lm_eval", "accelerate",
    "datasets", "gguf", "safetensors", "snakemake", "compress-recover",
)


DTYPES = ("float32", "bfloat16", "float16")
DTYPE_CHOICES = ("auto", *DTYPES)


@dataclass(frozen=True)
class Runtime:
    """Where and how a job runs.

    ``threads`` is not part of the rules' ``runtime`` param: Snakemake reruns a job whose
    params changed, and the thread count changes with ``--cores`` and the executor, not
    with the experiment. The script adds it (:meth:`from_params`).
    """

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"  # auto | float32 | bfloat16 | float16
    seed: int = 0
    trust_remote_code: bool = False
    threads: int = 1

    def __post_init__(self):
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype: {self.dtype!r} is not one of {list(DTYPE_CHOICES)}")
        if int(self.threads) < 1:
            raise ValueError(f"threads: {self.threads} must be >= 1")

    @classmethod
    def from_params(cls, params: dict, *, threads: int) -> "Runtime":
        """The rules' ``runtime`` param (a dict) plus the job's thread count."""
        return cls(**params, threads=int(threads))

    def params(self) -> dict:
        """The fields that go into a rule's ``runtime`` param (all but ``threads``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "threads"}

    def start(self, *, storage: bool = False) -> "Runtime":
        """Set threads and seeds; return a copy whose ``device`` (``auto`` -> cuda|cpu) and
        ``dtype`` (``auto`` -> bfloat16|float32, :func:`resolve_dtype`) are resolved.
        ``storage``: the job writes a checkpoint later jobs share (download, compress):
        ``auto`` keeps float32 there."""
        configure_threads(self.threads)
        seed_everything(self.seed)
        device = resolve_device(self.device)
        dtype = "float32" if storage and self.dtype == "auto" else resolve_dtype(self.dtype, device)
        return dataclasses.replace(self, device=device, dtype=dtype)


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


def cpu_bf16_native(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 matrix products natively: x86 with AMX
    (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``), or Arm with the BF16 extension
    (``bf16`` among the features), read from /proc/cpuinfo. Elsewhere (no /proc/cpuinfo,
    e.g. macOS) False: torch's own capability string ("AVX512", "AVX2") does not tell
    AMX apart, and bfloat16 emulated in float32 is slower than float32."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


def cuda_bf16_native(device: str) -> bool:
    """Whether the CUDA device computes bfloat16 natively (Ampere or later)."""
    import torch

    if not torch.cuda.is_available():
        return False
    with torch.cuda.device(torch.device(device)):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def bf16_native(device: str) -> bool:
    """Whether ``device`` (resolved: cpu, cuda, cuda:N) computes bfloat16 natively."""
    if str(device).startswith("cuda"):
        return cuda_bf16_native(device)
    if str(device) == "cpu":
        return cpu_bf16_native()
    return False


def resolve_dtype(requested: str, device: str) -> str:
    """``auto``: bfloat16 where ``device`` computes it natively (:func:`bf16_native`), else
    float32; an explicit dtype is kept."""
    if requested not in DTYPE_CHOICES:
        raise ValueError(f"dtype: {requested!r} is not one of {list(DTYPE_CHOICES)}")
    if requested != "auto":
        return requested
    return "bfloat16" if bf16_native(device) else "float32"


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

    if name not in DTYPES:  # "auto" must be resolved first (Runtime.start)
        raise ValueError(f"dtype: {name!r} is not one of {list(DTYPES)}" +
                         (" (auto is resolved by Runtime.start)" if name == "auto" else ""))
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def matmul_gflops(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """This machine's matmul speed in ``dtype`` (fp32 by default) with torch's current threads
    (best of ``repeats`` ``size`` x ``size`` products): printed beside every absolute time,
    so readers can scale it."""
    import time

    import torch

    a, b = torch.randn(size, size, dtype=torch_dtype(dtype)), torch.randn(size, size, dtype=torch_dtype(dtype))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
