"""compress_recover.estimate (make estimate) on known truths: the dry run's jobs, the per-job
arithmetic against the reference it is calibrated on, the scaling by a probe, the wall-time
packing; and benchmarks/stage_times.py's predicted-vs-measured join on a hand-made run."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from compress_recover import estimate as est

sys.path.insert(0, str(REPO / "benchmarks"))
import stage_times  # noqa: E402

DRY_RUN = """\
Building DAG of jobs...
Job stats:
job              count
-------------  -------
download             1
total                4

[Sun Dec  6 19:06:21 2026]
localrule knowledge_task:
    output: results/data/tasks/capitals
    log: logs/data/tasks/capitals.log
    jobid: 4
    reason: Missing output files: results/data/tasks/capitals
    wildcards: task=capitals
    resources: tmpdir=/tmp
Shell command: None

[Sun Dec  6 19:06:21 2026]
rule download:
    output: results/m/none/checkpoint
    log: logs/m/none/download.log
    jobid: 3
    benchmark: logs/m/none/download.benchmark.tsv
    reason: Missing output files: results/m/none/checkpoint
    wildcards: model=m
    threads: 2
    resources: tmpdir=/tmp
Shell command: None

[Sun Dec  6 19:06:21 2026]
rule evaluate:
    input: results/m/none/checkpoint, results/data/tasks/capitals
    output: results/m/none/none/eval/capitals.json, results/m/none/none/eval/capitals.samples.jsonl
    log: logs/m/none/none/evaluate.log
    jobid: 9
    benchmark: logs/m/none/none/evaluate.benchmark.tsv
    reason: Missing output files: results/m/none/none/eval/capitals.json
    wildcards: model=m, compression=none, recovery=none
    resources: tmpdir=/tmp
Shell command: None

[Sun Dec  6 19:06:21 2026]
localrule report:
    input: results/m/none/none/eval/capitals.json, results/elsewhere/done.csv
    output: results/report.html
    jobid: 1
    resources: tmpdir=/tmp
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""


def test_the_dry_run_is_parsed_into_jobs_and_their_dependencies():
    jobs = {j.jobid: j for j in est.parse_dry_run(DRY_RUN)}
    assert sorted(jobs) == [1, 3, 4, 9]
    assert (jobs[4].rule, jobs[4].stage, jobs[4].threads, jobs[4].wildcards) == \
        ("knowledge_task", "data", 1, {"task": "capitals"})
    assert (jobs[3].stage, jobs[3].threads, jobs[3].benchmark) == ("download", 2, "logs/m/none/download.benchmark.tsv")
    assert jobs[9].wildcards == {"model": "m", "compression": "none", "recovery": "none"}
    assert (jobs[9].stage, jobs[9].threads) == ("evaluate", 1)
    assert jobs[1].stage == "aggregate"
    # an input made by no job of the list (already there) is no dependency
    assert est.dependencies(list(jobs.values())) == {4: set(), 3: set(), 9: {3, 4}, 1: {9}}


def test_an_input_inside_an_output_folder_depends_on_its_maker():
    a = est.Job("a", 1, outputs=["results/x/checkpoint"])
    b = est.Job("b", 2, inputs=["results/x/checkpoint/config.json"])
    assert est.dependencies([a, b]) == {1: set(), 2: {1}}


def test_a_job_rate_is_the_one_thread_rate_times_a_capped_thread_gain():
    rates = {(1, "float32"): 100.0, (2, "float32"): 190.0, (1, "bfloat16"): 400.0, (2, "bfloat16"): 420.0}
    rate = lambda t, d: rates[(t, d)]  # noqa: E731
    assert est.job_rate(rate, 1) == 100.0
    assert est.job_rate(rate, 2) == pytest.approx(100.0 * est.PARALLEL_GAIN_MAX)  # 1.9x probed, capped
    assert est.job_rate(rate, 2, "bfloat16") == pytest.approx(420.0)  # 1.05x: under the cap


# ---- per job, on the default grid's config -----------------------------------------------------

