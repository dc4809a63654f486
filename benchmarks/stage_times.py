"""Benchmark: where a finished run's time went, per stage, against the demo's goal and each stage's floor.

Sums the per-job timings Snakemake wrote (``benchmark:`` files, ``logs/**/*.benchmark.tsv``)
per stage (the rule that wrote them), reads the run's wall time from its Snakemake log, and
prints both with this machine's measured matmul GFLOPS (2048 x 2048 fp32, --threads
threads) so that the times can be scaled to another machine. Job time per stage adds jobs
that ran side by side, so it exceeds the wall time when --cores > 1.

Then each stage against its **floor**: the arithmetic its jobs cannot avoid, tokens x FLOPs
per token, divided by this machine's matmul rate measured at each job's device, threads
and dtype (from its manifests), and the ratio job time / floor, so the next bottleneck is
visible. N is the model's parameter count (the download's ``manifest.json``), T a
recovery's trainable parameters (its adapter's manifest). Per stage:

- compress: calibration tokens x 2 passes x 2N (one pass captures each layer's inputs, one
  passes the compressed layer's outputs on; the solver's own work is not counted);
- recover: training tokens (steps x batch x seq_len) x (4N + 2T): a forward (2N) and a
  backward to the activations (2N) through every frozen weight, weight gradients for the
  trainable ones only (2T; T = N gives the usual 6N of full fine-tuning); cached teacher
  logits cost nothing here;
- evaluate: scored tokens x 2N x passes: every question's context once and each choice's
  tokens (what shared-prefix scoring must run), every perplexity document once; passes =
  the number of prompts forced per question when a prompt-pool ablation ran (the chosen
  prompt's pass is one of them), else 1;
- teacher_logits / generated_text: tokens run (generated) x 2N.

Attention's quadratic term and the prompt tokens are left out, so each is a lower bound.
Download, cost (a timing run) and attention (an analysis) get no floor. An evaluate job
whose tasks were reused from an earlier run shows a low ratio: read it after a cold run.

    python benchmarks/stage_times.py [--workdir .] [--threads 2] [--goal-min 20] [--estimate logs/estimate.json]

When the estimate made before the run (``make estimate``: ``python -m compress_recover.estimate``)
is there, each stage's predicted job time is set against the measured one, job by job (the
estimate names each job's benchmark file), with the error in %, and the predicted wall time
against the run's.

Run it after a cold ``snakemake --cores all`` (``make clean-results demo``): a rerun that
did nothing leaves the last run's timings, and its own log has no jobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
CALIBRATION_PASSES = 2  # one-shot compression: capture each layer's inputs, pass its compressed outputs on
FORCED_SUFFIX = "_loglikelihoods"  # compress_recover.prompt_choice.forced_field: a prompt-pool ablation's scores
NO_FLOOR = {"download": "reads and converts files", "cost": "a timing run: its work is what it measures",
            "attention": "an analysis of a few inputs",
            "compute": "a training-free remedy: eigendecompositions and SVDs of each target layer, or nothing"}


def stage_of(tsv: Path) -> str:
    """``logs/.../compress.benchmark.tsv`` -> ``compress`` (the rule or rule family)."""
    return tsv.name.removesuffix(".benchmark.tsv")


def tsv_rows(tsv: Path) -> list[dict]:
    """The rows of one job's Snakemake benchmark file."""
    with tsv.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def tsv_seconds(tsv: Path) -> list[float]:
    """The seconds of each row of one job's Snakemake benchmark file."""
    return [float(r["s"]) for r in tsv_rows(tsv)]


def benchmark_files(workdir: Path) -> list[tuple[str, Path, list[float]]]:
    """Every job's timing file: (stage, path, seconds of each of its rows)."""
    return [(stage_of(tsv), tsv, tsv_seconds(tsv)) for tsv in sorted((workdir / "logs").rglob("*.benchmark.tsv"))]


def stage_peak_mb(workdir: Path) -> dict[str, float]:
    """Per stage, the largest resident memory (Snakemake's ``max_rss``, MB) of any of its jobs:
    what a machine, or a Slurm job's ``mem_mb``, must hold for that stage. Rows Snakemake could
    not measure ("-", a job too short to sample) are left out."""
    peaks: dict[str, float] = {}
    for tsv in sorted((workdir / "logs").rglob("*.benchmark.tsv")):
        stage = stage_of(tsv)
        for row in tsv_rows(tsv):
            try:
                rss = float(row.get("max_rss", "-"))
            except ValueError:
                continue
            peaks[stage] = max(peaks.get(stage, 0.0), rss)
    return peaks


