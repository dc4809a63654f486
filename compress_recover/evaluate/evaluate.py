"""Rule ``evaluate``: lm-eval (EleutherAI harness) on the in-memory recovered model.

One job per evaluated model (model, compression, recovery) scores all its tasks, loading
the model once. The model object is handed to lm-eval's ``HFLM(pretrained=model)``, so
quantized checkpoints and adapters are evaluated exactly as the earlier stages left
them. Writes, per task, lm-eval's results JSON (with our labels, ``status`` ok and timing
added) and the per-question samples as JSONL; for an adapter whose training failed, a
results JSON with ``status`` failed and why, and an empty samples file.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from ..failures import OK, failed_record
from ..io import atomic_file, verify_folder, write_json
from ..modeling import dense_on_cpu
from ..prompt_choice import ChoiceRecord, choice_counts, choice_field_of, forced_field
from ..recover.load import adapter_failure, load_recovered
from ..runtime import Runtime, library_versions
from .reuse import model_fingerprint, reuse, store, task_key
from ..data.task_yaml import DEMONSTRATION_HINT, DEMONSTRATION_KEYS, has_demonstrations

log = logging.getLogger(__name__)


class TaskUnavailableError(RuntimeError):
    pass


def _task_manager(task_dir: str | None):
    from lm_eval.tasks import TaskManager

    # Indexing lm-eval's thousands of built-in task YAMLs takes seconds per job: only
    # built-in tasks need it.
    if task_dir:
        return TaskManager(include_path=str(task_dir), include_defaults=False)
    return TaskManager()


def preflight_task(task: str, task_dir: str | None, num_fewshot: int = 0):
    """Load ``task`` once before the model, so a missing or offline task fails fast and clearly
    (with ``num_fewshot`` > 0 also a multiple-choice or generation task that has no split
    to draw demonstrations from, other than the one it is scored on).

    Returns lm-eval's task manager and the set of the task's output types."""
    from lm_eval.tasks import get_task_dict

    if task_dir and (Path(task_dir) / "manifest.json").is_file():  # a folder the pipeline built
        verify_folder(task_dir)
    manager = _task_manager(task_dir)
    where = f"the task folder {task_dir}" if task_dir else "lm-eval's built-in tasks"
    if task not in manager.all_tasks:
        raise TaskUnavailableError(f"evaluation task '{task}' is not among {where}")
    try:
        tasks = get_task_dict([task], manager)
    except Exception as err:  # noqa: BLE001 - any failure to materialise the data set
        hint = ("its data set is fetched from the Hugging Face hub, which is unreachable (offline?); "
                "offline, use the knowledge suite (data.knowledge_tasks) or a local task folder (data.task_dirs)"
                if not task_dir else "check the YAML and its local data files")
        raise TaskUnavailableError(f"could not load lm-eval task '{task}' from {where}: {hint}. "
                                   f"Cause: {type(err).__name__}: {err}") from err
    if num_fewshot > 0:
        missing = [t.config.task for t in _leaf_tasks(tasks)
                   if t.OUTPUT_TYPE != "loglikelihood_rolling" and not has_demonstrations(_demonstration_keys(t.config))]
        if missing:
            raise TaskUnavailableError(
                f"evaluation task(s) {missing} in {where}: {num_fewshot}-shot prompts need demonstrations from a "
                f"split other than the scored one, and the task names none; {DEMONSTRATION_HINT}, or evaluate it "
                "zero-shot")
    return manager, set(_output_types(tasks))


def _demonstration_keys(config) -> dict:
    """The keys :func:`compress_recover.data.task_yaml.has_demonstrations` reads, from lm-eval's loaded task config
    (whose ``fewshot_config`` is a dict or a ``FewshotConfig``: its set values only, as a
    YAML would name them; its ``split`` is the task's ``fewshot_split``)."""
    given = config.fewshot_config or {}
    get = given.get if isinstance(given, dict) else (lambda key: getattr(given, key, None))
    settings = {k: v for k in ("samples", "sampler", "split") if (v := get(k)) is not None}
    return {**{k: getattr(config, k, None) for k in DEMONSTRATION_KEYS}, "fewshot_config": settings,
            "fewshot_split": getattr(config, "fewshot_split", None) or settings.get("split")}


def _leaf_tasks(tasks):
    for value in tasks.values():
        if isinstance(value, dict):
            yield from _leaf_tasks(value)
        else:
            yield value


def _output_types(tasks):
    for value in _leaf_tasks(tasks):
        yield value.OUTPUT_TYPE


def scoring_lm(model, **hflm_kwargs):
    """The lm-eval model that scores ``model``: shared-prefix scoring (:mod:`.prefix_lm`).

    A model that chooses its prompt from a pool by reading the context is scored causally
    there: each context alone, then its choices (with the scorer's ``pool_ablation`` also
    under every prompt of its pool)."""
    from .prefix_lm import PrefixScoringLM

    return PrefixScoringLM(pretrained=model, **hflm_kwargs)


def annotate_choices(samples: dict[str, list[dict]], choices: dict[tuple[str, str], ChoiceRecord],
                     field: str | None) -> int:
    """Add to every sample row of a context-choosing model the prompt chosen for its
    question (``<field>``, the same for all its choices: checked) and, when the ablation
    ran, ``forced_field(<field>)``: per prompt of the pool, the log-likelihood of each
    choice with that prompt forced. ``field`` is the model's ``choice_field`` (its method
    config's name for it, :mod:`compress_recover.prompt_choice`). Returns the number of
    rows annotated."""
    if not choices:
        return 0
    if not field:
        raise ValueError("prompt choices were recorded but the model names no samples field for them")
    annotated = 0
    for rows in samples.values():
        for row in rows:
            records = [choices.get(tuple(arg)) for arg in row.get("arguments", [])
                       if isinstance(arg, (list, tuple)) and len(arg) == 2]
            if not records or any(r is None for r in records):
                continue
            prompts = {r["prompt"] for r in records}
            if len(prompts) != 1:
                raise RuntimeError(f"doc {row.get('doc_id')}: its choices were scored under different prompts "
                                   f"{sorted(prompts)}; the choice must come from the context alone")
            row[field] = prompts.pop()
            if records[0]["loglikelihoods"] is not None:
                row[forced_field(field)] = [list(p) for p in zip(*(r["loglikelihoods"] for r in records))]
            annotated += 1
    return annotated


def pool_choices(choices: dict[tuple[str, str], ChoiceRecord], model) -> dict | None:
    """How often each prompt of a context-choosing model's pool was chosen on one task (one
    choice per question context) and the normalised entropy of those choices; None for a
    model without a pool."""
    if not choices:
        return None
    per_context = {args[0]: record["prompt"] for args, record in choices.items()}
    return choice_counts(list(per_context.values()), int(model.prompts.shape[0]))


class NonFiniteScoreError(FloatingPointError):
    """A model scored a question or document NaN or infinite: no result is written."""


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)


