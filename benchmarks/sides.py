"""Shared by the benchmarks: run each side of a comparison in its own fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence


def run_sides(script: str, names: Sequence[str], argv: Sequence[str], repeats: int,
              timeout: int = 7200) -> dict[str, list]:
    """``python script --side NAME *argv`` for every side, sides alternated over ``repeats``
    rounds (so drift on a noisy machine hits all alike); each prints one JSON value as its
    last line. Returns side -> the values of its rounds; a failing side stops the benchmark."""
    values: dict[str, list] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            proc = subprocess.run([sys.executable, script, "--side", name, *argv], capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode:
                raise SystemExit(f"{name} side failed:\n{proc.stderr[-3000:]}")
            values[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return values


def build_tasks(folder: str, tasks: Sequence[str], questions: int | None) -> None:
    """The knowledge tasks ``tasks`` built into ``folder/<task>`` as the pipeline builds them
    (4 choices, seed 0; ``questions`` per task, None or 0: all)."""
    from compress_recover.data.knowledge_task import build_knowledge_task

    for task in tasks:
        build_knowledge_task(task=task, out_dir=f"{folder}/{task}", num_choices=4, seed=0,
                             max_questions=questions or None)


def task_requests(folder: str, tasks: Sequence[str]) -> tuple[list, dict]:
    """lm-eval's requests (instances) of the tasks built in ``folder`` (:func:`build_tasks`), in
    order, and each question's target as the task's YAML states it ("<task>/<doc_id>" -> target)."""
    from pathlib import Path

    from lm_eval.tasks import TaskManager, get_task_dict

    instances, targets = [], {}
    for task in tasks:
        manager = TaskManager(include_path=str(Path(folder) / task), include_defaults=False)
        (obj,) = get_task_dict([task], manager).values()
        obj.build_all_requests(rank=0, world_size=1)
        instances.extend(obj.instances)
        targets.update({f"{task}/{inst.doc_id}": obj.doc_to_target(inst.doc) for inst in obj.instances})
    return instances, targets


def lora_step_times(model, blocks, config, *, steps: int, batch_size: int, device: str) -> list[float]:
    """Seconds of every step of our training loop (``compress_recover.recover.train.train_loop``)
    on ``model`` (a LoRA model, its ``config`` the parsed method config): each step ends when
    AdamW's step returns, timed by wrapping it for the length of the loop (restored after)."""
    import time

    import torch

    from compress_recover.recover.train import train_loop

    times: list[float] = []
    original = torch.optim.AdamW.step

    def timed_step(self, *a, **kw):  # the end of every training step
        out = original(self, *a, **kw)
        times.append(time.perf_counter())
        return out

    torch.optim.AdamW.step = timed_step
    try:
        start = time.perf_counter()
        train_loop(model, blocks, steps=steps, batch_size=batch_size, lr=config.lr,
                   weight_decay=config.weight_decay, seed=0, device=device, log_every=10**9)
    finally:
        torch.optim.AdamW.step = original
    ends = [start, *times]
    return [b - a for a, b in zip(ends, ends[1:])]
