"""aggregate.stats.paired: McNemar's exact test, sign-flip and t interval, paired tests per seed, knowledge flips."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from compress_recover.aggregate.stats.methods import Methods
from compress_recover.aggregate.stats.paired import (flips, margin_tests, mcnemar_exact, paired_tests, sign_flip_p,
                                               t_interval)
from samples import BASE, CELLS, COMP, IDP, IDP2, LORA, METHODS, SIDES, _grids


def test_mcnemar_exact_matches_the_binomial_test():
    scipy_stats = pytest.importorskip("scipy.stats")
    for a, b in [(0, 0), (1, 0), (6, 1), (3, 3), (10, 2), (0, 12), (40, 25)]:
        expected = 1.0 if a + b == 0 else scipy_stats.binomtest(a, a + b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)


def test_flips_count_kept_lost_recovered_and_broken_per_seed(tmp_path):
    table = flips(_grids(tmp_path, CELLS))
    got = {(r.category, r.recovery, r.seed): r.count for r in table[table.task == "capitals"].itertuples()}
    assert got == {("kept", "", ""): 2, ("lost", "", ""): 6, ("gained", "", ""): 1,
                   ("recovered", "idp", "0"): 3, ("broken", "idp", "0"): 1,
                   ("recovered", "idp", "1"): 2, ("broken", "idp", "1"): 0,
                   # two seeds: right in a majority is right in both
                   ("recovered", "idp", "majority"): 2, ("broken", "idp", "majority"): 1,
                   ("recovered", "lora", "0"): 1, ("broken", "lora", "0"): 0,
                   ("recovered_by_several", "", ""): 1}   # question 2: lora, and idp on both seeds


def test_paired_tests_per_seed_and_input_vs_parameter_side(tmp_path):
    cells = {**CELLS, ("q", "pt", 0): COMP, ("none", "idp", 0): BASE}
    tests = paired_tests(_grids(tmp_path, cells), methods=Methods(METHODS, SIDES))
    tests = tests[tests.task == "capitals"]
    by = {(r.comparison, r.b, r.b_seed): r for r in tests.itertuples()}
    comp = by[("compression", "q/none", "")]
    assert (comp.a_only, comp.b_only) == (6, 1) and comp.p_value == pytest.approx(mcnemar_exact(6, 1))
    assert (by[("recovery", "q/idp", "0")].a_only, by[("recovery", "q/idp", "0")].b_only) == (1, 3)
    assert (by[("recovery", "q/idp", "1")].a_only, by[("recovery", "q/idp", "1")].b_only) == (0, 2)
    assert by[("control", "none/idp", "0")].p_value == 1.0
    vs = tests[tests.comparison == "input_vs_parameters"]
    # every input-side recovery against every parameter-side one, seed by seed
    assert sorted(zip(vs.a, vs.b, vs.b_seed, strict=True)) == [("q/lora", "q/idp", "0"), ("q/lora", "q/pt", "0")]


def test_sign_flip_and_t_interval():
    # ten positive differences: exact two-sided p = 2 / 2^10
    assert sign_flip_p(np.ones(10), iters=20000, seed=0) == pytest.approx(2 / 1024, abs=0.001)
    assert sign_flip_p(np.zeros(10), iters=100, seed=0) == 1.0
    d = np.array([0.5, -0.2, 0.3, 0.1, 0.4])
    low, high = t_interval(d)
    half = 2.776445 * d.std(ddof=1) / math.sqrt(5)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))


@pytest.mark.slow
def test_mcnemar_exact_agrees_with_scipy_binomtest_everywhere_and_is_exactly_rounded():
    from fractions import Fraction

    from scipy.stats import binomtest

    for n in range(1, 120):
        for a in range(n + 1):
            p = mcnemar_exact(a, n - a)
            assert p == pytest.approx(binomtest(a, n, 0.5).pvalue, rel=1e-10, abs=1e-300)
            k = min(a, n - a)
            exact = min(Fraction(1), 2 * Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n))
            assert p == float(exact)  # one rounding, from exact integers


def all_signs(n: int):
    """Every one of the 2^n vectors of n signs (+-1), one per row."""
    return np.array(list(itertools.product([-1, 1], repeat=n)))


def exact_sign_flip_p(d) -> float:
    """The two-sided sign-flip p-value by enumerating all 2^n sign vectors."""
    d = np.asarray(d, dtype=float)
    return float(np.mean(np.abs(all_signs(len(d)) @ d) >= abs(d.sum()) * (1 - 1e-12)))


def test_sign_flip_p_matches_exact_enumeration_of_every_sign():
    # small, non-constant samples of mixed sign: the Monte Carlo p-value (1 + hits) / (1 + B)
    # agrees with the exact share of all 2^n sign vectors within its binomial error
    iters = 100_000
    samples = [np.array([0.31, -0.12, 0.52, 0.20, -0.41, 0.73, 0.09, 0.25, -0.05, 0.61]),
               np.array([0.2, -0.3, 0.25, 0.1, -0.15, 0.05, 0.4, -0.1, 0.3, 0.05, 0.15, -0.2]),
               np.random.default_rng(4).normal(0.1, 1.0, 11)]
    for d in samples:
        exact = exact_sign_flip_p(d)
        assert 0.002 < exact < 0.9   # an informative case, neither 1 nor the smallest possible
        got = sign_flip_p(d, iters=iters, seed=1)
        assert got == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / iters) + 2 / iters)
        # what a wrong implementation would give is outside that tolerance: a one-sided tail,
        # or signs drawn from {0, 1} (questions dropped, not flipped)
        signs = all_signs(len(d))
        one_sided = float(np.mean(signs @ d >= d.sum() * (1 - 1e-12)))
        zero_one = float(np.mean(np.abs((signs + 1) // 2 @ d) >= abs(d.sum()) * (1 - 1e-12)))
        for wrong in (one_sided, zero_one):
            assert abs(wrong - exact) > 8 * math.sqrt(exact * (1 - exact) / iters) + 4 / iters
    # a constant sample: every sign vector but the all-equal ones is smaller, p = 2 / 2^n
    assert exact_sign_flip_p(np.ones(8)) == pytest.approx(2 / 256)


def test_margin_tests_compare_the_right_choices_probability(tmp_path):
    # each sample row scores the right choice 0 and the others -1 when answered right, else
    # the first wrong choice 0: p_right is the softmax probability of choice 0
    grids = _grids(tmp_path, CELLS)
    p_hit, p_miss = 1 / (1 + 3 * math.exp(-1)), math.exp(-1) / (1 + 3 * math.exp(-1))
    p = {name: np.where(np.asarray(v, dtype=bool), p_hit, p_miss) for name, v in
         {"comp": COMP, "lora": LORA, "idp": IDP, "idp2": IDP2}.items()}
    tests = margin_tests(grids, iters=20_000, seed=0)
    tests = tests[tests.task == "capitals"].set_index(["recovery", "metric"])
    assert set(tests.index.get_level_values("metric")) == {"p_right", "p_right_norm"}
    idp = tests.loc[("idp", "p_right")]
    d = (p["idp"] + p["idp2"]) / 2 - p["comp"]   # the recovery's seeds averaged first
    assert idp.compressed_mean == pytest.approx(p["comp"].mean()) and idp.seeds == 2 and idp.n == 10
    assert idp.mean_difference == pytest.approx(d.mean()) and (idp.improved, idp.worsened) == (3, 1)
    assert (idp.ci_low, idp.ci_high) == pytest.approx(t_interval(d))
    assert idp.p_value == pytest.approx(exact_sign_flip_p(d), abs=0.01)
    lora = tests.loc[("lora", "p_right")]
    assert lora.mean_difference == pytest.approx((p_hit - p_miss) / 10) and lora.improved == 1
    assert lora.p_value == 1.0   # one question moved: every sign vector gives the same |mean|


def test_sign_flip_p_holds_its_level_under_the_null_and_sees_a_shift():
    # 400 data sets of 15 symmetric (heavy-tailed) differences: H0 true, p <= 0.05 in at most
    # 5% of them (plus binomial slack); shifted by half an sd, the test rejects far more often
    rng = np.random.default_rng(11)
    null = [sign_flip_p(rng.standard_t(3, 15), iters=999, seed=i) for i in range(400)]
    rate = np.mean(np.asarray(null) <= 0.05)
    assert rate <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / 400)
    shifted = [sign_flip_p(rng.normal(0.5, 1.0, 15), iters=999, seed=i) for i in range(200)]
    assert np.mean(np.asarray(shifted) <= 0.05) > 0.3


def test_margin_tests_treat_a_fact_as_one_unit():
    from compress_recover.aggregate.stats.paired import fact_sums

    d = np.array([0.2, 0.4, -0.1, 0.3])
    np.testing.assert_array_equal(fact_sums(d, ["a", "b", "c", "d"]), d)  # one question a fact: unchanged
    clustered = fact_sums(d, ["a", "a", "b", "b"])
    assert len(clustered) == 2 and clustered.mean() == pytest.approx(d.mean())
    # an inverse relation doubles every question: the clustered interval is as wide as the
    # original's, where treating the copies as independent would shrink it by about sqrt(2)
    rng = np.random.default_rng(0)
    x = rng.normal(0.05, 0.2, 200)
    twice = np.concatenate([x, x])
    facts = [f"f{i}" for i in range(200)] * 2
    assert t_interval(fact_sums(twice, facts)) == pytest.approx(t_interval(x))
    naive = t_interval(twice)
    assert (naive[1] - naive[0]) < 0.75 * (t_interval(x)[1] - t_interval(x)[0])
