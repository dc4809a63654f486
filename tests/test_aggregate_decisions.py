"""aggregate.stats.decisions and aggregate.stats.fractions against known truths: simulated per-question
data sets whose true recovery fraction, control gain and damage are set by construction.

Each simulation checks an error rate or a bias of the rule itself (a wrong "recovers" at
F = threshold, no lean toward "fails" at control gain 0, the power the sample-size estimate
promises); the deterministic cases sit at and near the thresholds, where a wrong bound
would flip the decision. The draws here are a plain paired question bootstrap (every
question its own fact), so these tests see the rule, not the resampling unit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t

from compress_recover.aggregate.stats.bootstrap import tail_count
from compress_recover.aggregate.stats.decisions import confirmatory, power_needed, verdict_family
from compress_recover.aggregate.stats.fractions import pair_draws
from compress_recover.aggregate.stats.grid import Cell, Grid
from compress_recover.aggregate.stats.methods import Methods
from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE
from compress_recover.aggregate.stats.settings import MAX_ITERS, Settings
from compress_recover.aggregate.stats.verdict import decide
from samples import damage_record, decision_record

SIDES = {"lora": "parameters", "idp": "input", "prompt_tuning": "input"}
METHODS = Methods({"lora": "lora", "idp": "idp", "pt": "prompt_tuning"}, SIDES)


def FakeCell(correct) -> Cell:  # noqa: N802 - reads as the record it builds
    """A real grid cell from per-run correctness (runs, questions); seeds 0, 1, ..."""
    correct = np.asarray(correct, dtype=float)
    return Cell(runs=tuple(f"r{i}" for i in range(len(correct))), seeds=tuple(range(len(correct))), correct=correct,
                p_right=correct, p_right_norm=correct)


def FakeGrid(cells: dict) -> Grid:  # noqa: N802
    """A real pooled grid of ``cells`` ((compression, recovery) -> Cell), every question its own fact."""
    n = cells[("none", "none")].correct.shape[1]
    return Grid("m", ALL_KNOWLEDGE, tuple(str(i) for i in range(n)), cells)


def question_draws(grid: Grid, iters: int, rng) -> dict:
    """Paired question bootstrap: one resample of questions for every cell, (iters, runs) each."""
    n = grid.n
    idx = rng.integers(0, n, size=(iters, n)) + n * np.arange(iters)[:, None]
    counts = np.bincount(idx.ravel(), minlength=iters * n).reshape(iters, n)
    return {k: counts @ c.correct.T.astype(float) / n for k, c in grid.cells.items()}


def simulate(rng, n: int, fraction, *, gain_noise: float = 0.0, seeds: int = 1, p_base: float = 0.8,
             p_lost: float = 0.5, churn: float = 0.0) -> Grid:
    """One data set: base right with probability ``p_base``, compression loses each right answer
    with probability ``p_lost``; each recovered run wins back each lost question with probability
    ``fraction`` + ``churn`` (``fraction``: a scalar, or one per seed, the seed's own adapter) and
    breaks each answer the compressed model had right with probability churn * p_lost / (1 -
    p_lost): true F = ``fraction``. The control run (the uncompressed model recovered) flips a
    right answer with probability ``gain_noise`` and a wrong one with probability gain_noise *
    p_base / (1 - p_base): true gain 0."""
    base = rng.random(n) < p_base
    comp = base & ~(rng.random(n) < p_lost)
    lost = base & ~comp
    per_seed = np.broadcast_to(np.asarray(fraction, dtype=float), (seeds,))
    breaks = churn * p_lost / (1 - p_lost)
    recovered = np.array([(comp & ~(rng.random(n) < breaks)) | (lost & (rng.random(n) < f + churn))
                          for f in per_seed])
    flip = np.where(base, gain_noise, gain_noise * p_base / (1 - p_base))
    control = np.array([base ^ (rng.random(n) < flip) for _ in range(seeds)])
    return FakeGrid({("none", "none"): FakeCell(base[None]), ("q", "none"): FakeCell(comp[None]),
                     ("q", "idp"): FakeCell(recovered), ("none", "idp"): FakeCell(control)})


def decided(grid: Grid, settings: Settings, iters: int, rng):
    """(damage, the recovery's Decision) of ``grid`` by the rule (one Holm family)."""
    draws = question_draws(grid, iters, rng)
    pair = pair_draws(grid, draws, "q", "idp", seed=int(rng.integers(1 << 30)))
    damage, (decision,), _ = confirmatory({("m", ALL_KNOWLEDGE): grid}, {("m", ALL_KNOWLEDGE): draws},
                                          {("m", "q", "idp"): pair}, settings, METHODS)
    return damage[("m", "q")], decision


# --------------------------------------------------------------------------- error rates and bias

@pytest.mark.parametrize("seeds, seed_sd", [(1, 0.0), (3, 0.08)])
def test_a_wrong_recovers_at_the_threshold_is_at_most_alpha(seeds, seed_sd):
    # true F = threshold: "recovers" is wrong. With 3 seeds every adapter has its own F around the
    # threshold (sd 0.08): the t-based seed component must cover that spread, which resampling the
    # three values would understate.
    rng = np.random.default_rng(11)
    settings = Settings(alpha=0.2, min_recovery_fraction=0.5)
    runs = 200
    wrong = 0
    for _ in range(runs):
        fractions = 0.5 + seed_sd * rng.standard_normal(seeds) if seeds > 1 else 0.5
        grid = simulate(rng, 300, np.clip(fractions, 0, 1), seeds=seeds)
        wrong += decided(grid, settings, 400, rng)[1].decision == "recovers"
    # two-sided at its Holm level (<= alpha): a wrong "recovers" has at most alpha / 2 in expectation;
    # its level here is alpha / 2 (the family: this test and the no-loss test, never rejected), so a wrong
    # "recovers" has one tail, alpha / 4; allow for the 200 simulations' binomial spread above it
    tail = settings.alpha / 4
    assert wrong / runs <= tail + 2 * math.sqrt(tail * (1 - tail) / runs) <= settings.alpha


def test_the_control_rule_does_not_lean_toward_fails_at_true_gain_zero():
    # true F = 0.5 = threshold, true control gain 0 with a noisy control run: the controlled fraction is
    # unbiased (clipping the gain at 0, the old rule, lowers it by about 0.4 of the gain's standard error),
    # and "fails" (read on the raw fraction) is wrong at most alpha / 2 of the time
    rng = np.random.default_rng(5)
    settings = Settings(alpha=0.2, min_recovery_fraction=0.5)
    runs, fails, controlled, clipped = 200, 0, [], []
    for _ in range(runs):
        grid = simulate(rng, 300, 0.5, gain_noise=0.2)
        _, d = decided(grid, settings, 400, rng)
        e = d.estimates
        fails += d.decision == "fails"
        damage = e["base_acc"] - e["compressed_acc"]
        controlled.append(e["controlled_fraction"])
        clipped.append(e["recovery_fraction"] - max(e["control_gain"], 0.0) / damage)
        assert e["controlled_fraction"] == pytest.approx(e["recovery_fraction"] - e["control_gain"] / damage)
    se = np.std(controlled, ddof=1) / math.sqrt(runs)
    assert abs(np.mean(controlled) - 0.5) < 3 * se
    assert np.mean(clipped) < 0.5 - 3 * se  # the bias the old rule had, on the same data sets
    tail = settings.alpha / 4  # one tail of the level alpha / 2 (see above)
    assert fails / runs <= tail + 2 * math.sqrt(tail * (1 - tail) / runs)


def test_power_at_the_pre_specified_effect_holds_by_simulation():
    # the estimate promises: with questions_needed questions, a method that wins back nothing (F = 0, the
    # pre-specified effect min_recovery_fraction below the threshold) is shown to fail with probability
    # `power`. Simulate exactly that.
    rng = np.random.default_rng(2)
    settings = Settings(alpha=0.05, min_recovery_fraction=0.2, power=0.8, bootstrap_iters=1000)
    data = {"p_base": 0.6, "p_lost": 0.3, "churn": 0.3}  # true F = 0, but runs win and break answers
    pilot = simulate(rng, 1000, 0.0, **data)
    pair = pair_draws(pilot, question_draws(pilot, 2000, rng), "q", "idp", seed=0)
    level = settings.alpha / 2  # the family: the no-loss test (never rejected here) and this recovery
    estimate = power_needed(0.2, *pair.variances(), pilot.n, 1, level, 0.8)
    needed = estimate["questions_needed"]
    assert estimate["effect"] == 0.2 and 300 < needed < 1500
    runs, shown = 200, 0
    for _ in range(runs):
        _, d = decided(simulate(rng, needed, 0.0, **data), settings, 1000, rng)
        assert d.test.level == pytest.approx(level)
        shown += d.decision == "fails"
    assert abs(shown / runs - 0.8) < 0.1
    # with half the questions the power is clearly lower: the estimate is not generous
    half = sum(decided(simulate(rng, needed // 2, 0.0, **data), settings, 1000, rng)[1].decision == "fails"
               for _ in range(100))
    assert half / 100 < 0.7


# --------------------------------------------------------------------------- at and near the thresholds

def _fixed_grid(n: int, base_right: int, lost: int, won: int = 0, control_gain: int = 0, seeds: int = 1):
    """Deterministic data: base right on the first base_right questions, compression loses the first
    ``lost`` of them, the recovery wins back the first ``won`` of those, the control run gains
    ``control_gain`` questions the base had wrong."""
    base = np.arange(n) < base_right
    comp = base & ~(np.arange(n) < lost)
    rec = comp | (np.arange(n) < won)
    control = base | ((np.arange(n) >= base_right) & (np.arange(n) < base_right + control_gain))
    return FakeGrid({("none", "none"): FakeCell(base[None]), ("q", "none"): FakeCell(comp[None]),
                     ("q", "idp"): FakeCell(np.repeat(rec[None], seeds, 0)),
                     ("none", "idp"): FakeCell(np.repeat(control[None], seeds, 0))})


@pytest.mark.parametrize("lost, no_loss", [(80, False), (70, False), (62, True), (40, True)])
def test_damage_decision_at_and_near_min_damage(lost, no_loss):
    # 4000 questions, min_damage 0.02 = 80 lost; the bound is the damage plus z(1 - level) standard errors
    # (level alpha / 2: the family is this no-loss test and one recovery; the recovery is decided first)
    n = 4000
    settings = Settings(alpha=0.05, min_damage=0.02, min_recovery_fraction=0.5)
    grid = _fixed_grid(n, 2000, lost, won=lost)
    damage, _ = decided(grid, settings, 8000, np.random.default_rng(0))
    p = lost / n
    expected = p + norm.ppf(1 - damage.holm_level) * math.sqrt(p * (1 - p) / n)
    assert damage.damage == pytest.approx(p) and damage.damage_upper == pytest.approx(expected, abs=3e-4)
    assert damage.no_measurable_loss is no_loss
    assert damage.holm_level in (pytest.approx(0.05), pytest.approx(0.025)) and damage.family_size == 2


def _delta_se(grid: Grid, gain: bool) -> float:
    """Delta-method standard error of the (controlled) fraction on the question resample."""
    b, c = grid.get("none", "none").correct[0], grid.get("q", "none").correct[0]
    r, k = grid.get("q", "idp").correct[0], grid.get("none", "idp").correct[0]
    num, den = r.astype(float) - c - ((k.astype(float) - b) if gain else 0), b.astype(float) - c
    f = num.mean() / den.mean()
    return float(np.std(num - f * den, ddof=1) / math.sqrt(len(b)) / den.mean())


@pytest.mark.parametrize("won, decision", [(600, "undecided"), (620, "undecided"), (680, "recovers"),
                                           (540, "undecided"), (450, "fails")])
def test_controlled_interval_width_and_decision_near_the_threshold(won, decision):
    # 4000 questions, compression loses 1000; the control gains 100 (0.025): controlled F = (won - 100) / 1000,
    # raw F = won / 1000. Threshold 0.5: won = 600 puts the controlled fraction on it
    n = 4000
    settings = Settings(alpha=0.05, min_recovery_fraction=0.5)
    grid = _fixed_grid(n, 3000, 1000, won=won, control_gain=100)
    _, d = decided(grid, settings, 8000, np.random.default_rng(1))
    e = d.estimates
    assert e["controlled_fraction"] == pytest.approx((won - 100) / 1000)
    assert e["recovery_fraction"] == pytest.approx(won / 1000)
    z = norm.ppf(1 - d.test.level / 2)
    low, high = d.controlled_ci
    assert high - low == pytest.approx(2 * z * _delta_se(grid, gain=True), rel=0.08)
    raw_low, raw_high = d.raw_ci
    assert raw_high - raw_low == pytest.approx(2 * z * _delta_se(grid, gain=False), rel=0.08)
    assert low <= e["controlled_fraction"] <= high and raw_low <= e["recovery_fraction"] <= raw_high
    assert d.decision == decision
    assert (d.ci_low, d.ci_high) == (min(low, raw_low), raw_high)
    if decision == "recovers":
        assert low >= 0.5 and raw_low >= 0.5 and d.fraction_used == "controlled"
    if decision == "fails":
        assert raw_high < 0.5 and d.fraction_used == "raw"


def test_the_seed_component_is_t_based_from_three_seeds():
    # three adapters with accuracies 0.60, 0.65, 0.70 on the same questions: the seed component's
    # quantiles are those of (s / sqrt(3)) t(2), far wider than the three values' range allows
    n, rng = 1000, np.random.default_rng(4)
    base = np.arange(n) < 800
    comp = np.arange(n) < 500
    runs = np.array([np.arange(n) < k for k in (600, 650, 700)])
    grid = FakeGrid({("none", "none"): FakeCell(base[None]), ("q", "none"): FakeCell(comp[None]),
                     ("q", "idp"): FakeCell(runs)})
    pair = pair_draws(grid, question_draws(grid, 4000, rng), "q", "idp", seed=0)
    f_runs = (runs.mean(axis=1) - 0.5) / 0.3
    s = np.std(f_runs, ddof=1)
    seeds = pair.raw["seeds"]
    for q in (0.1, 0.9):
        assert np.quantile(seeds, q) == pytest.approx(f_runs.mean() + student_t.ppf(q, 2) * s / math.sqrt(3),
                                                      abs=0.02)
    assert np.quantile(seeds, 0.975) > f_runs.max() + 0.1  # a resample of the three could not go past the max
    assert pair.seed_var["raw"] == pytest.approx(s ** 2 / 3)
    assert pair.estimates["claim"] == "method"
    two = pair_draws(FakeGrid({**grid.cells, ("q", "idp"): FakeCell(runs[:2])}),
                     question_draws(grid, 500, rng), "q", "idp", seed=0)
    assert two.estimates["claim"] == "trained adapters" and two.seed_var["raw"] == 0
    np.testing.assert_array_equal(two.raw["two_level"], two.raw["questions"])  # no seed component


def test_fewer_than_three_seeds_make_the_verdict_about_the_adapters():
    damage = damage_record()
    one = decision_record("idp", "input", "recovers", estimates={"seeds": [0], "runs": ["idp.seed0"]})
    three = decision_record("lora", "parameters", "fails",
                            estimates={"seeds": [0, 1, 2], "runs": ["lora.seed0", "lora.seed1", "lora.seed2"]})
    verdict, reason = decide(damage, [one, three], None)
    assert verdict == "recoverable from the input side"
    assert "about the trained adapter(s), not the method (fewer than 3 seeds): idp (seed 0)" in reason
    assert "about the method (3 or more seeds, t-based seed variance): lora" in reason
    assert one.claim == "trained adapter" and three.claim == "method"


# --------------------------------------------------------------------------- the family and its resamples

def test_pooled_resamples_are_what_the_smallest_holm_bound_needs():
    # two compressions, each with idp, pt (input) and lora (parameters): m = 2 no-loss tests + 6 recoveries
    # + 4 non-inferiority pairs = 12; the smallest bound is a recovery's at alpha / 12, two-sided: tail
    # alpha / 24, which needs min_tail_resamples / (alpha / 24) resamples
    rng = np.random.default_rng(0)
    n = 200
    base = rng.random(n) < 0.8
    cells = {("none", "none"): FakeCell(base[None])}
    for comp in ("q1", "q2"):
        cells[(comp, "none")] = FakeCell((base & (rng.random(n) < 0.5))[None])
        for rec in ("idp", "pt", "lora"):
            cells[(comp, rec)] = FakeCell((base & (rng.random(n) < 0.8))[None])
    grid = FakeGrid(cells)
    grids = {("m", ALL_KNOWLEDGE): grid, ("m", "capitals"): grid}  # only the pooled task is the family
    settings = Settings(alpha=0.05, min_tail_resamples=20, bootstrap_iters=1000)
    pooled, family, iters = verdict_family(grids, settings, METHODS)
    assert list(pooled) == [("m", ALL_KNOWLEDGE)] and len(family) == 6
    assert iters == math.ceil(20 / (0.05 / 24)) == 9600
    # the decisions' family is the same 12, and its smallest bound has min_tail_resamples beyond it
    draws = question_draws(grid, iters, rng)
    pairs = {("m", c, r): pair_draws(grid, draws, c, r, 0) for c, r in grid.recovered()}
    damage, decisions, ni = confirmatory(pooled, {("m", ALL_KNOWLEDGE): draws}, pairs, settings, METHODS)
    assert len(damage) == 2 and len(decisions) == 6 and len(ni) == 4
    assert {d.family_size for d in decisions} == {12} and {t["family_size"] for t in ni} == {12}
    smallest = min(d.test.level for d in decisions)
    assert smallest >= 0.05 / 12 and tail_count(smallest / 2, iters) >= 20 == tail_count(0.05 / 24, iters)
    # more resamples than the cap allows are capped; fewer than bootstrap_iters never
    assert verdict_family(grids, Settings(min_tail_resamples=50), METHODS)[2] == MAX_ITERS
    assert verdict_family(grids, Settings(alpha=0.5, bootstrap_iters=5000), METHODS)[2] == 5000