def _config(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update({"dtype": "float32", "device": "cpu"})
    config["data"].update({"knowledge_tasks": list(est.TASKS), "max_questions": None, "perplexity": True,
                           "content_free_mask": "X"})
    config["data"]["text"]["heldout_fraction"] = 0.1
    config["compression"]["calibration"] = {"samples": 32, "seq_len": 256}
    config["recovery"]["budget"].update({"steps": 60, "batch_size": 4, "seq_len": 128})
    config.setdefault("evaluation", {})["idp_ablation"] = True
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _reference_probe(scale: float = 1.0, bf16: float = 4.2, startup: float = est.REF_STARTUP_S,
                     native: bool = False) -> est.Probe:
    """A machine equal to the reference (199 GFLOPS fp32 on 1 and 2 threads), ``scale`` times faster."""
    g = est.REF_GFLOPS_FP32 * scale
    return est.Probe({(1, "float32"): g, (2, "float32"): g, (1, "bfloat16"): g * bf16, (2, "bfloat16"): g * bf16},
                     startup, bf16_native=native)


M = "smollm2-135m"


def _run_job(rule: str, jobid: int, compression: str, recovery: str, threads: int, stage: str) -> est.Job:
    """A dry run's job of one (compression, recovery) run of model M, with its benchmark file."""
    return est.Job(rule, jobid, {"model": M, "compression": compression, "recovery": recovery}, threads,
                   benchmark=f"logs/{M}/{compression}/{recovery}/{stage}.benchmark.tsv")


JOBS = {
    "gptq": est.Job("compress_gptq", 1, {"model": M, "compression": "gptq-w3g64"}, 2,
                    benchmark=f"logs/{M}/gptq-w3g64/compress.benchmark.tsv"),
    "wanda": est.Job("compress_wanda", 2, {"model": M, "compression": "wanda-s50"}, 2,
                     benchmark=f"logs/{M}/wanda-s50/compress.benchmark.tsv"),
    "lora": _run_job("recover_lora", 3, "gptq-w3g64", "lora.seed0", 2, "recover"),
    "eval": _run_job("evaluate", 4, "gptq-w3g64", "none", 1, "evaluate"),
    "eval_idp": _run_job("evaluate", 5, "gptq-w3g64", "idp.seed0", 1, "evaluate"),
    "eval_3shot": _run_job("evaluate", 6, "gptq-w3g64", "fewshot.seed0", 1, "evaluate"),
    "eora": _run_job("compute_eora", 7, "gptq-w3g64", "eora.seed0", 2, "compute"),
    "cost": _run_job("cost", 8, "gptq-w3g64", "none", 2, "cost"),
    "download": est.Job("download", 9, {"model": M}, 2, benchmark=f"logs/{M}/none/download.benchmark.tsv"),
    "task": est.Job("knowledge_task", 10, {"task": "capitals"}, 1),
}


@pytest.fixture
def grid(tmp_path) -> est.Grid:
    return est.load_grid(tmp_path, _config(tmp_path))


def test_the_reference_machine_is_predicted_its_own_job_times(grid):
    """On a probe equal to the reference, each job gets the reference's measured time back."""
    probe = _reference_probe()
    got = {k: est.predict_job(j, grid, probe).seconds for k, j in JOBS.items()}
    assert got["gptq"] == pytest.approx(81.0)
    assert got["wanda"] == pytest.approx(37.0)
    assert got["lora"] == pytest.approx(136.5)  # the default LoRA's T is the reference's
    assert got["eval"] == pytest.approx(87.5)  # the config's tokens: 20,993 + 19,918 masked + 5,093 perplexity
    # the reference drew demonstrations per question (252.5 s); one seeded order per task shares them:
    # 3 x 19 tokens once per batch of 32 and per re-drawn prefix, for the questions and their masked twins
    shown = sum(est.demonstration_runs(q, grid) for q, _, _ in est.TASKS.values()) * 3 * est.TOKENS_PER_DEMONSTRATION
    assert got["eval_3shot"] == pytest.approx(87.5 + 2 * shown * est.EVALUATE_S_PER_TOKEN_REF)
    assert got["eval"] < got["eval_3shot"] < 1.2 * got["eval"]
    assert got["eval_idp"] == pytest.approx(279.3, abs=0.5)  # 4 prompts x the knowledge tokens (283-292 measured)
    assert (got["eora"], got["cost"], got["download"]) == pytest.approx((69.0, 23.0, 25.0))
    assert got["task"] == pytest.approx(1.0 * est.INTEL_RATE_1T / est.REF_RATE_1T)


def test_the_evaluate_floor_counts_the_configs_tokens(grid):
    probe = _reference_probe()
    p = est.predict_job(JOBS["eval"], grid, probe)
    assert p.floor_flops == pytest.approx(46_004 * 2 * est.EMBEDDED_PARAMETERS)
    assert p.floor_s == pytest.approx(p.floor_flops / 199e9)
    idp = est.predict_job(JOBS["eval_idp"], grid, probe)
    assert idp.floor_flops == pytest.approx(((20_993 + 19_918) * 4 + 5_093) * 2 * est.EMBEDDED_PARAMETERS)


def test_max_questions_scales_the_knowledge_tokens(tmp_path):
    config = yaml.safe_load(_config(tmp_path).read_text())
    config["data"]["max_questions"] = 59  # half of the two element tasks, a quarter of capitals
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    grid = est.load_grid(tmp_path, path)
    tokens, masked, unknown = est.knowledge_tokens(grid, 0)
    assert tokens == pytest.approx(sum(zero * min(1, 59 / q) for q, zero, _ in est.TASKS.values()))
    assert masked == pytest.approx(sum(free * min(1, 59 / q) for q, _, free in est.TASKS.values()))
    assert unknown == []


def test_a_faster_machine_shortens_everything_but_the_start_up(grid):
    base = {k: est.predict_job(j, grid, _reference_probe()).seconds for k, j in JOBS.items()}
    fast = {k: est.predict_job(j, grid, _reference_probe(scale=2.0, startup=4.0)).seconds for k, j in JOBS.items()}
    for key in ("gptq", "lora", "eval", "eora", "cost", "download"):
        assert fast[key] == pytest.approx(4.0 + (base[key] - est.REF_STARTUP_S) / 2), key


def test_auto_on_a_bf16_machine_speeds_the_compute_stages_by_their_measured_gain(tmp_path):
    grid = est.load_grid(tmp_path, _config(tmp_path, dtype="auto"))
    probe = _reference_probe(bf16=10.0, native=True)
    lora = est.predict_job(JOBS["lora"], grid, probe)
    assert lora.dtype == "bfloat16"
    assert lora.seconds == pytest.approx(est.REF_STARTUP_S + (136.5 - est.REF_STARTUP_S) / est.BF16_GAIN["recover"])
    # the checkpoint-writing stages stay float32 under auto; EoRA's decompositions are float32
    for key, seconds in (("gptq", 81.0), ("download", 25.0), ("eora", 69.0)):
        p = est.predict_job(JOBS[key], grid, probe)
        assert (p.dtype, p.seconds) == ("float32", pytest.approx(seconds)), key
    # bfloat16 emulated (slower than the gain): its matmul rate caps the job's
    slow = _reference_probe(bf16=0.5, native=True)
    lora = est.predict_job(JOBS["lora"], grid, slow)
    assert lora.seconds == pytest.approx(est.REF_STARTUP_S + (136.5 - est.REF_STARTUP_S) * 2)


def test_float32_on_a_bf16_machine_gains_nothing(grid):
    probe = _reference_probe(bf16=10.0, native=True)
    assert est.predict_job(JOBS["lora"], grid, probe).seconds == pytest.approx(136.5)


# ---- the wall time -----------------------------------------------------------------------------

def _prediction(jobid: int, seconds: float, threads: int = 1, inputs=(), outputs=()) -> est.Prediction:
    job = est.Job("r", jobid, threads=threads, inputs=list(inputs), outputs=list(outputs))
    return est.Prediction(job, "x", seconds)


def test_the_wall_time_packs_jobs_onto_the_cores_in_dependency_order():
    # a (2 threads, 10 s) -> b, c (1 thread, 5 s each, side by side) -> d (1 s)
    preds = [_prediction(1, 10, 2, outputs=["a"]), _prediction(2, 5, 1, ["a"], ["b"]),
             _prediction(3, 5, 1, ["a"], ["c"]), _prediction(4, 1, 1, ["b", "c"], ["d"])]
    sim = est.simulate(preds, cores=2)
    assert sim["wall_s"] == pytest.approx(16)
    assert sim["starts"] == {1: 0, 2: 10, 3: 10, 4: 15}
    assert sim["work_bound_s"] == pytest.approx((20 + 5 + 5 + 1) / 2)
    assert sim["critical_path_s"] == pytest.approx(16)
    # four independent 1-thread jobs on 2 cores: two rounds; a job asking for more than the cores gets them all
    assert est.simulate([_prediction(i, 10) for i in range(4)], cores=2)["wall_s"] == pytest.approx(20)
    assert est.simulate([_prediction(1, 10, threads=8), _prediction(2, 10)], cores=2)["wall_s"] == pytest.approx(20)


def test_the_longest_path_starts_first():
    # one core: the long chain's head (1 s, then 10 s) goes before the lone 5 s job
    preds = [_prediction(1, 5), _prediction(2, 1, outputs=["x"]), _prediction(3, 10, 1, ["x"])]
    assert est.simulate(preds, cores=2)["wall_s"] == pytest.approx(11)
    assert est.simulate(preds, cores=1)["starts"][2] == 0


def test_the_estimate_sums_stages_and_writes_json(grid, tmp_path, capsys):
    jobs = [JOBS["download"], JOBS["gptq"], JOBS["eval"], est.Job("all", 0)]
    jobs[1].inputs, jobs[0].outputs = [f"results/{M}/none/checkpoint"], [f"results/{M}/none/checkpoint"]
    result = est.estimate(jobs, grid, _reference_probe(), cores=2)
    assert set(result["stages"]) == {"download", "compress", "evaluate"}
    assert result["stages"]["compress"]["job_s"] == pytest.approx(81.0, abs=0.01)
    # download holds both cores; then evaluate (the longer path) and gptq (2 threads) cannot share them
    assert result["wall_min"] == pytest.approx((25 + 81 + 87.5) / 60, abs=0.01)
    assert {j["benchmark"] for j in result["jobs"] if j["rule"] != "all"} == {j.benchmark for j in jobs[:3]}
    json.dumps(result)
    est.print_estimate(result)
    out = capsys.readouterr().out
    assert "predicted wall time: 3.2 min" in out and "compress" in out


# ---- stage_times: predicted vs measured --------------------------------------------------------

def test_stage_times_sets_the_estimate_against_the_jobs_that_ran(tmp_path, capsys):
    estimate = {"commit": "abc1234", "created": "now", "dtype": "float32", "cores": 2, "wall_min": 2.0,
                "probe": {"gflops": [{"threads": 2, "dtype": "float32", "gflops": 300.0}]},
                "jobs": [{"stage": "recover", "benchmark": "logs/m/c/lora.seed0/recover.benchmark.tsv",
                          "seconds": 120.0},
                         {"stage": "recover", "benchmark": "logs/m/c/idp.seed0/recover.benchmark.tsv", "seconds": 80.0},
                         {"stage": "evaluate", "benchmark": "logs/m/c/none/evaluate.benchmark.tsv", "seconds": 50.0},
                         {"stage": "data", "benchmark": None, "seconds": 1.0}]}
    path = tmp_path / "logs" / "estimate.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(estimate))
    for rel, seconds in (("logs/m/c/lora.seed0/recover.benchmark.tsv", 100.0),
                         ("logs/m/c/none/evaluate.benchmark.tsv", 40.0)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:01:40\t1.0\n")
    rows = stage_times.print_predicted(tmp_path, path, wall_s=100.0)
    # the IDP training has not run: only the LoRA one is compared
    assert rows["recover"] == {"jobs": 2, "predicted_s": 200.0, "timed": 1, "predicted_timed_s": 120.0,
                               "measured_s": 100.0, "error": pytest.approx(0.2)}
    assert rows["evaluate"]["error"] == pytest.approx(0.25)
    assert "data" not in rows
    out = capsys.readouterr().out
    assert "abc1234" in out and "float32 2t 300" in out and "+20%" in out and "+25%" in out
    assert "predicted 2.0 min, measured 1.7 min (+20%)" in out


# ---- the dry run itself ------------------------------------------------------------------------

@pytest.mark.slow
def test_the_estimate_of_the_default_grid_has_snakemakes_job_counts(tmp_path, capsys):
    config = _config(tmp_path)
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps({"probe": _reference_probe().to_json()}))
    out = tmp_path / "estimate.json"
    workdir = tmp_path / "quick"  # a cold run's folder, not made yet (make quick's, before its first run)
    result = est.main(["--workdir", str(workdir), "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
                       "--cores", "2", "--probe", str(probe), "--out", str(out)])
    text = est.dry_run(workdir, 2, config, REPO / "Snakefile")
    stats = text[text.index("Job stats:"):]
    counts = {}
    for line in stats.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    jobs = json.loads(out.read_text())["jobs"]
    assert len(jobs) == counts.pop("total")
    assert {rule: sum(j["rule"] == rule for j in jobs) for rule in counts} == counts
    assert result["wall_min"] > 0 and result["stages"]["evaluate"]["jobs"] == counts["evaluate"]


def test_a_models_parameters_from_its_shape_equal_the_download_manifests():
    from compress_recover.shape import EMBEDDED

    assert est.parameters_of_shape(EMBEDDED) == est.EMBEDDED_PARAMETERS  # SmolLM2-135M, tied embeddings
    assert est.parameters_of_shape(EMBEDDED, tied=False) == est.EMBEDDED_PARAMETERS + 49152 * 576


def test_make_gflops_prints_every_rate_and_the_factor_to_the_docs_reference():
    found = est.Probe({(1, "float32"): 60.0, (2, "float32"): 99.5, (1, "bfloat16"): 400.0, (2, "bfloat16"): 700.0},
                      4.2, cpu="Some CPU", loadavg=0.0)
    out = io.StringIO()
    assert est.print_gflops(found, out) == 99.5
    text = out.getvalue()
    assert "Some CPU" in text and "a heavy job's start-up" in text and "4.2 s" in text
    assert all(f"{rate:7.0f} GFLOPS" in text for rate in (60.0, 99.5, 400.0, 700.0))
    assert f"x{est.REF_GFLOPS_FP32 / 99.5:.2f}" in text  # 199 / 99.5: twice the docs' times here
