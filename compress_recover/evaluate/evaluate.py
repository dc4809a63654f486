"""Rule ``evaluate``: lm-eval (EleutherAI harness) on the in-memory recovered model.

One job per evaluated model (model, compression, recovery) scores all its tasks, loading
the model once. The model object is handed to lm-eval's ``HFLM(pretrained=model)``, so
quantized checkpoints and adapters are evaluated exactly as the earlier stages left
them. Writes, per task, lm-eval's results JSON (with our labels and timing added) and
the per-question samples as JSONL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

from ..io import atomic_file, write_json
from ..modeling import dense_on_cpu
from ..recover.load import load_recovered
from ..runtime import Runtime, library_versions

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


def preflight_task(task: str, task_dir: str | None):
    """Load ``task`` once before the model, so a missing or offline task fails fast and clearly.

    Returns lm-eval's task manager and the set of the task's output types."""
    from lm_eval.tasks import get_task_dict

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
    return manager, set(_output_types(tasks))


def _output_types(tasks):
    for value in tasks.values():
        if isinstance(value, dict):
            yield from _output_types(value)
        else:
            yield value.OUTPUT_TYPE


@contextlib.contextmanager
def padding_aware_lm(model, **hflm_kwargs):
    """An lm-eval HFLM for ``model`` that hands the model the padding mask of every batch.

    lm-eval right-pads causal batches and calls the model without an attention mask:
    harmless for a causal LM, whose scored positions all precede the padding, but not
    for a model that reads every input token at once (one that says so with
    ``needs_padding_mask``, such as a prompt pool choosing its prompt from the input).
    This records the true lengths where lm-eval pads (``pad_and_concat``) and passes the
    mask on.
    """
    import torch
    from lm_eval.models import huggingface as hf

    pending: dict = {}

    class PaddingAwareLM(hf.HFLM):
        def _model_call(self, inps, attn_mask=None, labels=None):
            if attn_mask is not None:
                return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
            sizes = pending.pop("lengths", None)
            if sizes is None or len(sizes) != inps.shape[0]:
                raise RuntimeError("could not match lm-eval's padding to the batch it scores; refusing to "
                                   "evaluate a padding-sensitive model without its attention mask")
            sizes = torch.tensor(sizes, device=inps.device)
            mask = (torch.arange(inps.shape[1], device=inps.device)[None, :] < sizes[:, None]).long()
            with torch.no_grad():
                return self.model(inps, attention_mask=mask).logits

    original = hf.pad_and_concat

    def recording(max_length, tensors, padding_side="right"):
        pending["lengths"] = [t.shape[0] for t in tensors]
        return original(max_length, tensors, padding_side=padding_side)

    hf.pad_and_concat = recording
    try:
        yield PaddingAwareLM(pretrained=model, **hflm_kwargs)
    finally:
        hf.pad_and_concat = original


def scoring_lm(model, **hflm_kwargs):
    """The lm-eval model that scores ``model``: shared-prefix scoring (:mod:`.prefix_lm`), or
    stock HFLM with each batch's padding mask for a model that reads every input token."""
    from .prefix_lm import PrefixScoringLM

    if getattr(model, "needs_padding_mask", False):
        return padding_aware_lm(model, **hflm_kwargs)
    return contextlib.nullcontext(PrefixScoringLM(pretrained=model, **hflm_kwargs))


def _write_task(results: dict, out_json: str, out_samples: str) -> None:
    """lm-eval's results JSON and its per-question samples (JSONL), each written atomically."""
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples")
    with atomic_file(out_samples) as tmp:
        with tmp.open("w") as fh:
            for name, rows in samples.items():
                for row in rows:
                    fh.write(json.dumps({"task": name, **row}, default=handle_non_serializable) + "\n")
    write_json(out_json, json.loads(json.dumps(results, default=handle_non_serializable)))


def run_evaluation(*, checkpoint_dir: str, adapter_dir: str | None, tasks: list[dict], labels: dict,
                   batch_size: int, limit: int | None, num_fewshot: int, runtime: Runtime,
                   rolling_batch_size: int = 1) -> dict[str, dict]:
    """Evaluate one model on every task of ``tasks`` in one process (the model is loaded once).

    ``tasks``: one dict per task with ``task``, ``task_dir`` (None: lm-eval's built-in
    tasks), ``out_json`` and ``out_samples``; each task gets its own results and samples
    files, exactly as if it were evaluated alone (lm-eval reseeds for every task). Every
    task is loaded before the model, so a missing or offline task fails first. Perplexity
    (``loglikelihood_rolling``) tasks run with ``rolling_batch_size``: their documents are
    long, and a padded batch's full-vocabulary logits, not the model, would dominate time
    and memory."""
    from lm_eval import simple_evaluate

    runtime = runtime.start()
    device, seed = runtime.device, runtime.seed
    prepared = [(spec, *preflight_task(spec["task"], spec["task_dir"])) for spec in tasks]
    start = time.perf_counter()
    weights = dense_on_cpu(device)
    model, tokenizer = load_recovered(checkpoint_dir, adapter_dir, device=device, dtype=runtime.dtype,
                                      trust_remote_code=runtime.trust_remote_code, weights=weights)
    load_s = time.perf_counter() - start
    log.info("loaded %s in %.1f s; %d task(s), limit=%s, %d-shot", labels, load_s, len(tasks), limit, num_fewshot)
    out = {}
    with scoring_lm(model, tokenizer=tokenizer, batch_size=batch_size, device=device) as lm:
        for spec, manager, output_types in prepared:
            task = spec["task"]
            lm.batch_size_per_gpu = rolling_batch_size if output_types == {"loglikelihood_rolling"} else batch_size
            start = time.perf_counter()
            results = simple_evaluate(
                model=lm, tasks=[task], task_manager=manager, num_fewshot=num_fewshot, limit=limit,
                log_samples=True, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                fewshot_random_seed=seed, bootstrap_iters=1000,
            )
            results["compress_recover"] = {**labels, "task": task, "wall_time_s": round(time.perf_counter() - start, 2),
                                           "model_load_s": round(load_s, 2), "batch_size": lm.batch_size,
                                           "weights": weights, "scorer": type(lm).__name__,
                                           "device": device, "threads": runtime.threads,
                                           "library_versions": library_versions()}
            _write_task(results, spec["out_json"], spec["out_samples"])
            log.info("%s: %s", task, results["results"].get(task))
            out[task] = results
    return out