def check_finite_scores(samples: dict[str, list[dict]], what: str) -> None:
    """Refuse a NaN or infinite log-likelihood in any sample's filtered responses (a broken
    model or adapter), naming the task and document, before anything is written."""
    for name, rows in samples.items():
        for row in rows:
            bad = [v for v in _numbers(row.get("filtered_resps", row.get("resps"))) if not math.isfinite(v)]
            if bad:
                raise NonFiniteScoreError(f"{what}: task {name} document {row.get('doc_id')} was scored {bad[0]}; "
                                          "the model or its adapter produces non-finite log-likelihoods, so no "
                                          "result is written")


def _write_task(results: dict, out_json: str, out_samples: str, choices: dict | None = None,
                choice_field: str | None = None, what: str = "") -> None:
    """lm-eval's results JSON and its per-question samples (JSONL), each written atomically,
    once every score is finite."""
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples")
    check_finite_scores(samples, what or out_json)
    annotate_choices(samples, choices or {}, choice_field)
    with atomic_file(out_samples) as tmp:
        with tmp.open("w") as fh:
            for name, rows in samples.items():
                for row in rows:
                    fh.write(json.dumps({"task": name, **row}, default=handle_non_serializable) + "\n")
    write_json(out_json, json.loads(json.dumps(results, default=handle_non_serializable)))


def write_failed_tasks(tasks: list[dict], labels: dict, failure: str) -> dict[str, dict]:
    """For a model whose recovery training failed: per task, a results JSON that records the
    failure (``status`` failed, ``failure`` why, no result) and an empty samples file, at the
    paths a scored task would have, each written atomically."""
    out = {}
    for spec in tasks:
        task = spec["task"]
        out[task] = {"compress_recover": {**labels, "task": task, **failed_record(failure)},
                     "results": {}}
        with atomic_file(spec["out_samples"]) as tmp:
            tmp.write_text("")
        write_json(spec["out_json"], out[task])
    log.error("%s: recovery training failed (%s); %d task(s) recorded as failed, nothing evaluated", labels,
              failure, len(tasks))
    return out


def _reused(cache_dir: str, tasks: list[dict], checkpoint_dir: str, adapter_dir: str | None, runtime: Runtime,
            weights: str, out: dict, **settings) -> list[dict]:
    """The tasks of ``tasks`` still to score, each with its cache key (``cache_key``); every
    task whose scores are cached under the same key (same model, adapter, task files,
    settings and code; :mod:`.reuse`) is copied to its outputs and put into ``out``."""
    model = model_fingerprint(checkpoint_dir, adapter_dir)
    settings = {**settings, "seed": runtime.seed, "device": runtime.device, "dtype": runtime.dtype,
                "weights": weights, "trust_remote_code": runtime.trust_remote_code, "versions": library_versions()}
    todo = []
    for spec in tasks:
        key = task_key(model=model, task=spec["task"], task_dir=spec["task_dir"], settings=settings)
        cached = reuse(cache_dir, spec["out_json"], spec["out_samples"], spec["task"], key)
        if cached is None:
            todo.append({**spec, "cache_key": key})
        else:
            out[spec["task"]] = cached
    if len(todo) < len(tasks):
        log.info("%d of %d task(s) reused unchanged; scoring %s", len(tasks) - len(todo), len(tasks),
                 [s["task"] for s in todo] or "nothing")
    return todo


