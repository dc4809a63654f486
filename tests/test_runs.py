"""runs: a run's name, its parse, its budget in tokens, and its identity from evaluation labels."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compress_recover.runs import (BASE, COMMIT_SHA, RunId, budget_tokens, checkpoint_label, optional_int, parse_run,
                                   reserved_mark, run_name)


def test_run_names_round_trip():
    assert run_name("lora", 0) == "lora.seed0" and run_name("lora-kd", 2, 30) == "lora-kd.seed2.step30"
    assert run_name(BASE) == "none"
    for group, seed, steps in (("lora", 0, None), ("idp.x", 3, 15), ("a-b", 12, 600)):
        assert parse_run(run_name(group, seed, steps)) == (group, seed, steps)
    assert parse_run("none") == ("none", None, None)
    with pytest.raises(ValueError, match="needs a seed"):
        run_name("lora", None, 30)


def test_reserved_marks_checkpoint_labels_tokens_and_revisions():
    assert "marks a run's seed" in reserved_mark("a.seed1") and "budget checkpoint" in reserved_mark("a.step")
    assert reserved_mark("lora-kd") is None
    assert checkpoint_label("lora", 30) == "lora@30"
    budget = {"steps": 60, "batch_size": 4, "seq_len": 128}
    assert budget_tokens(60, budget) == 60 * 4 * 128 and math.isnan(budget_tokens(None, budget))
    assert math.isnan(budget_tokens(60, None)) and math.isnan(budget_tokens(float("nan"), budget))
    assert COMMIT_SHA.match("0" * 40) and not COMMIT_SHA.match("main")


def test_run_identity_from_labels():
    run = RunId.from_labels({"model": "m", "compression": "q", "recovery": "lora", "seed": 1.0, "task": "t"})
    assert run.as_dict() == {"model": "m", "compression": "q", "recovery": "lora", "seed": 1, "steps": None,
                             "run": "lora.seed1"}
    assert RunId("m", "none", "none").run == "none" and not RunId("m", "none", "none").trained
    assert RunId("m", "q", "lora", 0, 30, "lora.seed0.step30").steps == 30
    assert optional_int(pd.NA) is None and optional_int(float("nan")) is None and optional_int(2.0) == 2
