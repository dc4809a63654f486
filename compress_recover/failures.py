"""A failed run's status: how a training that diverged is recorded, carried through every stage, and shown.

A recovery training that diverges (a NaN or infinite loss or weight) saves no adapter. Its
folder holds a ``manifest.json`` with ``status`` :data:`FAILED` and the ``failure`` (why)
(:func:`failed_record`); every later stage reads that status through this module:

- recorded: the adapter's manifest (recover), each task's results JSON and the cost JSON
  (evaluate: :func:`failed_record` under the labels; empty samples), one ``status`` row per
  task in the summary;
- carried: the analysis sets the failed runs apart before any statistic
  (:func:`split_failed`), lists them (:data:`FAILED_RUN_COLUMNS`), groups them per recovery
  group at the final budget (:func:`failed_groups`) and keeps a group whose every run failed
  out of the Holm family;
- shown: every table cell a failed run would fill says :func:`shown` ("failed: <why>"),
  a group with some failed seeds says which (:func:`seeds_text`, :func:`failure_text`).
"""

from __future__ import annotations

from pathlib import Path

from .io import read_json
from .runs import FAILED, OK, RunId

NO_REASON = "no reason recorded"
FAILED_RUN_COLUMNS = ["model", "compression", "recovery", "seed", "run", "steps", "failure"]
SAMPLES_SUFFIX = ".samples.jsonl"

__all__ = ["FAILED", "OK", "NO_REASON", "FAILED_RUN_COLUMNS", "failed_record", "failure_of", "is_failed",
           "evaluation_failure", "split_failed", "failed_groups", "failure_text", "seeds_text", "shown"]


def failed_record(failure: str) -> dict:
    """The keys that mark a record (a manifest, a results JSON's labels, a cost JSON) as a failed run's."""
    return {"status": FAILED, "failure": failure}


def is_failed(record: dict | None) -> bool:
    """Whether ``record`` (a manifest, labels or cost JSON) records a failed run."""
    return bool(record) and record.get("status") == FAILED


def failure_of(record: dict | None) -> str | None:
    """Why ``record``'s run failed (its ``failure``), or None for a run that did not fail."""
    if not is_failed(record):
        return None
    return record.get("failure") or NO_REASON


def evaluation_failure(samples_file: str | Path) -> str | None:
    """Why the evaluation whose samples are ``samples_file`` (``<task>.samples.jsonl``) was not
    run, from its results JSON beside it (``<task>.json``: ``status`` failed, the run's
    recovery training failed); None for an evaluated run (or samples with no results beside)."""
    samples_file = Path(samples_file)
    if not samples_file.name.endswith(SAMPLES_SUFFIX):
        return None
    results = samples_file.with_name(samples_file.name[:-len(SAMPLES_SUFFIX)] + ".json")
    if not results.is_file():
        return None
    return failure_of(read_json(results).get("compress_recover", {}))


def split_failed(entries: list[tuple[dict, str]]) -> tuple[list[tuple[dict, str]], list[dict]]:
    """``entries`` ((labels, samples file)) as the evaluated ones and the failed runs: one
    record per run whose recovery training failed (:data:`FAILED_RUN_COLUMNS`, its tasks
    merged), in order."""
    kept, failed = [], {}
    for labels, samples_file in entries:
        failure = evaluation_failure(samples_file)
        if failure is None:
            kept.append((labels, samples_file))
            continue
        run = RunId.from_labels(labels).as_dict()
        failed.setdefault((run["model"], run["compression"], run["run"]),
                          {**{k: run[k] for k in FAILED_RUN_COLUMNS if k != "failure"}, "failure": failure})
    return kept, list(failed.values())


def failed_groups(failed: list[dict], final: int | None) -> dict[tuple, list[dict]]:
    """(model, compression, recovery) -> its runs whose training failed, at the final budget
    ``final`` (every run when None; a run without steps counts as the final budget's)."""
    out = {}
    for run in failed:
        if final is None or run["steps"] is None or run["steps"] == final:
            out.setdefault((run["model"], run["compression"], run["recovery"]), []).append(run)
    return out


def failure_text(runs: list[dict]) -> str:
    """Why ``runs`` (of one recovery group) failed: the reason, or each seed's where they differ."""
    reasons = list(dict.fromkeys(r["failure"] for r in runs))
    return reasons[0] if len(reasons) == 1 else "; ".join(f"seed {r['seed']}: {r['failure']}" for r in runs)


def seeds_text(runs: list[dict]) -> str:
    """"seed 1" or "seeds 0, 2": the seeds of ``runs``."""
    seeds = [str(r["seed"]) for r in runs]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"


def shown(why: str) -> str:
    """The text of a table cell whose run(s) failed to train."""
    return f"failed: {why}"
