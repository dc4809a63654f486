"""aggregate.stats.leak_check: the analysis refuses a kept passage that names a question's subject and answer."""

from __future__ import annotations

import json

import pytest


def test_leak_check_fails_when_a_kept_passage_names_subject_and_answer(tmp_path):
    from compress_recover.aggregate.stats.leak_check import LeakError, check_leaks

    task = tmp_path / "capitals"
    task.mkdir()
    (task / "capitals.jsonl").write_text(json.dumps({"subject": "Lithuania", "answer_text": "Vilnius"}) + "\n")
    text = tmp_path / "text"
    text.mkdir()
    (text / "leak_report.json").write_text(json.dumps({"dropped_leaks": 3, "passages_total": 10,
                                                       "train_passages": 6, "heldout_passages": 1}))
    (text / "heldout.jsonl").write_text(json.dumps({"id": 1, "text": "Rain fell on Lithuania."}) + "\n")
    (text / "train.jsonl").write_text(json.dumps({"id": 0, "text": "The weather was mild."}) + "\n")
    assert check_leaks(text, [str(task)])["remaining_leaks"] == 0
    (text / "train.jsonl").write_text(json.dumps({"id": 7, "text": "Vilnius is the capital of Lithuania."}) + "\n")
    with pytest.raises(LeakError, match="1 passage"):
        check_leaks(text, [str(task)])
