"""The GPU check (``make gpu-check``): on a machine with CUDA, the tests marked ``cuda``
(``tests/test_cuda.py``) and the tiny workflow (``tinyflow.tiny_config`` with
``device: cuda``), each stage's time printed, against an 8-minute budget.

Without CUDA it runs nothing, says it was skipped and why, and exits 0 (1 with
``--require-cuda``): a skip is never reported as a pass. With CUDA it exits 1 when the
tests or the workflow fail or the whole check takes longer than ``--budget-min``.

    python tests/gpu_check.py [--workdir DIR] [--cores all] [--budget-min 8] [--require-cuda]

The workflow runs in ``--workdir`` (default: a new temporary folder, kept and printed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for folder in (TESTS, REPO / "benchmarks"):  # tinyflow and conftest; stage_times
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def cuda_missing() -> str | None:
    """Why CUDA cannot run here, or None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
                "(torch.cuda.is_available() is false)")
    return None


def gpu_config(model_dir: Path) -> dict:
    """The tests' tiny workflow, every job on CUDA."""
    from tinyflow import tiny_config

    return {**tiny_config(model_dir), "device": "cuda"}


def prepare_workflow(workdir: Path) -> dict:
    """The tiny random Llama and the CUDA config (``config.yaml``) in ``workdir``; returns the config."""
    from conftest import build_tiny_llama
    from tinyflow import write_config

    workdir.mkdir(parents=True, exist_ok=True)
    config = gpu_config(build_tiny_llama(workdir / "tiny-model"))
    write_config(workdir, config)
    return config


def run_cuda_tests(timeout: int) -> int:
    """pytest on the tests marked ``cuda``, output shown; its exit status, 1 if one was skipped
    (here, with CUDA present, a skip would pass for a check that did not run)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "-rs", str(TESTS)]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, timeout=timeout, capture_output=True, text=True)
    print(proc.stdout[-6000:] + proc.stderr[-3000:], flush=True)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode == 0 and "skipped" in last:
        print("a cuda test was skipped although CUDA is present: counted as a failure")
        return 1
    return proc.returncode


def run_workflow(workdir: Path, config: dict, cores: str, timeout: int) -> int:
    """The tiny workflow through the Snakemake CLI; its log tail on failure; its exit status."""
    from tinyflow import snakemake

    proc = snakemake(workdir, config, cores=cores, timeout=timeout)
    if proc.returncode:
        print(proc.stdout[-3000:] + proc.stderr[-6000:])
    return proc.returncode


def describe_gpu() -> str:
    import torch

    from compress_recover.runtime import library_versions

    versions = library_versions()
    return (f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} device(s)); torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, gptqmodel {versions['gptqmodel']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cores", default="all")
    parser.add_argument("--budget-min", type=float, default=8.0)
    parser.add_argument("--require-cuda", action="store_true", help="exit 1 (not 0) when CUDA is missing")
    args = parser.parse_args(argv)

    missing = cuda_missing()
    if missing:
        print(f"GPU check SKIPPED: {missing}. Nothing ran on a GPU; this is not a pass.")
        return 1 if args.require_cuda else 0
    start = time.perf_counter()
    print(f"GPU check on {describe_gpu()}", flush=True)
    budget = int(args.budget_min * 60)
    tests_rc = run_cuda_tests(timeout=budget)
    tests_s = time.perf_counter() - start

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    flow_start = time.perf_counter()
    config = prepare_workflow(workdir)
    print(f"tiny workflow on device: {config['device']} in {workdir}", flush=True)
    flow_rc = run_workflow(workdir, config, args.cores, timeout=max(60, budget - int(tests_s)))
    flow_s = time.perf_counter() - flow_start

    import stage_times

    stages = stage_times.job_seconds(workdir)
    if stages:
        stage_times.print_stages(stages)
        stage_times.print_floors(workdir)
    total = time.perf_counter() - start
    met = total <= budget
    print(f"cuda tests: {'passed' if tests_rc == 0 else f'FAILED (pytest exit {tests_rc})'} in {tests_s:.0f} s; "
          f"tiny workflow: {'done' if flow_rc == 0 else f'FAILED (snakemake exit {flow_rc})'} in {flow_s:.0f} s; "
          f"total {total / 60:.1f} min, budget {args.budget_min:g} min: {'met' if met else 'NOT met'}")
    return 0 if tests_rc == 0 and flow_rc == 0 and met else 1


if __name__ == "__main__":
    sys.exit(main())
