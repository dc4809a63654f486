"""aggregate.stats.bootstrap: paired seeded draws, bounds that agree with their p-values, Holm."""

from __future__ import annotations

import numpy as np
import pytest

from compress_recover.aggregate.stats.bootstrap import (accuracy_draws, holm, lower_bound, share_at_or_above, share_below,
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


def test_bounds_are_order_statistics_dual_to_the_plus_one_p_values():
    # p-values are (k + 1) / (B + 1), never 0; the bound with tail a is the order statistic that
    # leaves k = floor(a (B + 1)) - 1 draws beyond it on its side, so the bound excludes a
    # threshold exactly when that p-value is <= a; the same number of draws on each side
    from compress_recover.aggregate.stats.bootstrap import interval, share_at_or_above, share_below

    rng = np.random.default_rng(7)
    for iters in (100, 999, 1000, 2000, 4001):
        draws = rng.normal(0.3, 0.1, iters)
        ordered = np.sort(draws)
        for a in (0.025, 0.05, 0.0125, 0.001, 0.2):
            low, high = lower_bound(draws, a), upper_bound(draws, a)
            k = int(np.floor(a * (iters + 1) * (1 + 1e-9))) - 1
            if k < 0:  # too few resamples for this tail: no bound
                assert (low, high) == (-np.inf, np.inf)
                continue
            assert low == ordered[k] and high == ordered[iters - 1 - k]
            assert (draws < low).sum() == k == (draws > high).sum()
            assert share_below(draws, low) == (k + 1) / (iters + 1) <= a < (k + 2) / (iters + 1)
            assert share_at_or_above(draws, np.nextafter(high, np.inf)) == (k + 1) / (iters + 1)
            # numpy's default (linear) quantile lies within two draws of it
            assert ordered[max(k - 1, 0)] <= np.quantile(draws, a) <= ordered[k + 2]
        assert interval(draws, 0.95) == (lower_bound(draws, 0.025), upper_bound(draws, 0.025))
    # the 95% interval of 1000 draws 0, 1, ..., 999: floor(0.025 x 1001) - 1 = 24 excluded on each side
    assert interval(np.arange(1000.0)) == (24.0, 975.0)
    assert share_below(np.arange(1000.0), -1) == 1 / 1001  # no resample crossed: p = 1 / (B + 1), not 0
    # an undefined draw (NaN) counts against the claim: below every lower bound, above every upper
    draws = np.arange(100.0)
    draws[50] = np.nan
    assert lower_bound(draws, 0.05) == 3.0 and upper_bound(draws, 0.05) == 96.0   # 4 beyond each, NaN one of them


def test_holm_adjusted_p_values_and_levels():
    adjusted, levels, rejected = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted 0.005 (<= .05/4), 0.01 (<= .05/3), 0.03 (> .05/2: stop)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert levels == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert rejected == [True, False, False, True]
    assert holm([0.04], 0.05) == ([0.04], [0.05], [True])
    assert holm([0.03, 0.04], 0.05)[2] == [False, False]  # 0.03 > 0.025: Holm stops at once


@pytest.mark.slow
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
    from compress_recover.aggregate.stats.bootstrap import holm_family

    tests = holm_family(["a", "b"], [0.001, 0.5], 0.05, lambda i, level: i == 0, "bound")
    assert [t.rejected for t in tests] == [True, False] and tests[0].confidence == pytest.approx(1 - 0.025)
    with pytest.raises(AssertionError, match="b: bound disagrees with Holm"):
        holm_family(["a", "b"], [0.001, 0.5], 0.05, lambda i, level: True, "bound")


# --------------------------------------------------------------------------- facts as the resampling unit

def _cell(correct):
    """A one-run cell of ``correct`` (the cell's other arrays are not read by the draws)."""
    from dataclasses import fields

    from compress_recover.aggregate.stats.grid import Cell

    return Cell(**{**{f.name: None for f in fields(Cell)}, "runs": ("r",), "seeds": (None,),
                   "correct": np.asarray(correct, dtype=float)[None, :]})


def test_with_one_question_per_fact_and_answer_the_cluster_bootstrap_is_the_rescaled_question_bootstrap(tmp_path):
    from compress_recover.aggregate.stats.bootstrap import CHUNK, stable_seed

    grid = _grids(tmp_path, CELLS)[("m", "capitals")]
    assert len(set(grid.question_clusters)) == grid.n  # no fact and no answer shared: each its own
    iters = CHUNK + 44
    new = accuracy_draws(grid, iters, seed=3)
    # Rao and Wu's rescaled question bootstrap written out: n - 1 questions drawn, each n / (n - 1)
    keys = list(grid.cells)
    stacked = np.concatenate([grid.cells[k].correct for k in keys])
    rng = np.random.default_rng(stable_seed(3, grid.model, grid.task, "questions"))
    old, n = [], grid.n
    for start in range(0, iters, CHUNK):
        size = min(CHUNK, iters - start)
        idx = rng.integers(0, n, size=(size, n - 1)) + n * np.arange(size)[:, None]
        old.append(np.bincount(idx.ravel(), minlength=size * n).reshape(size, n) @ stacked.T / (n - 1))
    old = np.concatenate(old)
    np.testing.assert_allclose(np.concatenate([new[k] for k in keys], axis=1), old, rtol=0, atol=1e-12)


def test_a_question_sharing_its_right_answer_joins_its_cluster():
    from compress_recover.aggregate.stats.clusters import answer_key, question_clusters

    facts = ["f1", "f2", "f3", "f4", "f1", "f5"]
    answers = ["china", "china", "india", None, "paris", "paris "]
    # f1 and f2 share "china"; f1 is also asked with answer "paris" (a capital asked as a
    # city), so f5 joins through it; f3 and f4 stand alone
    clusters = question_clusters(facts, [a and answer_key(a, '["x"]') for a in answers])
    assert clusters == ("f1", "f1", "f3", "f4", "f1", "f1")
    assert question_clusters(facts) == tuple(facts)
    assert answer_key("China", "null") is None and answer_key(" China ", '["China", "India"]') == "china"


def test_a_drawn_fact_brings_all_its_questions_and_every_task_keeps_its_size():
    from compress_recover.aggregate.stats.bootstrap import cluster_weights, fact_strata

    # the pooled task: facts 0-3 asked by a relation (a) and its inverse (b), fact 4 only by
    # a, facts 5-6 only by c, fact 7 by a, b and c
    facts = ["f0", "f1", "f2", "f3", "f4", "f0", "f1", "f2", "f3", "f5", "f6", "f7", "f7", "f7"]
    tasks = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "a", "b", "c"]
    fact_index, strata = fact_strata(facts, tasks)
    assert sorted(map(len, strata)) == [1, 1, 2, 4]  # {a}, {a,b,c}, {c}, {a,b}
    w = cluster_weights(fact_index, strata, 2000, np.random.default_rng(0))
    assert w.shape == (2000, len(facts))
    for f in set(facts):  # every question of a fact counts as often as the fact was drawn
        cols = [i for i, g in enumerate(facts) if g == f]
        assert (w[:, cols] == w[:, cols[:1]]).all()
    for t in "abc":  # stratified: each task's number of questions is the same in every draw
        assert (w[:, [i for i, s in enumerate(tasks) if s == t]].sum(axis=1) == tasks.count(t)).all()
    assert w[:, 0].std() > 0.5  # and facts are resampled, not fixed
    # with one fact per question and one task, one stratum of every question
    fact_index, strata = fact_strata(["x", "y", "z"], ["t"] * 3)
    assert list(fact_index) == [0, 1, 2] and [list(s) for s in strata] == [[0, 1, 2]]


