"""aggregate.stats.distance and the KL column: the distance beside the flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samples import CHOICES, METHODS, sample_row, write_samples


def test_weighted_auc_is_the_mann_whitney_probability_and_weights_repeat_cases():
    from compress_recover.aggregate.stats.distance import weighted_auc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # ties on purpose
    positive = rng.random(60) < 0.4
    pos, neg = scores[positive], scores[~positive]
    by_hand = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert weighted_auc(scores, positive, np.ones(60)) == pytest.approx(by_hand)
    # integer weights are repeated cases
    w = rng.integers(0, 3, size=60)
    rep = np.repeat(np.arange(60), w)
    pos, neg = scores[rep][positive[rep]], scores[rep][~positive[rep]]
    by_hand = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    both = weighted_auc(scores, positive, np.stack([np.ones(60), w]))
    assert both[1] == pytest.approx(by_hand) and both.shape == (2,)
    assert math.isnan(weighted_auc(scores, np.zeros(60, bool), np.ones(60)))


def _logits(p):
    return list(np.log(np.asarray(p, dtype=float)))


def test_kl_to_the_base_model_over_the_choices_and_the_distance_table(tmp_path):
    from compress_recover.aggregate.stats.distance import distance_table
    from compress_recover.aggregate.stats.grid import build_grids
    from compress_recover.aggregate.stats.questions import question_table, with_pooled_task

    rng = np.random.default_rng(1)
    n = 40
    base = rng.dirichlet(np.ones(4) * 2, size=n)
    base[:, 0] += 3  # the base model right (choice 0) on every question
    base /= base.sum(axis=1, keepdims=True)
    comp = base.copy()
    lost = np.arange(n) < 12  # 12 questions lost: moved far, to choice 1
    comp[lost] = [0.05, 0.85, 0.05, 0.05]
    comp[~lost] = 0.9 * base[~lost] + 0.1 * 0.25  # the others moved a little
    entries = []
    for name, comp_name, probs in (("b", "none", base), ("c", "q", comp)):
        rows = [sample_row(i, _logits(p), choices=[f"{c} {i}" for c in CHOICES]) for i, p in enumerate(probs)]
        labels = {"model": "m", "compression": comp_name, "recovery": "none", "seed": None, "task": "capitals"}
        entries.append((labels, write_samples(tmp_path / f"{name}.jsonl", rows)))
    table = question_table(entries, METHODS)
    assert (table[table.compression == "none"].kl_base == 0).all()
    got = table[table.compression == "q"].sort_values("doc_id", key=lambda d: d.astype(int)).kl_base.to_numpy()
    want = (base * np.log(base / comp)).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    grids = build_grids(with_pooled_task(table, ["capitals"]))
    frame = distance_table(grids, iters=300, seed=0)
    row = frame[(frame.task == "capitals") & (frame.compression == "q")].iloc[0]
    assert (row.n, row.at_risk, row.lost) == (n, n, 12)
    assert row.kl_mean == pytest.approx(want.mean()) and row.kl_p90 == pytest.approx(np.quantile(want, 0.9))
    assert row.auc_lost == 1.0 and row.auc_low <= 1.0 == row.auc_high
    # the pooled task has the same questions: the same numbers
    pooled = frame[frame.task == "all_knowledge"].iloc[0]
    assert pooled.kl_mean == pytest.approx(row.kl_mean) and pooled.lost == 12


def test_an_auc_interval_needs_lost_questions_and_defined_resamples():
    from compress_recover.aggregate.stats.distance import auc_interval

    draws = np.linspace(0.6, 0.9, 1000)
    low, high = auc_interval(draws, lost=10)
    assert 0.6 < low < high < 0.9
    assert all(math.isnan(x) for x in auc_interval(draws, lost=1))
    holes = draws.copy()
    holes[::10] = np.nan  # 10% of the resamples drew no lost question
    assert all(math.isnan(x) for x in auc_interval(holes, lost=3))
    holes = draws.copy()
    holes[::50] = np.nan  # 2%: the interval of the defined ones, never -inf
    low, high = auc_interval(holes, lost=3)
    assert math.isfinite(low) and math.isfinite(high)
