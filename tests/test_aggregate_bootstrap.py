"""aggregate.bootstrap: paired seeded draws, bounds that agree with their p-values, Holm."""

from __future__ import annotations

import numpy as np
import pytest

from compress_recover.aggregate.bootstrap import (accuracy_draws, holm, lower_bound, share_at_or_above, share_below,
                                                  upper_bound)
from samples import BASE, CELLS, _grids


def test_question_bootstrap_is_paired_and_seeded(tmp_path):
    grid = _grids(tmp_path, {**CELLS, ("none", "idp", 0): BASE})[("m", "capitals")]
    a = accuracy_draws(grid, 500, seed=0)
    assert a[("q", "idp")].shape == (500, 2) and a[("none", "none")].shape == (500, 1)
    np.testing.assert_array_equal(a[("q", "idp")], accuracy_draws(grid, 500, seed=0)[("q", "idp")])
    assert not np.array_equal(a[("q", "idp")], accuracy_draws(grid, 500, seed=1)[("q", "idp")])
    # paired: every model is scored on the same resampled questions, so two models with the same
    # answers have the same accuracy on every resample (independent resamples would differ)
    np.testing.assert_array_equal(a[("none", "none")], a[("none", "idp")])
    assert a[("none", "none")].std() > 0.05
    d = a[("none", "none")][:, 0] - a[("q", "none")][:, 0]
    assert d.mean() == pytest.approx(0.5, abs=0.03)


def test_bounds_agree_exactly_with_the_bootstrap_p_values():
    rng = np.random.default_rng(3)
    for _ in range(200):
        draws = np.round(rng.normal(0.5, 0.2, int(rng.integers(50, 400))), 2)
        draws[rng.random(len(draws)) < 0.05] = np.nan
        a, t = float(rng.uniform(0.001, 0.2)), float(rng.choice(draws[~np.isnan(draws)]))
        assert (lower_bound(draws, a) >= t) == (share_below(draws, t) <= a)
        assert (upper_bound(draws, a) < t) == (share_at_or_above(draws, t) <= a)


def test_holm_adjusted_p_values_and_levels():
    adjusted, levels, rejected = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted 0.005 (<= .05/4), 0.01 (<= .05/3), 0.03 (> .05/2: stop)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert levels == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert rejected == [True, False, False, True]
    assert holm([0.04], 0.05) == ([0.04], [0.05], [True])
    assert holm([0.03, 0.04], 0.05)[2] == [False, False]  # 0.03 > 0.025: Holm stops at once


def test_holm_adjusted_p_values_equal_statsmodels_and_levels_decide_as_holm():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for _ in range(300):
        m = int(rng.integers(1, 12))
        p = list(np.round(rng.beta(0.5, 2.0, m), 4))  # ties and small p-values included
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        adjusted, levels, rejected = holm(p, alpha)
        reject_sm, adjusted_sm, *_ = multipletests(p, alpha=alpha, method="holm")
        assert adjusted == pytest.approx(list(adjusted_sm), abs=1e-12)
        assert rejected == list(reject_sm)
        # an interval at each hypothesis' level excludes it exactly when Holm rejects it
        assert [pi <= lv * (1 + 1e-9) for pi, lv in zip(p, levels, strict=True)] == rejected


def test_holm_family_checks_each_bound_against_holm():
    from compress_recover.aggregate.bootstrap import holm_family

    tests = holm_family(["a", "b"], [0.001, 0.5], 0.05, lambda i, level: i == 0, "bound")
    assert [t.rejected for t in tests] == [True, False] and tests[0].confidence == pytest.approx(1 - 0.025)
    with pytest.raises(AssertionError, match="b: bound disagrees with Holm"):
        holm_family(["a", "b"], [0.001, 0.5], 0.05, lambda i, level: True, "bound")