def _clustered_data(rng, k: int):
    """One synthetic pooled task with a known truth: k facts, each asked by a relation (a)
    and its inverse (b), a third of them also by a third task (c); a fact's questions share
    its latent u ~ U(0, 1). A model "knows" a fact when u < its share (base 0.8, compressed
    0.5, recovered 0.65) and then answers each of its questions right with probability 0.97,
    else with 0.2: correctness is strongly correlated within a fact. The true accuracy
    difference base - compressed is 0.3 * 0.77 and the true recovery fraction
    (recovered - compressed) / (base - compressed) is 0.15 / 0.3 = 0.5."""
    m = rng.integers(2, 4, size=k)
    fact = np.repeat(np.arange(k), m)
    tasks = np.concatenate([["a", "b", "c"][:mi] for mi in m])
    u = rng.random(k)[fact]
    answers = {name: rng.random(len(fact)) < np.where(u < share, 0.97, 0.2)
               for name, share in (("base", 0.8), ("comp", 0.5), ("rec", 0.65))}
    return fact, tasks, answers


@pytest.mark.slow
def test_the_fact_bootstrap_covers_the_truth_on_clustered_facts_and_the_question_bootstrap_does_not():
    from compress_recover.aggregate.stats.bootstrap import interval
    from compress_recover.aggregate.stats.grid import Grid
    from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE

    true_f, true_d = 0.5, 0.3 * (0.97 - 0.2)
    datasets, iters = 1000, 400
    rng = np.random.default_rng(0)
    covered = {"facts": np.zeros(2), "questions": np.zeros(2)}
    for i in range(datasets):
        fact, tasks, answers = _clustered_data(rng, k=100)
        cells = {("none", "none"): _cell(answers["base"]), ("q", "none"): _cell(answers["comp"]),
                 ("q", "r"): _cell(answers["rec"])}
        ids = tuple(f"{t}:{j}" for j, t in enumerate(tasks))
        for unit, grid in (("facts", Grid("m", ALL_KNOWLEDGE, ids, cells, facts=tuple(map(str, fact)),
                                          tasks=tuple(tasks))),
                           ("questions", Grid("m", ALL_KNOWLEDGE, ids, cells))):  # each question its own fact
            d = accuracy_draws(grid, iters, seed=i)
            base, comp, rec = (d[k][:, 0] for k in (("none", "none"), ("q", "none"), ("q", "r")))
            with np.errstate(divide="ignore", invalid="ignore"):
                for j, (draws, truth) in enumerate((((rec - comp) / (base - comp), true_f), (base - comp, true_d))):
                    low, high = interval(draws)
                    covered[unit][j] += low <= truth <= high
    facts, questions = covered["facts"] / datasets, covered["questions"] / datasets
    # 95% intervals (F, then the accuracy difference). Measured on 5,000 more data sets (1,000
    # resamples): the fact bootstrap covers about 0.94 of the time for both (as a percentile
    # bootstrap on 100-300 facts does; 0.95 on independent questions), the question bootstrap
    # about 0.89 (F) and 0.86 (difference); here 0.953 and 0.947 against 0.90 and 0.86. At
    # 1,000 data sets the Monte Carlo error is about 0.007, so another seed could land below
    # 0.93 about one time in ten: a failure after a change of seed or draw order is worth a
    # second look, not a looser bound.
    assert (facts >= 0.93).all(), facts
    assert (questions < 0.92).all() and (facts - questions >= 0.03).all(), (facts, questions)


