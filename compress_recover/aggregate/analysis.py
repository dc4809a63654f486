"""Rule ``analysis``: the statistics and the verdict, written to ``results/analysis/``.

Recovery fractions with bootstrap intervals, knowledge flips, McNemar tests and the
verdict as JSON (the statistics are in :mod:`.stats`), after checking that no training
or held-out passage names a question's subject together with its answer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..data.leaks import LeakFilter, pairs_from_tasks
from ..io import atomic_file, read_json, read_jsonl, write_json
from .stats import correctness_table, flips, paired_tests, recovery_fractions, verdict_rule, verdicts, with_pooled_task

log = logging.getLogger(__name__)


class LeakError(RuntimeError):
    pass


def check_leaks(text_dir: str | Path, task_dirs: list[str]) -> dict:
    """Fail if any kept passage (train or held-out) names a question's subject and answer."""
    leak_filter = LeakFilter(pairs_from_tasks(task_dirs))
    hits = []
    for split in ("train", "heldout"):
        for row in read_jsonl(Path(text_dir) / f"{split}.jsonl"):
            found = leak_filter.leaks(row["text"])
            if found:
                hits.append({"split": split, "id": row["id"], "leaks": found[:3]})
    if hits:
        raise LeakError(f"{len(hits)} passage(s) of {text_dir} name a question's subject and answer together, "
                        f"e.g. {hits[:3]}; rebuild the text (rule text) with the current knowledge tasks")
    report = read_json(Path(text_dir) / "leak_report.json")
    return {"dropped_leaks": report["dropped_leaks"], "passages_total": report["passages_total"],
            "train_passages": report["train_passages"], "heldout_passages": report["heldout_passages"],
            "fact_pairs_checked": len(leak_filter.pairs), "remaining_leaks": 0}


def run_analysis(*, samples: list[tuple[dict, str]], knowledge_tasks: list[str], task_dirs: list[str],
                 text_dir: str, methods: dict[str, str], sides: dict[str, str], alpha: float,
                 min_recovery_fraction: float, bootstrap_iters: int, budget: dict, seed: int, out_dir: str) -> dict:
    """``samples``: (labels, samples.jsonl) of every knowledge-task evaluation."""
    leaks = check_leaks(text_dir, task_dirs)
    table = with_pooled_task(correctness_table(samples), knowledge_tasks)
    fractions = recovery_fractions(table, iters=bootstrap_iters, seed=seed)
    flip_table = flips(table)
    tests = paired_tests(table, methods=methods, sides=sides)
    verdict = {
        "rule": verdict_rule(sides),
        "thresholds": {"alpha": alpha, "min_recovery_fraction": min_recovery_fraction},
        "budget": budget,
        "leaks": leaks,
        "verdicts": verdicts(fractions, tests, methods=methods, sides=sides, alpha=alpha,
                             min_recovery_fraction=min_recovery_fraction, budget=budget),
    }
    out = Path(out_dir)
    for name, frame in (("recovery_fraction", fractions), ("flips", flip_table), ("paired_tests", tests)):
        with atomic_file(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "verdict.json", json.loads(json.dumps(verdict, default=float)))
    for v in verdict["verdicts"]:
        log.info("%s / %s: %s (%s)", v["model"], v["compression"], v["verdict"], v["reason"])
    return verdict
