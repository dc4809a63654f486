"""Per-task reuse of evaluations: a task is scored again only when its model, adapter, task files or settings changed.

An evaluate job scores every task of one model, and Snakemake reruns the whole job when a
task is added or changed (its outputs change). So that such a rerun costs only what
changed, each scored task is also kept in a cache the rule names (not an output of the job,
so Snakemake leaves it in place), ``<run>/eval_cache/<task>/<key>/`` (results JSON and
samples, with a manifest of their sha256), where ``key`` is the sha256 of everything the task's scores depend on
(:func:`task_key`):

- the model: the sha256 of every file of the checkpoint and of the adapter folder,
  the weights verified against the hashes their stage recorded (never time stamps alone);
- the task: its name and the sha256 of every file of its folder (a built-in lm-eval task:
  its name and lm-eval's version);
- the settings: the run's labels, batch sizes, limit, few-shot count, the pool ablation,
  seed, device, dtype, weights mode, and the library versions;
- the code: the sha256 of the package's source, so a changed scorer never reuses.

A cached entry is reused only when its key matches and its files verify against its own
manifest; otherwise the task is scored and the entry written (atomically) afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from ..io import (ChangedFileError, atomic_dir, atomic_file, cached_sha256, read_json, sha256_file, verify_folder,
                  write_manifest)

log = logging.getLogger(__name__)

RESULTS, SAMPLES = "results.json", "samples.jsonl"
PACKAGE = Path(__file__).resolve().parents[1]


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _all_files(folder: Path) -> dict[str, str]:
    """sha256 of every file of ``folder`` (recursively; hidden temporaries left out), by relative path."""
    return {str(f.relative_to(folder)): sha256_file(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and not f.name.startswith(".")}


def folder_fingerprint(folder: str | Path | None) -> dict | None:
    """What a stage folder's content is: the weights' and data's sha256 its manifest recorded
    (verified against the files first, :func:`compress_recover.io.verify_folder`) and the
    sha256 of its other small files (configs, tokenizer); None for no folder."""
    if folder is None:
        return None
    folder = Path(folder)
    verify_folder(folder)
    manifest = folder / "manifest.json"
    recorded = (read_json(manifest).get("files_sha256") or {}) if manifest.is_file() else {}
    others = {str(f.relative_to(folder)): cached_sha256(f) for f in sorted(folder.rglob("*"))
              if f.is_file() and f.name != "manifest.json" and not f.name.startswith(".")
              and str(f.relative_to(folder)) not in recorded}
    return {"recorded": recorded, "other": others}


def source_digest() -> str:
    """sha256 over the package's Python source (any code change invalidates every entry)."""
    return _digest({str(f.relative_to(PACKAGE)): sha256_file(f) for f in sorted(PACKAGE.rglob("*.py"))})


def task_key(*, model: dict, task: str, task_dir: str | None, settings: dict) -> str:
    """The cache key of one task's scores: ``model`` (:func:`model_fingerprint`), the task's
    name and folder content, ``settings`` (everything else the scores depend on)."""
    task_files = _all_files(Path(task_dir)) if task_dir else None
    return _digest({"model": model, "task": task, "task_files": task_files, "settings": settings})


def model_fingerprint(checkpoint_dir: str, adapter_dir: str | None) -> dict:
    """The checkpoint's and the adapter's content, and the package's source."""
    return {"checkpoint": folder_fingerprint(checkpoint_dir), "adapter": folder_fingerprint(adapter_dir),
            "source": source_digest()}


def entry_dir(cache_dir: str, task: str, key: str) -> Path:
    """``<cache_dir>/<task>/<key>``: one task's cached scores."""
    return Path(cache_dir) / task / key


def reuse(cache_dir: str, out_json: str, out_samples: str, task: str, key: str) -> dict | None:
    """The cached results of ``task`` under ``key``, copied to the job's outputs (atomically),
    or None when there is no entry or it does not verify (it is then removed)."""
    entry = entry_dir(cache_dir, task, key)
    if not (entry / "manifest.json").is_file():
        return None
    try:
        verify_folder(entry)
        if sha256_file(entry / RESULTS) != read_json(entry / "manifest.json").get("results_sha256"):
            raise ChangedFileError(f"{entry / RESULTS}: its sha256 differs from the one recorded")
        results = read_json(entry / RESULTS)
    except (ChangedFileError, OSError, ValueError) as err:
        log.warning("%s: cached scores of %s do not verify (%s); scoring again", entry, task, err)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    for source, target in ((entry / RESULTS, out_json), (entry / SAMPLES, out_samples)):
        with atomic_file(target) as tmp:
            shutil.copyfile(source, tmp)
    log.info("%s: reused the scores cached under %s (model, task, settings and code unchanged)", task, entry)
    return results


def store(cache_dir: str, out_json: str, out_samples: str, task: str, key: str) -> None:
    """Keep the job's freshly written outputs of ``task`` under ``key`` (atomically; the
    samples and results JSON hashed into the entry's manifest, which reuse verifies)."""
    entry = entry_dir(cache_dir, task, key)
    with atomic_dir(entry) as tmp:
        shutil.copyfile(out_json, tmp / RESULTS)
        shutil.copyfile(out_samples, tmp / SAMPLES)
        write_manifest(tmp, {"task": task, "key": key, "results_sha256": sha256_file(tmp / RESULTS)})
    for stale in entry.parent.iterdir():  # one entry per task: older keys are of an older model or task
        if stale != entry and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
