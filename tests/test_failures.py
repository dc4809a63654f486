"""failures: a failed run's status recorded, read back, carried per recovery group and shown."""

from __future__ import annotations

import json

from compress_recover.failures import (NO_REASON, evaluation_failure, failed_groups, failed_record, failure_of,
                                       failure_text, is_failed, seeds_text, shown, split_failed)


def test_a_failure_is_recorded_read_and_shown():
    record = {"method": "lora", **failed_record("loss is nan at step 3")}
    assert is_failed(record) and failure_of(record) == "loss is nan at step 3"
    assert failure_of({"status": "failed"}) == NO_REASON and failure_of({"status": "ok"}) is None
    assert not is_failed(None) and shown("why") == "failed: why"


def test_failed_evaluations_are_set_apart_and_grouped(tmp_path):
    labels = {"model": "m", "compression": "q", "recovery": "lora", "seed": 1, "steps": 60, "task": "t"}
    (tmp_path / "t.json").write_text(json.dumps({"compress_recover": {**labels, **failed_record("nan")}}))
    (tmp_path / "t.samples.jsonl").write_text("")
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "t.json").write_text(json.dumps({"compress_recover": {**labels, "status": "ok"}}))
    assert evaluation_failure(tmp_path / "t.samples.jsonl") == "nan"
    assert evaluation_failure(ok / "t.samples.jsonl") is None and evaluation_failure(tmp_path / "x.json") is None
    kept, failed = split_failed([(labels, str(tmp_path / "t.samples.jsonl")), (labels, str(ok / "t.samples.jsonl"))])
    assert kept == [(labels, str(ok / "t.samples.jsonl"))]
    assert failed == [{"model": "m", "compression": "q", "recovery": "lora", "seed": 1, "run": "lora.seed1",
                       "steps": 60, "failure": "nan"}]
    other = {**failed[0], "seed": 2, "run": "lora.seed2", "failure": "inf", "steps": 30}
    assert list(failed_groups([*failed, other], 60)) == [("m", "q", "lora")]
    assert len(failed_groups([*failed, other], None)[("m", "q", "lora")]) == 2
    assert failure_text([*failed, other]) == "seed 1: nan; seed 2: inf" and failure_text(failed) == "nan"
    assert seeds_text(failed) == "seed 1" and seeds_text([*failed, other]) == "seeds 1, 2"
