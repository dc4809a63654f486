"""A prompt pool's test answers against its prompts' training, and its extra parameters used,
on hand-built question tables and pool records with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compress_recover.aggregate.stats.costs import params_used
from compress_recover.aggregate.stats.pool_flags import (MIN_EXAMPLES, chosen_on_test, pool_parameters,
                                                        undertrained_runs)
from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE
from compress_recover.prompt_choice import examples_per_prompt, pool_summary

NAN = float("nan")


def _questions(rows: list[tuple]) -> pd.DataFrame:
    """A question table: (compression, run, task, split, pool_choice) per row, model m."""
    return pd.DataFrame([{"model": "m", "compression": c, "recovery": run.split(".")[0], "run": run, "task": t,
                          "split": s, "pool_choice": p} for c, run, t, s, p in rows])


def test_the_prompts_of_a_runs_test_questions_each_question_once():
    table = _questions([
        ("q", "idp.seed0", "capitals", "test", 1.0), ("q", "idp.seed0", "capitals", "test", 3.0),
        ("q", "idp.seed0", "capitals", "dev", 2.0),  # a dev question chose settings: not counted
        ("q", "idp.seed0", ALL_KNOWLEDGE, "test", 1.0),  # the pooled task's copy of a question
        ("q", "idp.seed0", "currencies", "test", 0.0),
        ("q", "lora.seed0", "capitals", "test", NAN),  # no pool
        ("w", "idp.seed0", "capitals", "test", 2.0)])
    assert chosen_on_test(table) == {("m", "q", "idp.seed0"): [1, 3, 0], ("m", "w", "idp.seed0"): [2]}


def test_training_examples_per_prompt_from_the_manifest_or_cost_json():
    record = {"trained_with": [[1, 0, 3], [2, 1, 0]]}  # per step, per prompt (IDPModel.history)
    assert examples_per_prompt(record) == [3, 1, 3]
    assert examples_per_prompt(pool_summary(record)) == [3, 1, 3]  # cost.json's "3/1/3"
    assert examples_per_prompt({}) == []


def test_a_run_is_flagged_when_a_prompt_below_the_threshold_answered_a_test_question():
    # prompt 0 trained with 15 examples (one below 16), prompt 1 with exactly 16
    choices = {("m", "q", "idp.seed0"): [0, 1, 1, 3], ("m", "q", "idp.seed1"): [1, 1, 3]}
    examples = {("m", "q", "idp.seed0"): [15, 16, 0, 40], ("m", "q", "idp.seed1"): [15, 16, 0, 40]}
    runs = undertrained_runs(choices, examples)
    one, other = runs[("m", "q", "idp.seed0")], runs[("m", "q", "idp.seed1")]
    assert (one.questions, one.undertrained, one.fewest_examples, one.prompts_used) == (4, 1, 15, (0, 1, 3))
    assert one.flagged and one.min_examples == MIN_EXAMPLES == 16
    # 16 examples is enough (`<`, not `<=`), and more is never flagged (not `>=`)
    assert (other.undertrained, other.fewest_examples, other.flagged) == (0, 16, False)
    # the threshold is the caller's (report.pool_min_examples)
    assert undertrained_runs(choices, examples, min_examples=41)[("m", "q", "idp.seed0")].undertrained == 4
    assert not undertrained_runs(choices, examples, min_examples=15)[("m", "q", "idp.seed0")].flagged


def test_the_routing_studys_hard_pools():
    """docs/idp.md's study (hard routing, 240 training examples, 770 test questions): on GPTQ
    768 questions went to a prompt trained with 127 examples and 2 to one never trained; on
    Wanda 663 went to a prompt never trained, 106 to one trained with 222, 1 to one with 9."""
    choices = {("m", "gptq", "hard.seed0"): [0] * 768 + [1] * 2,
               ("m", "wanda", "hard.seed0"): [1] * 663 + [2] * 106 + [3]}
    examples = {("m", "gptq", "hard.seed0"): [127, 0, 2, 111], ("m", "wanda", "hard.seed0"): [9, 0, 222, 9]}
    runs = undertrained_runs(choices, examples)
    gptq, wanda = runs[("m", "gptq", "hard.seed0")], runs[("m", "wanda", "hard.seed0")]
    assert (gptq.undertrained, gptq.questions, gptq.fewest_examples, gptq.flagged) == (2, 770, 0, True)
    assert (wanda.undertrained, wanda.questions, wanda.fewest_examples) == (664, 770, 0)


def test_a_run_without_its_pools_training_or_with_a_prompt_it_lacks_is_refused():
    with pytest.raises(ValueError, match="m/q/idp.seed0: .* no training count of that pool"):
        undertrained_runs({("m", "q", "idp.seed0"): [0]}, {("m", "q", "idp.seed1"): [20]})
    with pytest.raises(ValueError, match="answered by prompt 2, but the pool's training counts"):
        undertrained_runs({("m", "q", "idp.seed0"): [0, 2]}, {("m", "q", "idp.seed0"): [20, 20]})


def test_a_pools_parameters_allocated_and_used():
    # the demo's pool: 4 prompts of 5 tokens of width 576; two prompts answered
    params = pool_parameters(4, 5 * 576, [1, 1, 2, 1])
    assert (params.allocated, params.used) == (4 * 5 * 576, 2 * 5 * 576)
    assert pool_parameters(4, 10, [3] * 100).used == 10  # a collapsed pool: one prompt's
    assert pool_parameters(4, 10, []).used == 0


def test_the_cost_tables_extra_parameters_used():
    pool = {"routing": "hard", "trained_with": "131/109"}  # cost.json's pool: two prompts
    idp = {"model": "m", "compression": "q", "recovery": "idp", "run": "idp.seed0", "extra_params": 1000,
           "pool": pool}
    assert params_used(idp, [0, 0, 0]) == 500 and params_used(idp, [1, 0]) == 1000
    assert math.isnan(params_used(idp, None))  # no test question: unknown
    lora = {"model": "m", "compression": "q", "recovery": "lora", "extra_params": 21000, "pool": None}
    assert params_used(lora, None) == 21000  # every other method: all its extra parameters
    with pytest.raises(ValueError, match="1001 extra parameters do not split into 2 prompts"):
        params_used({**idp, "extra_params": 1001}, [0])
