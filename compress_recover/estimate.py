"""An estimate before the run: predicted minutes per stage for this grid on this machine.

    python -m compress_recover.estimate [--workdir .] [--configfile F] [--cores N] [--out logs/estimate.json]

(``make estimate``). Three steps, none of which runs a job:

1. **The jobs that would run**: ``snakemake --dry-run`` in the workdir, parsed (each job's
   rule, wildcards, threads as Snakemake caps them at ``--cores``, inputs and outputs). A
   partly finished run therefore estimates only what remains (an evaluate job that will reuse
   some tasks' scores, :mod:`compress_recover.evaluate.reuse`, is predicted whole).
2. **A short probe of this machine** (about 10-30 s): the 2048² matmul rate in float32 and
   bfloat16 at every thread count the jobs use (:func:`compress_recover.runtime.matmul_gflops`,
   as ``benchmarks/stage_times.py`` measures it), the start-up of a job (a fresh Python
   importing torch, transformers, peft and lm-eval's HF model), and the dtype the run will
   use (``dtype``/``device`` of the config, ``auto`` resolved as each job resolves it).
3. **Per job**, from job times measured on a reference machine (each constant written once
   below, with where it was measured)::

       seconds = start-up                                  (probed here)
               + ratio[stage] x floor FLOPs / rate          (stages with a floor)
               + rest[stage] x reference rate / rate        (the rest of the reference's job)

   The floors are ``benchmarks/stage_times.py``'s: compress, calibration tokens x 2 passes x
   2N; recover, steps x batch x seq_len x (4N + 2T); evaluate, scored tokens x 2N x passes
   (each question's context once and every choice, the content-free variants too; x the pool
   size for a prompt pool's ablation); teacher logits and generated text, tokens x 2N. Before a
   run no token is counted, so the tokens come from the config and per-task constants
   measured on the built tasks with the default model's tokenizer (:data:`TASKS`). N is the
   download manifest's, the embedded default's, or a local checkpoint's config.json's; a hub
   model not yet downloaded has none, and its floors are left out (said in a note).
   ``ratio`` is the reference job's time beyond start-up per second of its floor; the stages
   with no floor (download, cost, attention, compute, data, aggregate) take the reference
   job's time beyond start-up as ``rest``, scaled by the rates.

   ``rate`` is a job's rate on a machine, from its probed matmul rates (:func:`job_rate`):
   the 1-thread rate times the gain of the job's threads, at most :data:`PARALLEL_GAIN_MAX`
   (a 135M model's jobs gain far less from a second thread than a 2048² matmul does). In
   bfloat16 it is the float32 rate times the end-to-end gain bfloat16 gave this model's jobs
   (:data:`BF16_GAIN`), at most the bfloat16 matmul rate: a 2048² matmul gains 6x on an AMX
   machine, a training step of this model 1.4x.

The **wall time** is a list-scheduling simulation of the job graph (dependencies from the
dry run's inputs and outputs, each job holding its threads of ``--cores`` for its predicted
seconds; a ready job with the longest path to the end starts first). Snakemake's own ILP
scheduler also fills every free core with ready jobs, but need not pick the longest path
first, so the simulation is the optimistic side of it; the JSON also records the two
bounds, Σ(seconds x threads) / cores and the critical path.

The result is printed as a table per stage and written as JSON (``--out``, default
``logs/estimate.json``, never under results/), which ``benchmarks/stage_times.py`` reads
after the run to print predicted against measured per stage.

Module level imports only the standard library; torch is imported by the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# ---- the reference measurements --------------------------------------------------------------
#
# REFERENCE: issue 37's table, a cold default-grid run (the 71-job grid with content-free
# scoring) on a 2-core AMD machine, float32, whose 2048² matmul on 2 threads ran at 199
# GFLOPS fp32 (836 bf16). Its job times: evaluate 72-103 s per zero-shot model, 283-292 s per
# model of a prompt pool (4-prompt ablation), 245-260 s per 3-shot model; recover 124-149 s
# per 60-step training; cost ~23 s; compute 145 s in all; attention ~25-30 s each; download
# 25 s. A compression's or training-free recovery's own job time there is its method
# config's ``reference_job_s`` (compress_recover.registry.MethodConfig).
REF_GFLOPS_FP32 = 199.0  # 2 threads
# Its 1-thread rate was not recorded. Its 1-thread evaluate jobs sustained 2N x 1.56 ms^-1 =
# 172 GFLOPS of model arithmetic (below), more than half of 199: its two vCPUs share one
# core, so its 1-thread matmul rate is taken as its 2-thread rate.
REF_GFLOPS_FP32_1T = 199.0
# Start-up of a job (a fresh Python importing torch, transformers, peft, lm-eval's HF model):
# not measured on the reference; this probe on the 2-core Intel Xeon at b0b3f53 measured
# 8.0-8.6 s while other test runs shared the machine (quiet, likely less). Only the difference
# between it and a machine's probed start-up enters a prediction.
REF_STARTUP_S = 8.0

# The default model, SmolLM2-135M-Instruct: its download manifest's parameter count (a
# finished default demo run of 2026-12-06 on this Intel Xeon, issue 35's;
# results/smollm2-135m/none/checkpoint/manifest.json). Equal to its shape's count.
EMBEDDED_PARAMETERS = 134_515_008

# Built knowledge tasks at data.max_questions: null, with the default model's tokenizer,
# counted as stage_times.scored_tokens counts them (each context once plus every choice) from
# the samples of the same demo run (its 17 evaluate jobs; every zero-shot model the same):
# task -> (questions, scored tokens zero-shot, scored tokens of its content-free variant).
TASKS = {
    "capitals": (243, 6097, 5827),
    "city_country": (237, 4896, 4470),
    "currencies": (211, 4817, 4625),
    "element_name": (118, 2658, 2626),
    "element_symbol": (118, 2525, 2370),
}
# A task not in TASKS (a custom or lm-eval task): the pooled mean of the above per question
# (20,993 tokens / 927 questions), its question count unknown before it is built.
TOKENS_PER_QUESTION = 22.6
# Each demonstration adds this many tokens to a context (the 3-shot runs of the same demo:
# 73,876 tokens against 20,993 zero-shot over 927 questions x 3 shots; the same for the
# content-free variants). Since issue 37 the demonstrations are the first k allowed of one
# seeded order per task (compress_recover.evaluate.fewshot_sampler), so most questions of a
# task share one demonstration prefix, which shared-prefix scoring runs once per batch of
# contexts: the demonstrations are run once per batch (questions / FEWSHOT_BATCH) and once
# per re-drawn prefix (FEWSHOT_PREFIXES_PER_QUESTION x questions: 38 distinct prefixes over
# the 927 questions at k = 3, seed 0, measured by benchmarks/fewshot_prefix.py at issue 37).
TOKENS_PER_DEMONSTRATION = 19.0
FEWSHOT_BATCH = 32  # evaluation.batch_size's default: contexts scored together
FEWSHOT_PREFIXES_PER_QUESTION = 38 / 927
# The held-out perplexity task (gensim's Lee corpus, data.text.heldout_fraction 0.1): 24
# documents, 5,093 tokens (the same demo).
PERPLEXITY_TOKENS = 5093
PERPLEXITY_FRACTION = 0.1

# Evaluate on the reference: a zero-shot model (46,004 scored tokens) 87.5 s (72-103), a
# 3-shot model (151,770) 252.5 s (245-260): 1.56 ms per token above 15.7 s per job, which the
# prompt-pool models (168,737 tokens x their 4-prompt ablation counted) confirm (279 s predicted,
# 283-292 measured). Per token, 2N FLOPs at 199 GFLOPS is 1.35 ms: ratio 1.15.
EVALUATE_S_PER_TOKEN_REF = (252.5 - 87.5) / (151_770 - 46_004)
EVALUATE_FIXED_S_REF = 87.5 - 46_004 * EVALUATE_S_PER_TOKEN_REF


# How much a job of this size gains from a second thread. A 2048² matmul on this 2-core
# Intel Xeon gains 1.7x from its second thread (196 GFLOPS on 1 thread at a673f0f, ~330 on
# 2), the reference's none (its vCPUs share a core); the jobs gained far less: the same
# 60-step training took 113 s here at 56c5df1 (336 GFLOPS on 2 threads) against the
# reference's 136.5 s, (136.5 - 9) / (113 - 9) = 1.23x; the two default compressions 75-81 s
# against 81 s and 33-37 s against 37 s, cost 22.6 s against 23 s (this machine's cold run at 2026-12-06T064041
# and docs/performance.md at 56c5df1). A job's rate is therefore its 1-thread matmul rate
# times the probed gain of its threads, at most this (matmuls of width 576 parallelise badly).
PARALLEL_GAIN_MAX = 1.2


def job_rate(gflops, threads: int, dtype: str = "float32") -> float:
    """The rate a job of ``threads`` threads computes at, from matmul rates ``gflops(threads,
    dtype)``: the 1-thread rate x min(the probed gain of ``threads``, :data:`PARALLEL_GAIN_MAX`)."""
    one = gflops(1, dtype)
    return one if threads <= 1 else one * min(gflops(threads, dtype) / one, PARALLEL_GAIN_MAX)


def _ref_gflops(threads: int, dtype: str = "float32") -> float:
    return REF_GFLOPS_FP32_1T if threads <= 1 else REF_GFLOPS_FP32


REF_RATE_1T = job_rate(_ref_gflops, 1)
REF_RATE_2T = job_rate(_ref_gflops, 2)


@dataclass(frozen=True)
class Measured:
    """A job's time where it was measured: ``seconds`` in all (start-up included unless
    ``startup`` is False), for ``flops`` of floor arithmetic (0: a stage without a floor),
    on a machine whose job rate (:func:`job_rate`, float32, the job's threads) was ``rate``."""

    seconds: float
    flops: float = 0.0
    rate: float = REF_RATE_2T
    where: str = "issue 37's AMD table"
    startup: bool = True  # whether the job pays a heavy job's start-up (imports torch and the model libraries)

    def work_s(self) -> float:
        """Seconds beyond start-up there."""
        return max(0.0, self.seconds - (REF_STARTUP_S if self.startup else 0.0))

    def ratio(self) -> float:
        """Seconds beyond start-up per second of floor arithmetic at its rate (0 without a floor)."""
        return self.work_s() * self.rate * 1e9 / self.flops if self.flops else 0.0


# The T of the reference's recoveries: its parameter-side training's (rank 8 on all seven
# projections of SmolLM2-135M's 30 layers; the input-side ones train < 1% of that).
TRAINABLE_REF = 2_442_240
_N = EMBEDDED_PARAMETERS
CALIBRATION_TOKENS_REF = 32 * 256  # compression.calibration: samples x seq_len
TRAINING_TOKENS_REF = 60 * 4 * 128  # recovery.budget: steps x batch x seq_len
INTEL_RUN = "this 2-core Intel Xeon's cold 71-job run (Snakemake log 2026-12-06T064041, ~330 GFLOPS fp32 2 threads)"
INTEL_RATE_1T = 196.0  # its 1-thread rate (docs/performance.md, add_task.py at a673f0f)
# Per stage (the benchmark file's name, as stage_times groups them), or per method or rule.
REFERENCE = {
    # 124-149 s (three methods on three models); T is < 1% of 4N for every default method.
    "recover": Measured(136.5, TRAINING_TOKENS_REF * (4 * _N + 2 * TRAINABLE_REF)),
    # evaluate: EVALUATE_* above; its floor's rate is the 1-thread rate
    "cost": Measured(23.0),
    "attention": Measured(27.5),  # 25-30 s
    "download": Measured(25.0),
    # Not in the AMD table: each data job 0-1 s, the aggregate jobs 0-7 s (analysis 7 s,
    # figures 4, report 3, summary 0), start-up included, 1 thread.
    "data": Measured(1.0, rate=INTEL_RATE_1T, where=INTEL_RUN, startup=False),
    "aggregate/analysis": Measured(7.0, rate=INTEL_RATE_1T, where=INTEL_RUN, startup=False),
    "aggregate": Measured(3.0, rate=INTEL_RATE_1T, where=INTEL_RUN, startup=False),
}
# Ratios of stages in no table, taken as evaluate's (a forward pass over tokens): teacher
# logits, generated text. A compression or training-free recovery whose config has no
# ``reference_job_s`` (not measured on the reference) takes a fixed 30 s there, said in a note.
FORWARD_RATIO = EVALUATE_S_PER_TOKEN_REF * REF_RATE_1T * 1e9 / (2 * _N)
UNMEASURED = Measured(30.0, where="assumed")


def method_reference(config) -> Measured | None:
    """A compression's or training-free recovery's job on the reference machine, from its
    config's ``reference_job_s`` (None: not measured there). A compression that calibrates
    gets the reference's calibration floor (its time scales with it); a job shorter than a
    start-up loads no model, so its time is taken as it is."""
    seconds = config.reference_job_s
    if seconds is None:
        return None
    flops = CALIBRATION_TOKENS_REF * 2 * 2 * _N if config.uses_calibration else 0.0
    return Measured(seconds, flops, startup=seconds > REF_STARTUP_S)


def reference_or_assumed(entry) -> tuple[Measured, str]:
    """(the plan entry's reference job, or :data:`UNMEASURED`; a note saying which was assumed)."""
    ref = method_reference(entry.config)
    if ref is None:
        return UNMEASURED, f"{entry.method}: not measured on the reference, {UNMEASURED.seconds:.0f} s assumed"
    return ref, ""

# bfloat16 against float32, end to end, on the demo's base checkpoint (benchmarks/precision.py,
# first reported at a673f0f, a 2-core AMX machine, 370 GFLOPS fp32 and 2,341 bf16): a rank-8
# adapter's training step 1.56 vs 1.12 s (1.39x), hf-prefix scoring 170 vs 266 requests/s (1.56x). Cost and the
# attention analysis run the model forward as scoring does. Stages that compute in float32
# under auto (download, compress, compute: a training-free recovery's decompositions) gain nothing.
BF16_GAIN = {"recover": 1.39, "evaluate": 1.56, "cost": 1.56, "attention": 1.56, "teacher_logits": 1.56,
             "generated_text": 1.56}
STORAGE_STAGES = ("download", "compress")  # start(storage=True): float32 under dtype auto
FLOAT32_STAGES = ("compute", "data", "aggregate")  # compute in float32 whatever the dtype


# ---- the jobs of a dry run ---------------------------------------------------------------------

RULE = re.compile(r"^(?:local)?rule (\S+):$")
FIELD = re.compile(r"^\s{4}(\w+): (.*)$")


@dataclass
class Job:
    rule: str
    jobid: int
    wildcards: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None

    @property
    def stage(self) -> str:
        """The stage as benchmarks/stage_times.py names it (its benchmark file, e.g. compress,
        recover, teacher_logits_corpus); ``data`` or ``aggregate`` for the jobs without one."""
        if self.benchmark:
            return Path(self.benchmark).name.removesuffix(".benchmark.tsv")
        if self.rule in AGGREGATE_RULES:
            return "aggregate"
        return "all" if self.rule == "all" else "data"


AGGREGATE_RULES = ("summary", "analysis", "levels", "figures", "report")


def _paths(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def parse_dry_run(text: str) -> list[Job]:
    """The jobs a ``snakemake --dry-run`` printed (its job blocks: ``rule X:`` or
    ``localrule X:`` followed by indented fields)."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in text.splitlines():
        m = RULE.match(line)
        if m:
            current = Job(rule=m.group(1), jobid=-1)
            jobs.append(current)
            continue
        m = FIELD.match(line) if current is not None else None
        if not m:
            if line.strip() and not line.startswith(" "):
                current = None
            continue
        key, value = m.groups()
        if key == "jobid":
            current.jobid = int(value)
        elif key == "threads":
            current.threads = int(value)
        elif key == "input":
            current.inputs = _paths(value)
        elif key == "output":
            current.outputs = _paths(value)
        elif key == "benchmark":
            current.benchmark = value.strip()
        elif key == "wildcards":
            current.wildcards = dict(kv.strip().split("=", 1) for kv in value.split(",") if "=" in kv)
    return [j for j in jobs if j.jobid >= 0]


def dry_run(workdir: Path, cores: int, configfile: Path | None = None, snakefile: Path | None = None) -> str:
    """The text of ``snakemake --dry-run`` in ``workdir`` (what would run now); the checkout's
    Snakefile when ``workdir`` has none (``--directory quick``, as ``make quick`` runs)."""
    if snakefile is None and not (workdir / "Snakefile").is_file():
        snakefile = Path(__file__).resolve().parents[1] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--nolock", "--cores", str(cores),
           "--directory", str(workdir)]
    if snakefile:
        cmd += ["--snakefile", str(snakefile)]
    if configfile:
        cmd += ["--configfile", str(configfile), "--replace-workflow-config"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if done.returncode != 0:
        raise SystemExit(f"snakemake --dry-run failed ({' '.join(cmd)}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + "\n" + done.stderr


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """jobid -> the jobids (among ``jobs``) that make one of its inputs (an output path, or a
    folder above it)."""
    maker = {out.rstrip("/"): j.jobid for j in jobs for out in j.outputs}
    deps: dict[int, set[int]] = {}
    for j in jobs:
        found = set()
        for path in j.inputs:
            path = path.rstrip("/")
            while path:
                if path in maker and maker[path] != j.jobid:
                    found.add(maker[path])
                    break
                path = path.rpartition("/")[0]
        deps[j.jobid] = found
    return deps


# ---- the probe ---------------------------------------------------------------------------------

@dataclass
class Probe:
    """This machine, measured: matmul GFLOPS per (threads, dtype), a job's start-up seconds,
    the device, and whether it computes bfloat16 natively (what ``dtype: auto`` resolves by)."""

    gflops: dict[tuple[int, str], float]
    startup_s: float
    device: str = "cpu"
    bf16_native: bool = False
    cpu: str = ""
    seconds: float = 0.0  # how long the probe took
    loadavg: float | None = None  # the 1-minute load average before it: other work competes for the cores

    def rate(self, threads: int, dtype: str) -> float:
        """The matmul rate at ``threads`` (the nearest thread count probed)."""
        if (threads, dtype) in self.gflops:
            return self.gflops[(threads, dtype)]
        near = min((t for t, d in self.gflops if d == dtype), key=lambda t: (abs(t - threads), t))
        return self.gflops[(near, dtype)]

    def resolve(self, requested: str) -> str:
        """The config's dtype as a job here resolves it (:func:`compress_recover.runtime.resolve_dtype`)."""
        return ("bfloat16" if self.bf16_native else "float32") if requested == "auto" else requested

    def to_json(self) -> dict:
        return {"gflops": [{"threads": t, "dtype": d, "gflops": round(g, 1)}
                           for (t, d), g in sorted(self.gflops.items())],
                "startup_s": round(self.startup_s, 2), "device": self.device, "bf16_native": self.bf16_native,
                "cpu": self.cpu, "probe_s": round(self.seconds, 1), "loadavg": self.loadavg}

    @classmethod
    def from_json(cls, data: dict) -> "Probe":
        return cls({(int(r["threads"]), r["dtype"]): float(r["gflops"]) for r in data["gflops"]},
                   float(data["startup_s"]), data.get("device", "cpu"), bool(data.get("bf16_native", False)),
                   data.get("cpu", ""), float(data.get("probe_s", 0)), data.get("loadavg"))


STARTUP_IMPORTS = "import torch, transformers, peft, lm_eval.models.huggingface"


def cpu_model() -> str:
    """lscpu's model name and the bf16 flags it has (amx_bf16, avx512_bf16)."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            if key.strip() == "flags":
                flags = [f for f in ("amx_bf16", "avx512_bf16") if f in value.split()]
                return f"{name} ({', '.join(flags) or 'no bf16 flags'})"
    except OSError:
        pass
    import platform

    return name or platform.processor() or platform.machine()


def startup_seconds(repeats: int = 2) -> float:
    """Seconds for a fresh Python to import what every heavy job imports (best of ``repeats``:
    the first may read the libraries from disk, as only a run's first job does)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP_IMPORTS], check=True, capture_output=True,
                       env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        best = min(best, time.perf_counter() - start)
    return best


def probe(threads: list[int], device: str = "auto", repeats: int = 5) -> Probe:
    """Measure this machine (see the module docstring): float32 and bfloat16 matmul GFLOPS at
    each of ``threads`` (and 1 and 2, the reference's), a job's start-up, the device and
    whether ``dtype: auto`` resolves to bfloat16 on it."""
    start = time.perf_counter()
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    import torch

    from .runtime import matmul_gflops, resolve_device, resolve_dtype

    device = resolve_device(device)
    native = resolve_dtype("auto", device) == "bfloat16"
    before = torch.get_num_threads()
    gflops = {}
    for t in sorted(set(threads) | {1, 2}):
        torch.set_num_threads(t)
        for d in ("float32", "bfloat16"):
            gflops[(t, d)] = matmul_gflops(repeats=repeats, dtype=d)
    torch.set_num_threads(before)
    found = Probe(gflops, startup_seconds(), device, native, cpu_model(), loadavg=load)
    found.seconds = time.perf_counter() - start
    return found


# ---- per job -----------------------------------------------------------------------------------

@dataclass
class Grid:
    """What the per-job predictions read from the config: the plan's runs and compressions,
    the budget, the calibration, the data, the models' parameter counts."""

    plan: object
    config: dict
    parameters: dict[str, int | None]  # model -> N (None: unknown before its download)
    notes: list[str] = field(default_factory=list)


def load_grid(workdir: Path, configfile: Path | None = None) -> Grid:
    """The config (schema defaults filled in as the Snakefile fills them) and its plan."""
    import yaml
    from snakemake.utils import validate

    from .config import build_plan

    path = configfile or workdir / "config.yaml"
    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(Path(__file__).parent / "schema" / "config.schema.yaml"))
    plan = build_plan(config)
    notes: list[str] = []
    return Grid(plan, config, {m: model_parameters(workdir, m, spec, notes) for m, spec in plan.models.items()}, notes)


def parameters_of_shape(shape, tied: bool = True) -> int | None:
    """A Llama-style decoder's parameter count from its shape (embeddings once when tied)."""
    if None in (shape.hidden, shape.intermediate, shape.layers, shape.heads, shape.head_dim, shape.vocab):
        return None
    h, attn, kv = shape.hidden, shape.heads * shape.head_dim, (shape.kv_heads or shape.heads) * shape.head_dim
    layer = h * attn + 2 * h * kv + attn * h + 3 * h * shape.intermediate + 2 * h
    return shape.vocab * h * (1 if tied else 2) + shape.layers * layer + h


def model_parameters(workdir: Path, model: str, spec: dict, notes: list[str]) -> int | None:
    """N: the download manifest's count if downloaded; the embedded default's; a local
    checkpoint's config.json; else None (a hub model not yet downloaded)."""
    manifest = workdir / "results" / model / "none" / "checkpoint" / "manifest.json"
    if manifest.is_file():
        found = json.loads(manifest.read_text()).get("parameters")
        if found:
            return int(found)
    if spec.get("source") == "embedded":
        return EMBEDDED_PARAMETERS
    from .shape import ModelShape

    cfg = Path(spec.get("path") or "") / "config.json"
    if spec.get("source") == "local" and cfg.is_file():
        raw = json.loads(cfg.read_text())
        n = parameters_of_shape(ModelShape.from_config(raw), bool(raw.get("tie_word_embeddings", True)))
        if n:
            return n
    notes.append(f"model {model}: parameter count unknown before its download (source {spec.get('source')}); "
                 "its floored jobs are predicted from start-up and overheads only, an underestimate")
    return None


def model_shape(spec: dict):
    """The model's shape where knowable before download (the embedded default's, a local
    checkpoint's), else the embedded default's as a stand-in (only T, < 1% of a floor, reads it)."""
    from .shape import EMBEDDED, known_shape

    return known_shape(spec) or EMBEDDED


def trainable_parameters(entry, shape) -> int:
    """T of a recovery run: what its method config says it trains on this shape."""
    return entry.config.trainable_parameters(shape)


def demonstration_runs(questions: float, grid: Grid) -> float:
    """How many times a task's demonstration prefix is run for ``questions`` questions: once
    per batch of contexts and once per prefix re-drawn for a question the first ones would
    spoil (one seeded order per task, shared-prefix scoring)."""
    batch = int(grid.config.get("evaluation", {}).get("batch_size") or FEWSHOT_BATCH)
    return -(-questions // batch) + questions * FEWSHOT_PREFIXES_PER_QUESTION


def knowledge_tokens(grid: Grid, shots: int) -> tuple[float, float, list[str]]:
    """(scored tokens of the knowledge tasks, of their content-free variants, tasks not
    counted) for one evaluation with ``shots`` demonstrations per question."""
    cap = grid.config["data"].get("max_questions")
    tokens = masked = 0.0
    unknown = []
    for task in grid.plan.knowledge():
        if task not in TASKS:
            unknown.append(task)
            continue
        questions, zero, free = TASKS[task]
        scale = min(1.0, cap / questions) if cap else 1.0
        q = questions * scale
        shown = demonstration_runs(q, grid) * shots * TOKENS_PER_DEMONSTRATION
        tokens += zero * scale + shown
        if task in grid.plan.content_free().values():
            masked += free * scale + shown
    return tokens, masked, unknown + [t for t in grid.plan.tasks if grid.plan.task_kind(t) in ("builtin", "custom")]


def perplexity_tokens(grid: Grid) -> float:
    if not grid.plan.perplexity_tasks:
        return 0.0
    text = grid.config["data"].get("text", {})
    return PERPLEXITY_TOKENS * float(text.get("heldout_fraction", PERPLEXITY_FRACTION)) / PERPLEXITY_FRACTION


@dataclass
class Prediction:
    job: Job
    stage: str
    seconds: float
    floor_flops: float = 0.0
    floor_s: float = 0.0  # floor FLOPs / the probed matmul rate at the job's threads and dtype
    dtype: str = "float32"
    note: str = ""


def job_dtype(stage: str, resolved: str, requested: str) -> str:
    """The dtype a job of ``stage`` computes in: ``resolved`` (the config's, auto resolved),
    except float32 for the stages that always compute in it and, under auto, for the stages
    that write shared checkpoints (:meth:`compress_recover.runtime.Runtime.start`)."""
    if stage in FLOAT32_STAGES or stage == "all" or (stage in STORAGE_STAGES and requested == "auto"):
        return "float32"
    return resolved if resolved in ("float32", "bfloat16") else "float32"


def stage_rate(probe_: Probe, stage: str, threads: int, dtype: str) -> float:
    """GFLOPS a job of ``stage`` computes at (:func:`job_rate` of the probed matmul rates):
    in bfloat16, the float32 rate x the stage's end-to-end gain (:data:`BF16_GAIN`), at most
    the bfloat16 rate."""
    fp32 = job_rate(probe_.rate, threads, "float32")
    if dtype != "bfloat16":
        return fp32
    family = "teacher_logits" if stage.startswith("teacher_logits") else stage
    return min(job_rate(probe_.rate, threads, "bfloat16"), fp32 * BF16_GAIN.get(family, 1.0))


def predict_job(job: Job, grid: Grid, probe_: Probe) -> Prediction:
    """One job's predicted seconds (see the module docstring): start-up + ratio x floor FLOPs /
    this machine's rate + the rest of the reference's job time x its rate / this machine's."""
    stage, plan = job.stage, grid.plan
    if stage == "all":
        return Prediction(job, stage, 0.0)
    requested = grid.config.get("dtype", "float32")
    dtype = job_dtype(stage, probe_.resolve(requested), requested)
    model = job.wildcards.get("model")
    n = grid.parameters.get(model) if model else None
    flops, ratio, note = 0.0, 0.0, ""
    rest: Measured | None = None  # the reference job whose time beyond its floor (or in all) is scaled
    rest_s = None  # or the seconds beyond start-up and floor, at the reference's 1-thread rate
    startup = probe_.startup_s
    if stage == "compress":
        ref, note = reference_or_assumed(plan.compressions[job.wildcards["compression"]])
        if ref.flops:  # measured, and it calibrates: its time scales with the calibration floor
            cal = grid.config["compression"]["calibration"]
            flops, ratio = int(cal["samples"]) * int(cal["seq_len"]) * 2 * 2 * (n or 0), ref.ratio()
        else:
            rest = ref
    elif stage == "recover":
        entry = plan.recoveries[job.wildcards["recovery"]]
        budget = grid.config["recovery"]["budget"]
        tokens = int(entry.steps or plan.budget_steps[-1]) * int(budget["batch_size"]) * int(budget["seq_len"])
        t = trainable_parameters(entry, model_shape(plan.models[model]))
        flops, ratio = (tokens * (4 * n + 2 * t) if n else 0.0), REFERENCE["recover"].ratio()
    elif stage in ("evaluate", "evaluate_llamacpp"):
        run = job.wildcards.get("recovery", "none")
        shots = plan.shots(run) if run in plan.recoveries else 0
        know, masked, unknown = knowledge_tokens(grid, shots)
        entry = plan.recoveries.get(run)
        passes = entry.config.scored_passes(grid.config.get("evaluation", {})) if entry is not None else 1
        tokens = know if stage == "evaluate_llamacpp" else (know + masked) * passes + perplexity_tokens(grid)
        flops, ratio = tokens * 2 * (n or 0), FORWARD_RATIO
        rest_s = max(0.0, EVALUATE_FIXED_S_REF - REF_STARTUP_S)
        if unknown:
            note = f"tasks not counted (their size is unknown before they are built): {', '.join(unknown)}"
    elif stage.startswith("teacher_logits"):
        budget = grid.config["recovery"]["budget"]
        tokens = plan.budget_steps[-1] * int(budget["batch_size"]) * int(budget["seq_len"])
        flops, ratio = tokens * 2 * (n or 0), FORWARD_RATIO
        note = "not measured: tokens taken as the training budget's, the ratio as evaluate's"
    elif stage == "generated_text":
        gen = grid.config["data"]["generated"]
        flops, ratio = int(gen["count"]) * int(gen["max_new_tokens"]) * 2 * (n or 0), FORWARD_RATIO
        note = "not measured: the ratio taken as evaluate's"
    elif stage == "compute":
        rest, note = reference_or_assumed(plan.recoveries[job.wildcards["recovery"]])
    elif stage in ("cost", "attention", "download"):
        rest = REFERENCE[stage]
    elif stage == "aggregate":
        rest = REFERENCE.get(f"aggregate/{job.rule}") or REFERENCE["aggregate"]
    else:  # data
        rest = REFERENCE["data"]
    rate = stage_rate(probe_, stage, job.threads, dtype)
    seconds = ratio * flops / (rate * 1e9) if flops else 0.0
    if rest is not None:
        startup = startup if rest.startup else 0.0
        seconds += rest.work_s() * rest.rate / rate
    if rest_s is not None:
        seconds += rest_s * REF_RATE_1T / rate
    seconds += startup
    if ratio and n is None:
        note = "; ".join(filter(None, [note, f"model {model}'s N unknown: its floor not counted"]))
    floor_s = flops / (probe_.rate(job.threads, dtype) * 1e9) if flops else 0.0
    return Prediction(job, stage, seconds, flops, floor_s, dtype, note)


# ---- the wall time -----------------------------------------------------------------------------

def simulate(predictions: list[Prediction], cores: int) -> dict:
    """List scheduling of the job graph on ``cores``: returns the simulated wall seconds,
    each job's start, the bounds (work / cores, the critical path)."""
    by_id = {p.job.jobid: p for p in predictions}
    deps = dependencies([p.job for p in predictions])
    children: dict[int, list[int]] = {j: [] for j in by_id}
    for j, ds in deps.items():
        for d in ds:
            children[d].append(j)
    tail: dict[int, float] = {}

    def longest(j: int) -> float:  # the longest path from j's start to the end
        if j not in tail:
            tail[j] = by_id[j].seconds + max((longest(c) for c in children[j]), default=0.0)
        return tail[j]

    for j in by_id:
        longest(j)
    waiting = {j: set(ds) for j, ds in deps.items()}
    running: list[tuple[float, int]] = []  # (end, jobid)
    free, now, starts = cores, 0.0, {}
    done: set[int] = set()
    while len(done) < len(by_id):
        ready = sorted((j for j, ds in waiting.items() if not ds and j not in starts), key=lambda j: (-tail[j], j))
        for j in ready:
            need = min(by_id[j].job.threads, cores)
            if need <= free:
                starts[j] = now
                free -= need
                running.append((now + by_id[j].seconds, j))
        if not running:
            raise RuntimeError("the job graph has a cycle or a job needs more cores than given")
        running.sort()
        end, j = running.pop(0)
        now = end
        free += min(by_id[j].job.threads, cores)
        done.add(j)
        for c in children[j]:
            waiting[c].discard(j)
        del waiting[j]
    work = sum(p.seconds * min(p.job.threads, cores) for p in predictions)
    return {"wall_s": now, "starts": starts, "work_bound_s": work / cores,
            "critical_path_s": max(tail.values(), default=0.0)}


# ---- the estimate ------------------------------------------------------------------------------

def git_commit(workdir: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                             capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def estimate(jobs: list[Job], grid: Grid, probe_: Probe, cores: int) -> dict:
    """Per-job predictions, per-stage sums and the simulated wall time, as one JSON-able dict."""
    predictions = [predict_job(j, grid, probe_) for j in jobs]
    requested = grid.config.get("dtype", "float32")
    sim = simulate(predictions, cores)
    stages: dict[str, dict] = {}
    for p in predictions:
        if p.stage == "all":
            continue
        row = stages.setdefault(p.stage, {"jobs": 0, "job_s": 0.0, "core_s": 0.0, "floor_s": 0.0, "max_job_s": 0.0,
                                          "dtype": p.dtype, "threads": p.job.threads})
        row["jobs"] += 1
        row["job_s"] += p.seconds
        row["core_s"] += p.seconds * min(p.job.threads, cores)
        row["floor_s"] += p.floor_s
        row["max_job_s"] = max(row["max_job_s"], p.seconds)
    total_core = sum(r["core_s"] for r in stages.values()) or 1.0
    for row in stages.values():  # the stage's share of the wall time: its share of the core-seconds
        row["wall_min_share"] = sim["wall_s"] / 60 * row["core_s"] / total_core
    return {
        "commit": git_commit(Path(".")), "created": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": cores,
        "config_dtype": requested, "dtype": probe_.resolve(requested),
        "probe": probe_.to_json(),
        "reference": {"gflops_fp32_2t": REF_GFLOPS_FP32, "gflops_fp32_1t": REF_GFLOPS_FP32_1T,
                      "startup_s": REF_STARTUP_S, "parallel_gain_max": PARALLEL_GAIN_MAX,
                      "where": "issue 37's AMD table (2 cores, float32)"},
        "jobs": [{"rule": p.job.rule, "stage": p.stage, "wildcards": p.job.wildcards, "threads": p.job.threads,
                  "benchmark": p.job.benchmark,
                  "dtype": p.dtype, "seconds": round(p.seconds, 1), "floor_s": round(p.floor_s, 2),
                  "start_s": round(sim["starts"].get(p.job.jobid, 0.0), 1), "note": p.note} for p in predictions],
        "stages": {s: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}
                   for s, row in stages.items()},
        "wall_min": round(sim["wall_s"] / 60, 2), "work_bound_min": round(sim["work_bound_s"] / 60, 2),
        "critical_path_min": round(sim["critical_path_s"] / 60, 2), "notes": list(grid.notes),
    }


def print_estimate(result: dict, out=None) -> None:
    out = out or sys.stdout
    p = result["probe"]
    rates = ", ".join(f"{r['dtype']} {r['threads']}t {r['gflops']:.0f}" for r in p["gflops"])
    print(f"machine: {p['cpu']}; matmul 2048² GFLOPS: {rates}; job start-up {p['startup_s']:.1f} s "
          f"(probe took {p['probe_s']:.0f} s)", file=out)
    print(f"run: {sum(s['jobs'] for s in result['stages'].values())} jobs on {result['cores']} cores, device "
          f"{p['device']}, dtype {result['config_dtype']} -> {result['dtype']} (commit {result['commit']})", file=out)
    print(f"{'stage':<24}{'jobs':>5}{'thr':>4}{'dtype':>10}{'job s':>9}{'max job s':>11}{'floor s':>9}{'wall min':>10}",
          file=out)
    for stage, row in sorted(result["stages"].items(), key=lambda kv: -kv[1]["core_s"]):
        floor = f"{row['floor_s']:.0f}" if row["floor_s"] else "-"
        print(f"{stage:<24}{row['jobs']:>5}{row['threads']:>4}{row['dtype']:>10}{row['job_s']:>9.0f}"
              f"{row['max_job_s']:>11.0f}{floor:>9}{row['wall_min_share']:>10.1f}", file=out)
    print(f"predicted wall time: {result['wall_min']:.1f} min (bounds: work / cores {result['work_bound_min']:.1f}, "
          f"critical path {result['critical_path_min']:.1f}); 'wall min' shares it by core-seconds", file=out)
    load = p.get("loadavg")
    if load is not None and load > 0.5 * result["cores"]:
        print(f"warning: load average {load} before the probe on {result['cores']} cores: other work shares this "
              "machine, so the probe measured (and this predicts) a run beside it, not on a quiet machine", file=out)
    for note in result["notes"] + sorted({f"{j['stage']}: {j['note']}" for j in result["jobs"] if j["note"]}):
        print(f"note: {note}", file=out)


def print_gflops(found: Probe, out=None) -> float:
    """``make gflops``: this machine's matmul speed, and the factor that scales a time the docs
    give (each beside the GFLOPS of the machine it was measured on) to this one. Returns the
    float32 2-thread rate."""
    out = out or sys.stdout
    here = found.rate(2, "float32")
    print(f"machine: {found.cpu or 'unknown CPU'}; device {found.device}; bfloat16 native: "
          f"{'yes' if found.bf16_native else 'no'} (what dtype: auto resolves by)", file=out)
    for (threads, dtype), rate in sorted(found.gflops.items()):
        print(f"matmul 2048² {dtype:<9} {threads} thread{'s' if threads > 1 else ' '}: {rate:7.0f} GFLOPS", file=out)
    print(f"a heavy job's start-up (imports torch, transformers, peft, lm-eval): {found.startup_s:.1f} s", file=out)
    print(f"A time the docs give beside G GFLOPS (float32, 2 threads) takes about G / {here:.0f} of it here; "
          f"for the docs' reference machine (issue 37's AMD EPYC, {REF_GFLOPS_FP32:.0f} GFLOPS) that is "
          f"x{REF_GFLOPS_FP32 / here:.2f}. Compute-bound stages scale so; start-up and loading less.", file=out)
    load = found.loadavg
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load} before the probe: other work shares this machine", file=out)
    return here


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--configfile", type=Path, default=None, help="default: the workdir's config.yaml")
    parser.add_argument("--snakefile", type=Path, default=None)
    parser.add_argument("--cores", default="all", help="as given to snakemake (all: this machine's CPUs)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (default: <workdir>/logs/estimate.json)")
    parser.add_argument("--probe", type=Path, default=None, help="reuse a probe from an earlier estimate's JSON")
    parser.add_argument("--gflops", action="store_true",
                        help="only measure this machine (make gflops): matmul GFLOPS per dtype and threads, start-up")
    args = parser.parse_args(argv)
    if args.gflops:
        found = probe([os.cpu_count() or 1])
        return {"probe": found.to_json(), "gflops_fp32_2t": print_gflops(found)}
    workdir = args.workdir.resolve()
    # a cold run's working directory (make quick's quick/) may not exist yet: Snakemake makes
    # it on the run; the dry run needs it now, and the estimate is written into it
    workdir.mkdir(parents=True, exist_ok=True)
    if args.configfile is not None:  # as given on the command line: relative to where it is run, not to --workdir
        args.configfile = args.configfile.resolve()
    cores = (os.cpu_count() or 1) if args.cores == "all" else int(args.cores)
    jobs = parse_dry_run(dry_run(workdir, cores, args.configfile, args.snakefile))
    grid = load_grid(workdir, args.configfile)
    if args.probe:
        found = Probe.from_json(json.loads(args.probe.read_text())["probe"])
    else:
        found = probe(sorted({j.threads for j in jobs}), grid.config.get("device", "auto"))
    if found.device != "cpu":
        grid.notes.append(f"device {found.device}: the constants are CPU measurements; "
                          "on a GPU this is not an estimate")
    result = estimate(jobs, grid, found, cores)
    out = args.out or workdir / "logs" / "estimate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print_estimate(result)
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
