"""Hand-made lm-eval sample rows with known answers, and the grids built from them, for the aggregate tests."""

from __future__ import annotations

import json

import numpy as np

from compress_recover.aggregate.stats.grid import build_grids
from compress_recover.aggregate.stats.questions import question_table, with_pooled_task

METHODS = {"none": "none", "lora": "lora", "idp": "idp", "pt": "prompt_tuning"}
SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
CHOICES = ["Paris", "Rome", "Vilnius", "Oslo"]


def sample_row(doc_id: int, scores, target: int = 0, choices=CHOICES, **extra) -> dict:
    """A multiple-choice sample row in the layout lm-eval 0.4 writes (our evaluate step
    dumps it as is): arguments (context, " " + choice), resps, filtered_resps, acc."""
    context = f"Question {doc_id}?\nAnswer:"
    pred = int(np.argmax(scores))
    norm = int(np.argmax([s / len(c) for s, c in zip(scores, choices, strict=True)]))
    return {"doc_id": doc_id, "doc": {"choices": list(choices), "answer": target}, "target": target,
            "arguments": [[context, f" {c}"] for c in choices],
            "resps": [[[s, False]] for s in scores], "filtered_resps": [[s, False] for s in scores],
            "filter": "none", "metrics": ["acc", "acc_norm"],
            "acc": float(pred == target), "acc_norm": float(norm == target), **extra}


def write_samples(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# 10 questions. base right on 0-7; compression loses 2-7 (6 lost) and gains 9.
BASE = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
COMP = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
LORA = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]   # wins back 2
IDP = [1, 0, 1, 1, 1, 0, 0, 0, 0, 1]    # wins back 2, 3, 4; breaks 1
IDP2 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]   # a second seed: wins back 2, 3


def _grids(tmp_path, cells):
    entries = []
    for (comp, rec, seed), answers in cells.items():
        labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed, "task": "capitals"}
        # each question its own right answer (a shared one would join the questions into
        # one resampling cluster, stats/clusters.py)
        rows = [sample_row(i, [0.0, -1.0, -1.0, -1.0] if a else [-1.0, 0.0, -1.0, -1.0],
                           choices=[f"{c} {i}" for c in CHOICES]) for i, a in enumerate(answers)]
        entries.append((labels, write_samples(tmp_path / f"{comp}-{rec}-{seed}.jsonl", rows)))
    return build_grids(with_pooled_task(question_table(entries, METHODS), ["capitals"]))


CELLS = {("none", "none", None): BASE, ("q", "none", None): COMP, ("q", "lora", 0): LORA, ("q", "idp", 0): IDP,
         ("q", "idp", 1): IDP2}


def damage_record(no_measurable_loss: bool = False, **values):
    """A :class:`Damage` with placeholder numbers (``values`` override them)."""
    from compress_recover.aggregate.stats.decisions import Damage

    fields = {"base_acc": 1.0, "compressed_acc": 1.0, "damage": 0.0, "damage_upper": 0.0, "damage_low": 0.0,
              "holm_level": 0.05, "confidence": 0.95, "p_value": 0.0, "p_holm": 0.0, "min_damage": 0.02,
              "no_measurable_loss": no_measurable_loss, "n": 10, "lost_only": 0, "gained_only": 0}
    return Damage(**{**fields, **values})


def decision_record(recovery: str, side: str, decision: str, status: str = "ok", *, ci=(0.1, 0.9), **values):
    """A :class:`Decision` of ``recovery`` on compression q with F = 0.5 at threshold 0.5,
    its interval ``ci`` at 95%; ``values`` set any other field (power, note, failure)."""
    from compress_recover.aggregate.stats.bootstrap import HolmTest
    from compress_recover.aggregate.stats.decisions import Decision

    return Decision("m", "q", recovery, recovery, side, decision, status=status, fraction=0.5, threshold=0.5,
                    test=HolmTest(0.5, 0.5, 0.05, False), ci_low=ci[0], ci_high=ci[1], **values)