def _shared_answer_data(rng):
    """A pooled task with a known truth and shared-answer dependence, shaped like the built
    tasks: two relations whose questions share right answers (cluster sizes 1-25, a capped
    Zipf law, as a capped city_country or currencies) and three one-to-one relations. Every
    answer a carries its own shift u_a ~ U(-0.35, 0.35) of the compressed model's and v_a of
    the recovered model's chance of answering its questions right (compression moves the
    prior of "China" for every China question at once): base 0.7, compressed 0.5 + u_a,
    recovered 0.6 + v_a, each question one fact. True damage 0.2, true recovered -
    compressed 0.1 (the shifts average to zero over the population of answers)."""
    answers, tasks = [], []
    for relation in ("a", "b"):
        sizes = np.minimum(rng.zipf(1.6, size=60), 25)
        for j, size in enumerate(sizes):
            answers += [f"{relation}{j}"] * int(size)
            tasks += [relation] * int(size)
    for relation in ("c", "d", "e"):
        answers += [f"{relation}{j}" for j in range(100)]
        tasks += [relation] * 100
    _, which = np.unique(answers, return_inverse=True)
    u, v = (rng.uniform(-0.35, 0.35, which.max() + 1)[which] for _ in range(2))
    n = len(answers)
    correct = {"base": rng.random(n) < 0.7, "comp": rng.random(n) < 0.5 + u, "rec": rng.random(n) < 0.6 + v}
    return answers, tasks, correct


@pytest.mark.slow
def test_clusters_of_shared_answers_cover_the_truth_and_facts_alone_do_not():
    from compress_recover.aggregate.stats.bootstrap import interval
    from compress_recover.aggregate.stats.clusters import cluster_sizes
    from compress_recover.aggregate.stats.grid import Grid
    from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE

    truths = (0.2, 0.1)
    datasets, iters = 1500, 400
    rng = np.random.default_rng(1)
    covered = {"answers": np.zeros(2), "facts": np.zeros(2)}
    weighted = []
    for i in range(datasets):
        answers, tasks, correct = _shared_answer_data(rng)
        cells = {("none", "none"): _cell(correct["base"]), ("q", "none"): _cell(correct["comp"]),
                 ("q", "r"): _cell(correct["rec"])}
        ids = tuple(f"{t}:{j}" for j, t in enumerate(tasks))
        facts = tuple(ids)  # every question its own fact: only the answers join them
        grids = {"answers": Grid("m", ALL_KNOWLEDGE, ids, cells, facts=facts, tasks=tuple(tasks),
                                 answers=tuple(answers)),
                 "facts": Grid("m", ALL_KNOWLEDGE, ids, cells, facts=facts, tasks=tuple(tasks))}
        weighted.append(cluster_sizes(grids["answers"].question_clusters)["weighted_mean_size"])
        for unit, grid in grids.items():
            d = accuracy_draws(grid, iters, seed=i)
            base, comp, rec = (d[k][:, 0] for k in (("none", "none"), ("q", "none"), ("q", "r")))
            for j, (draws, truth) in enumerate(((base - comp, truths[0]), (rec - comp, truths[1]))):
                low, high = interval(draws)
                covered[unit][j] += low <= truth <= high
    answers, facts = covered["answers"] / datasets, covered["facts"] / datasets
    # The size-weighted mean cluster size is about 11.7 here (11.2 on the demo's uncapped
    # test set; the capped default build's pooled test set: 5.5). 95% intervals of the damage
    # and of recovered - compressed: clustering by answer covers 0.937 and 0.935 on these
    # 1,500 data sets (this seed), facts alone (the old unit) 0.82 and 0.74; drawing m
    # clusters of m instead of Rao and Wu's m - 1 covered 0.933 and 0.932. The Monte Carlo
    # error is about 0.006, so the bound 0.93 holds for this seed and draw order: a failure
    # after a change to either is worth a second look, not a looser bound.
    assert 8 < np.mean(weighted) < 15, np.mean(weighted)
    assert (answers >= 0.93).all(), answers
    assert (facts < 0.91).all() and (answers - facts >= 0.04).all(), (answers, facts)
