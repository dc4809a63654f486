"""The README's "Which remedy first?" list, rendered from the results snapshot: per
compression, the trained and the training-free remedy with the highest raw F, and the best
one that does not need the uncompressed model where the training-free pick does."""

from __future__ import annotations

import copy

from compress_recover.aggregate.results_pages import render_remedy_advice
from compress_recover.docs import read_snapshot


def _snap(changes: dict) -> dict:
    """The committed snapshot with remedies' fields changed: {(compression, remedy): {field: value}}."""
    snap = copy.deepcopy(read_snapshot())
    model = next(iter(snap["models"].values()))
    for (comp, remedy), fields in changes.items():
        model["remedies"][comp][remedy].update(fields)
    return snap


def _line(text: str, compression: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"* **`{compression}`**"))


def test_the_highest_raw_f_of_each_kind_is_picked_with_its_interval_and_cost():
    text = render_remedy_advice(_snap({
        ("gptq-w3g64", "lora"): {"raw_f": 0.10, "raw_f_95": [0.0, 0.2]},
        ("gptq-w3g64", "idp"): {"raw_f": 0.61, "raw_f_95": [0.31, 0.88], "controlled_f": None},
        ("gptq-w3g64", "fewshot"): {"raw_f": 0.30},
        ("gptq-w3g64", "eora"): {"raw_f": 0.20}}))
    line = _line(text, "gptq-w3g64")
    trained, free = line.split("; training-free")[:2]
    assert "`idp` (input side; 11,520 extra parameters, 60 training steps): raw F 0.61 [0.31, 0.88]," in trained
    assert "`fewshot` (input side; no extra parameters, training-free)" in free
    assert "without the uncompressed model" not in line  # the pick needs nothing more


def test_a_reference_pick_is_followed_by_the_best_remedy_that_needs_no_uncompressed_model():
    text = render_remedy_advice(_snap({("wanda-s50", "eora"): {"raw_f": 0.9, "raw_f_95": [0.7, 1.0]}}))
    line = _line(text, "wanda-s50")
    assert "training-free: `eora` (parameters side; needs the uncompressed model;" in line
    assert line.index("without the uncompressed model: `fewshot`") > line.index("`eora`")


def test_the_closing_sentence_names_what_was_shown_to_recover_and_nothing_else():
    assert "no remedy was shown to win back 0.5 of the loss" in render_remedy_advice(read_snapshot())
    text = render_remedy_advice(_snap({("wanda-s50", "lora"): {"decision": "recovers"}}))
    assert "shown to win back at least 0.5 of the loss: `lora` on `wanda-s50`" in text
    assert f"commit {read_snapshot()['commit']}" in text
