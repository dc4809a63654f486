"""aggregate.paired: McNemar's exact test, sign-flip and t interval, paired tests per seed, knowledge flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compress_recover.aggregate.methods import Methods
from compress_recover.aggregate.paired import flips, mcnemar_exact, paired_tests, sign_flip_p, t_interval
from samples import BASE, CELLS, COMP, METHODS, SIDES, _grids


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