def task_outputs(tasks: list[dict], results: list[str], samples: list[str]) -> list[dict]:
    """A rule's task specs (its ``tasks`` param) with each task's two outputs, in order."""
    return [{**spec, "out_json": r, "out_samples": s} for spec, r, s in zip(tasks, results, samples, strict=True)]


def demonstration_seed(labels: dict, seed: int) -> int:
    """The seed that draws a run's few-shot demonstrations: the run's own seed (so a run's
    seeds 0 and 1 see different demonstrations, as two seeds of a trained method see
    different batches), else the config's ``seed``."""
    return seed if labels.get("seed") is None else int(labels["seed"])


def run_evaluation(*, checkpoint_dir: str, adapter_dir: str | None, tasks: list[dict], labels: dict,
                   batch_size: int, limit: int | None, num_fewshot: int, runtime: Runtime,
                   rolling_batch_size: int = 1, pool_ablation: bool = False,
                   cache_dir: str | None = None) -> dict[str, dict]:
    """Evaluate one model on every task of ``tasks`` in one process (the model is loaded once).

    ``tasks``: one dict per task with ``task``, ``task_dir`` (None: lm-eval's built-in
    tasks), ``out_json`` and ``out_samples``; each task gets its own results and samples
    files, exactly as if it were evaluated alone (lm-eval reseeds for every task). Every
    task is loaded before the model, so a missing or offline task fails first. Perplexity
    (``loglikelihood_rolling``) tasks run with ``rolling_batch_size``: their documents are
    long, and a padded batch's full-vocabulary logits, not the model, would dominate time
    and memory. ``pool_ablation``: a model choosing its prompt from a pool by reading the
    context is also scored under every prompt of its pool on multiple-choice tasks (recorded in the
    samples; what it returns to lm-eval is always the chosen prompt's score). An adapter whose
    training failed is not loaded: every task is recorded as failed (:func:`write_failed_tasks`).
    ``cache_dir`` (the rule's ``<run>/eval_cache``; None: no reuse): a task whose scores are
    cached there under an unchanged key (model, adapter, task files,
    settings, code: :mod:`.reuse`) is not scored again: a job rerun because a task was added
    or changed scores only that task; the model is not even loaded when nothing is left."""
    from lm_eval import simple_evaluate

    failure = adapter_failure(adapter_dir)
    if failure is not None:
        return write_failed_tasks(tasks, labels, failure)
    runtime = runtime.start()
    device, seed = runtime.device, runtime.seed
    weights = dense_on_cpu(device)
    out: dict[str, dict] = {}
    if cache_dir:
        tasks = _reused(cache_dir, tasks, checkpoint_dir, adapter_dir, runtime, weights, out, labels=labels,
                        batch_size=batch_size, rolling_batch_size=rolling_batch_size, limit=limit,
                        num_fewshot=num_fewshot, pool_ablation=pool_ablation)
        if not tasks:
            return out
    prepared = [(spec, *preflight_task(spec["task"], spec["task_dir"], num_fewshot)) for spec in tasks]
    start = time.perf_counter()
    model, tokenizer = load_recovered(checkpoint_dir, adapter_dir, device=device, dtype=runtime.dtype,
                                      trust_remote_code=runtime.trust_remote_code, weights=weights)
    load_s = time.perf_counter() - start
    log.info("loaded %s in %.1f s; %d task(s), limit=%s, %d-shot", labels, load_s, len(tasks), limit, num_fewshot)
    lm = scoring_lm(model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    for spec, manager, output_types in prepared:
        task = spec["task"]
        rolling = output_types == {"loglikelihood_rolling"}
        lm.batch_size_per_gpu = rolling_batch_size if rolling else batch_size
        lm.pool_ablation = pool_ablation and not rolling
        lm.choices.clear()
        start = time.perf_counter()
        shots = 0 if rolling else num_fewshot  # a perplexity document is scored without a context
        results = simple_evaluate(
            model=lm, tasks=[task], task_manager=manager, num_fewshot=shots, limit=limit,
            log_samples=True, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
            fewshot_random_seed=demonstration_seed(labels, seed), bootstrap_iters=1000,
        )
        results["compress_recover"] = {**labels, "task": task, "status": OK,
                                       "wall_time_s": round(time.perf_counter() - start, 2),
                                       "model_load_s": round(load_s, 2), "batch_size": lm.batch_size,
                                       "weights": weights, "scorer": type(lm).__name__,
                                       "pool_ablation": bool(lm.pool_ablation and lm.choices),
                                       "pool_choices": pool_choices(lm.choices, model),
                                       "num_fewshot": shots,
                                       "device": device, "dtype": runtime.dtype, "threads": runtime.threads,
                                       "library_versions": library_versions()}
        _write_task(results, spec["out_json"], spec["out_samples"], lm.choices, choice_field_of(model),
                    what=f"{labels}")
        log.info("%s: %s", task, results["results"].get(task))
        if cache_dir:
            store(cache_dir, spec["out_json"], spec["out_samples"], task, spec["cache_key"])
        out[task] = results
    return out
