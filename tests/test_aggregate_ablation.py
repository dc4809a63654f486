"""aggregate.stats.ablation: the prompt-pool ablation's numbers on pools with known answers."""

from __future__ import annotations

import numpy as np

from compress_recover.aggregate.stats.ablation import pool_ablation


def test_prompt_pool_ablation_numbers(tmp_path):
    import pandas as pd

    def frame(chosen, forced, correct):
        return pd.DataFrame({"model": "m", "compression": "q", "recovery": "idp", "seed": 0, "run": "idp.seed0",
                             "task": "t", "doc_id": [str(i) for i in range(len(chosen))], "correct": correct,
                             "p_right": 0.5, "p_right_norm": 0.5, "pool_choice": np.asarray(chosen, dtype=float),
                             "pool_correct": forced})

    # prompt 2 answers every question right, the others none; the model chose 2 on half the questions
    n = 40
    chosen = [2] * 20 + [0] * 10 + [1] * 10
    table = frame(chosen, ["0010"] * n, [True] * 20 + [False] * 20)
    (row,) = pool_ablation(table, seed=0).itertuples()
    assert row.chosen_counts == "10/10/20/0" and row.pool_size == 4
    assert row.acc_as_chosen == 0.5 and row.acc_chosen_forced == 0.5
    assert row.acc_random_expected == 0.25 and row.acc_best_fixed_crossfit == 1.0 and row.best_fixed_prompts == "2|2"
    assert row.acc_per_prompt == "0.000/0.000/1.000/0.000"
    # shares 1/4, 1/4, 1/2 of 4 prompts: (2 * 0.25 ln 4 + 0.5 ln 2) / ln 4 = 0.75
    assert row.entropy == 0.75
    # the questions routed to prompt 2 it answers right, the others there none; prompts 0 and 1
    # answer none of theirs, prompt 2 all of them (1/3 of the other prompts); prompt 3 was never chosen
    assert row.routed_own == "0.000/0.000/1.000/-" and row.routed_others == "0.333/0.333/0.000/-"
    assert "acc_any_prompt" not in row._fields   # dropped: a per-question oracle, not cross-fittable
    assert 0.1 < row.acc_random_prompt < 0.4   # one seeded draw per question
    # prompts that are all coin flips: the in-sample best is optimistic, the cross-fitted one is not
    rng = np.random.default_rng(5)
    n = 400
    forced = ["".join(rng.choice(["0", "1"], 8)) for _ in range(n)]
    table = frame(list(rng.integers(0, 8, n)), forced, [f[0] == "1" for f in forced])
    (row,) = pool_ablation(table, seed=0).itertuples()
    assert row.acc_best_fixed_in_sample > row.acc_random_expected + 0.02
    assert abs(row.acc_best_fixed_crossfit - row.acc_random_expected) < 0.05
    assert (pool_ablation(table, seed=0).acc_random_prompt == row.acc_random_prompt).all()  # seeded


def test_a_run_over_several_tasks_gets_a_pooled_row():
    import pandas as pd

    from compress_recover.aggregate.stats.ablation import POOLED

    rows = [{"model": "m", "compression": "q", "recovery": "idp", "seed": 0, "run": "idp.seed0", "task": t,
             "doc_id": str(i), "correct": True, "p_right": 0.5, "p_right_norm": 0.5, "pool_choice": float(c),
             "pool_correct": "11"} for t, c in (("a", 0), ("a", 0), ("b", 1), ("b", 0)) for i in range(1)]
    table = pool_ablation(pd.DataFrame(rows), seed=0)
    assert list(table.task) == ["a", "b", POOLED]
    pooled = table.iloc[-1]
    assert pooled.n == 4 and pooled.chosen_counts == "3/1" and pooled.entropy == round(
        -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2), 4)


def test_an_evaluation_counts_one_choice_per_question_context():
    """The results JSON's pool_choices: one choice per question context (its answer choices
    share it), counted per prompt, with H / log m."""
    import torch

    from compress_recover.evaluate.evaluate import pool_choices

    class Pool:
        prompts = torch.zeros(3, 2, 4)

    choices = {("Q1", " a"): {"prompt": 2}, ("Q1", " b"): {"prompt": 2}, ("Q2", " a"): {"prompt": 0},
               ("Q3", " a"): {"prompt": 2}}
    assert pool_choices(choices, Pool()) == {"counts": [1, 0, 2],
                                             "entropy": round(-(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3))
                                                              / np.log(3), 4)}
    assert pool_choices({}, Pool()) is None