def job_seconds(workdir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for stage, _, seconds in benchmark_files(workdir):
        out[stage].extend(seconds)
    return out


def last_run_wall_s(workdir: Path) -> tuple[float | None, Path | None]:
    """Seconds from the first to the last job time stamp of the newest Snakemake log that ran jobs."""
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        stamps = [datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
                  for line in log.read_text().splitlines() if (m := STAMP.match(line.strip()))]
        if len(stamps) >= 2:
            return (stamps[-1] - stamps[0]).total_seconds(), log
    return None, None


# ---- floors ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Floor:
    """The arithmetic one job cannot avoid: ``tokens`` x ``flops_per_token``, run on ``device``
    with ``threads`` threads in ``dtype``."""

    tokens: int
    flops_per_token: float
    device: str = "cpu"
    threads: int = 1
    dtype: str = "float32"

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _where(manifest: dict) -> dict:
    """The device, threads and dtype a job recorded (float32 where it recorded none)."""
    dtype = manifest.get("dtype")
    return {"device": str(manifest.get("device", "cpu")), "threads": int(manifest.get("threads", 1)),
            "dtype": dtype if dtype in ("float32", "bfloat16", "float16") else "float32"}


def parameters(workdir: Path, model: str) -> int | None:
    """N: the model's parameter count, from its download manifest."""
    manifest = _json(workdir / "results" / model / "none" / "checkpoint" / "manifest.json")
    return int(manifest["parameters"]) if manifest and manifest.get("parameters") else None


def tokenizer_counter(checkpoint: Path) -> Callable[[list[str]], list[int]]:
    """Token counts of texts with the checkpoint's own tokenizer (no special tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    return lambda texts: [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] \
        if texts else []


def scored_tokens(samples: list[Path], count: Callable[[list[str]], list[int]]) -> int:
    """Token passes an evaluation cannot avoid (see the module docstring), from lm-eval's samples."""
    units: list[tuple[list[str], int]] = []  # (texts run once, passes)
    for path in samples:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            texts, contexts = [], set()
            for arg in row.get("arguments", []):
                if len(arg) == 2:  # (context, continuation): the context once per question
                    if arg[0] not in contexts:
                        contexts.add(arg[0])
                        texts.append(arg[0])
                    texts.append(arg[1])
                elif len(arg) == 1:  # a rolling perplexity document
                    texts.append(arg[0])
            forced = [v for k, v in row.items() if k.endswith(FORCED_SUFFIX) and isinstance(v, list)]
            units.append((texts, max((len(v) for v in forced), default=1) or 1))
    counts = iter(count([t for texts, _ in units for t in texts]))
    return sum(passes * sum(next(counts) for _ in texts) for texts, passes in units)


def job_floor(workdir: Path, stage: str, tsv: Path, count: Callable | None = None) -> Floor | None:
    """The floor of the job that wrote ``tsv`` (see the module docstring), or None where its
    stage has none or its manifests are missing. ``count``: texts -> token counts (default:
    the checkpoint's tokenizer)."""
    parts = tsv.relative_to(workdir / "logs").parts
    model = parts[0]
    n = parameters(workdir, model)
    if n is None or stage in NO_FLOOR:
        return None
    results = workdir / "results" / model
    if stage == "compress":
        manifest = _json(results / parts[1] / "checkpoint" / "manifest.json")
        tokens = int(((manifest or {}).get("calibration") or {}).get("tokens") or 0)
        return Floor(tokens, CALIBRATION_PASSES * 2 * n, **_where(manifest)) if tokens else None
    if stage == "recover":
        manifest = _json(results / parts[1] / parts[2] / "adapter" / "manifest.json")
        if not manifest or manifest.get("status", "ok") != "ok":
            return None
        trainable = int(manifest.get("trainable_parameters", 0))
        return Floor(int(manifest["budget"]["tokens"]), 4 * n + 2 * trainable, **_where(manifest))
    if stage == "evaluate":
        eval_dir = results / parts[1] / parts[2] / "eval"
        samples = sorted(eval_dir.glob("*.samples.jsonl"))
        labels = [(_json(p.with_name(p.name.removesuffix(".samples.jsonl") + ".json")) or {}).get("compress_recover")
                  for p in samples]
        labels = [lab for lab in labels if lab and lab.get("status", "ok") == "ok"]
        if not labels:
            return None
        tokens = scored_tokens(samples, count or tokenizer_counter(results / parts[1] / "checkpoint"))
        return Floor(tokens, 2 * n, **_where(labels[0])) if tokens else None
    if stage.startswith("teacher_logits"):
        text = stage.removeprefix("teacher_logits_")
        manifest = _json(results / "none" / ("teacher_logits" if text == "corpus" else f"teacher_logits_{text}")
                         / "manifest.json")
        return Floor(int(manifest["tokens"]), 2 * n, **_where(manifest)) if manifest else None
    if stage == "generated_text":
        manifest = _json(results / "none" / "generated_text" / "manifest.json")
        return Floor(int(manifest["tokens_generated"]), 2 * n, **_where(manifest)) if manifest else None
    return None


def matmul_rate(device: str = "cpu", threads: int = 1, dtype: str = "float32", size: int = 2048,
                repeats: int = 5) -> float:
    """GFLOPS of a ``size``² matmul on ``device`` in ``dtype`` with ``threads`` CPU threads (best of ``repeats``)."""
    import torch

    from compress_recover.runtime import configure_threads, torch_dtype

    configure_threads(threads)
    kind = torch_dtype(dtype)
    a = torch.randn(size, size, device=device).to(kind)
    b = torch.randn(size, size, device=device).to(kind)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    a @ b  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def stage_floors(workdir: Path, count: Callable | None = None,
                 rate: Callable[[str, int, str], float] = matmul_rate) -> dict[str, dict]:
    """Per stage: jobs, jobs with a floor, their job time and their floor in seconds (each job's
    FLOPs / ``rate(device, threads, dtype)`` GFLOPS, measured once per distinct triple), and
    ``rates``: the triples measured."""
    rates: dict[tuple, float] = {}
    out: dict[str, dict] = {}
    for stage, tsv, seconds in benchmark_files(workdir):
        row = out.setdefault(stage, {"jobs": 0, "floored": 0, "time_s": 0.0, "floor_s": 0.0, "tokens": 0})
        row["jobs"] += len(seconds)
        floor = job_floor(workdir, stage, tsv, count) if seconds else None
        if floor is None:
            continue
        key = (floor.device, floor.threads, floor.dtype)
        if key not in rates:
            rates[key] = rate(*key)
        row["floored"] += len(seconds)
        row["time_s"] += sum(seconds)
        row["floor_s"] += len(seconds) * floor.flops / (rates[key] * 1e9)
        row["tokens"] += floor.tokens
    return {"stages": out, "rates": rates}


def print_floors(workdir: Path, count: Callable | None = None, rate: Callable = matmul_rate) -> dict:
    found = stage_floors(workdir, count, rate)
    measured = ", ".join(f"{d} {dt} {t} thread{'s' * (t > 1)} {g:.0f}" for (d, t, dt), g in sorted(found["rates"].items()))
    print(f"floor per stage: tokens x FLOPs per token / matmul GFLOPS at each job's device, threads and dtype "
          f"({measured or 'none measured'})")
    print(f"{'stage':<24}{'jobs':>6}{'floored':>9}{'job time s':>12}{'floor s':>10}{'time/floor':>12}{'tokens':>14}")
    rows = sorted(found["stages"].items(), key=lambda kv: -kv[1]["time_s"])
    for stage, row in rows:
        if not row["floored"]:
            continue
        ratio = row["time_s"] / row["floor_s"] if row["floor_s"] else float("inf")
        print(f"{stage:<24}{row['jobs']:>6}{row['floored']:>9}{row['time_s']:>12.1f}{row['floor_s']:>10.3g}"
              f"{ratio:>11.1f}x{row['tokens']:>14,}")
    for stage, row in rows:
        if not row["floored"]:
            print(f"{stage:<24}{row['jobs']:>6}  no floor: {NO_FLOOR.get(stage, 'no manifest to count its tokens')}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--goal-min", type=float, default=20.0)
    parser.add_argument("--estimate", type=Path, default=None,
                        help="the estimate made before the run (default: <workdir>/logs/estimate.json)")
    args = parser.parse_args()

    from compress_recover.runtime import configure_threads, matmul_gflops

    stages = job_seconds(args.workdir)
    if not stages:
        raise SystemExit(f"{args.workdir / 'logs'}: no *.benchmark.tsv; run the pipeline first (make demo)")
    configure_threads(args.threads)
    gflops = matmul_gflops()
    print(f"machine: {gflops:.0f} GFLOPS (2048x2048 fp32 matmul, {args.threads} threads)")
    print_stages(stages, stage_peak_mb(args.workdir))
    wall, log = last_run_wall_s(args.workdir)
    if wall is None:
        print("wall time: no Snakemake log with jobs under .snakemake/log")
    else:
        goal = args.goal_min * 60
        print(f"wall time of the last run ({log.name}): {wall / 60:.1f} min; goal {args.goal_min:g} min: "
              f"ratio {wall / goal:.2f} ({'met' if wall <= goal else 'NOT met'})")
    print_floors(args.workdir)
    estimate = args.estimate or args.workdir / "logs" / "estimate.json"
    if estimate.is_file():
        print_predicted(args.workdir, estimate, wall)
    else:
        print(f"predicted vs measured: no estimate at {estimate} (make estimate before the run writes one)")


# ---- predicted (compress_recover.estimate, before the run) against measured ---------------------

def predicted_vs_measured(workdir: Path, estimate: dict) -> dict[str, dict]:
    """Per stage of the estimate: its jobs that have a benchmark file, their predicted seconds
    and, for those whose file exists now, the measured seconds (the file's rows summed) beside
    the prediction of the same jobs; ``error`` = predicted / measured - 1."""
    out: dict[str, dict] = {}
    for job in estimate["jobs"]:
        if not job.get("benchmark"):
            continue
        row = out.setdefault(job["stage"], {"jobs": 0, "predicted_s": 0.0, "timed": 0, "predicted_timed_s": 0.0,
                                            "measured_s": 0.0})
        row["jobs"] += 1
        row["predicted_s"] += job["seconds"]
        tsv = workdir / job["benchmark"]
        seconds = tsv_seconds(tsv) if tsv.is_file() else []
        if seconds:
            row["timed"] += 1
            row["predicted_timed_s"] += job["seconds"]
            row["measured_s"] += sum(seconds)
    for row in out.values():
        row["error"] = row["predicted_timed_s"] / row["measured_s"] - 1 if row["measured_s"] else None
    return out


def print_predicted(workdir: Path, path: Path, wall_s: float | None) -> dict:
    estimate = json.loads(path.read_text())
    probe = estimate.get("probe", {})
    rates = ", ".join(f"{r['dtype']} {r['threads']}t {r['gflops']:.0f}" for r in probe.get("gflops", []))
    print(f"predicted vs measured: {path} (commit {estimate.get('commit')}, made {estimate.get('created')}, "
          f"dtype {estimate.get('dtype')}, {estimate.get('cores')} cores; its probe: {rates} GFLOPS)")
    rows = predicted_vs_measured(workdir, estimate)
    print(f"{'stage':<24}{'jobs':>6}{'timed':>7}{'predicted s':>13}{'measured s':>12}{'error':>9}")
    timed_p = timed_m = 0.0
    for stage, row in sorted(rows.items(), key=lambda kv: -kv[1]["predicted_s"]):
        error = f"{row['error']:+.0%}" if row["error"] is not None else "-"
        print(f"{stage:<24}{row['jobs']:>6}{row['timed']:>7}{row['predicted_timed_s']:>13.0f}{row['measured_s']:>12.0f}"
              f"{error:>9}")
        timed_p += row["predicted_timed_s"]
        timed_m += row["measured_s"]
    if timed_m:
        print(f"{'all timed':<24}{sum(r['jobs'] for r in rows.values()):>6}{sum(r['timed'] for r in rows.values()):>7}"
              f"{timed_p:>13.0f}{timed_m:>12.0f}{timed_p / timed_m - 1:>+9.0%}")
    if wall_s:
        print(f"wall time: predicted {estimate['wall_min']:.1f} min, measured {wall_s / 60:.1f} min "
              f"({estimate['wall_min'] * 60 / wall_s - 1:+.0%}); the estimate covers the jobs that were to run when "
              "it was made, the measured wall the newest run")
    return rows


def print_stages(stages: dict[str, list[float]], peaks: dict[str, float] | None = None) -> None:
    peaks = peaks or {}
    print(f"{'stage':<12}{'jobs':>6}{'job time s':>12}{'max job s':>11}{'peak MB':>10}")
    for stage, times in sorted(stages.items(), key=lambda kv: -sum(kv[1])):
        peak = f"{peaks[stage]:.0f}" if stage in peaks else "-"
        print(f"{stage:<12}{len(times):>6}{sum(times):>12.1f}{max(times):>11.1f}{peak:>10}")
    print(f"{'all timed':<12}{sum(map(len, stages.values())):>6}{sum(map(sum, stages.values())):>12.1f}")


if __name__ == "__main__":
    main()
