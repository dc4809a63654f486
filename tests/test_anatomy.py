"""The loss model's terms mean what the anatomy says they mean, checked on a known truth rather than on draws from the fitted model.

- popularity that acts only through the base model's confidence (a pure mediator): the
  pre-specified ``total`` fit finds it, the ``secondary`` fit's direct term does not;
- pure noise (a "compression" that adds iid Gaussian noise to the base model's log-probabilities):
  the observed confidence gradient lies inside its noise null's range; a compression that
  loses questions whatever the base model's confidence: the gradient lies outside it;
- the null's noise matches the compression's mean KL, as :func:`.questions.kl_divergence`
  measures it question by question; a question's right choices are read from its answer.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, log_softmax, softmax

from compress_recover.aggregate.stats.anatomy import (CONFIDENCE, POPULARITY, PRESPECIFIED, SECONDARY, TOTAL,
                                                      anatomy_tables, choice_blocks, fit_model, mean_kl,
                                                      noise_scale, right_choices)
from compress_recover.aggregate.stats.questions import kl_divergence

TASKS = ("r0", "r1", "r2")


def test_a_pure_mediator_is_a_total_effect_and_no_direct_one():
    """Popularity raises the base model's confidence and only confidence decides the loss:
    the total effect of popularity is there (negative: popular facts are lost less), the
    direct one, at equal confidence, is not, and the confidence term is its true value."""
    rng = np.random.default_rng(7)
    n = 3000
    pop = rng.random(n)
    logit_conf = 0.5 + 3.0 * pop + rng.normal(0, 1.2, n)
    lost = rng.random(n) < expit(1.0 - 1.0 * logit_conf)
    risk = pd.DataFrame({"pop_pct": pop, "base_confidence": expit(logit_conf),
                         "task": np.array(TASKS)[np.arange(n) % 3], "cluster": np.arange(n) // 2})
    total = fit_model(lost, risk, TOTAL)[POPULARITY]
    secondary = fit_model(lost, risk, SECONDARY)
    assert total["ci_high"] < 0 and total["p_value"] < 1e-6, total
    direct = secondary[POPULARITY]
    assert direct["ci_low"] < 0 < direct["ci_high"] and abs(direct["coef"]) < 0.2 * abs(total["coef"]), direct
    assert secondary[CONFIDENCE]["ci_low"] < -1.0 < secondary[CONFIDENCE]["ci_high"], secondary[CONFIDENCE]


def _base_scores(rng, n: int, k: int = 4):
    """The base model's log-probabilities over k choices, choice 0 right, its confidence spread out."""
    scores = rng.normal(0, 1.0, (n, k))
    scores[:, 0] += rng.uniform(-0.5, 3.5, n)
    return log_softmax(scores, axis=1)


def _question_table(base, compressed, pop):
    """A question table (the columns :func:`.anatomy.question_frame` reads) of one model, its
    base run and one compression ``c``, from their log-probabilities; one fact and one answer
    text per question, three relations."""
    rows = []
    for comp, logp in (("none", base), ("c", compressed)):
        for i, scores in enumerate(logp):
            texts = [f"a{i}_{j}" for j in range(len(scores))]
            p, top = softmax(scores), int(np.argmax(scores))
            rows.append({"model": "m", "compression": comp, "recovery": "none", "run": "none",
                         "task": TASKS[i % 3], "doc_id": str(i), "fact": f"f{i}", "split": "test",
                         "correct": top == 0, "p_right": float(p[0]), "chosen": texts[top],
                         "choice_probs": json.dumps([round(float(x), 4) for x in p]),
                         "kl_base": kl_divergence(base[i], scores), "choices": json.dumps(texts),
                         "answer": texts[0], "popularity": float(pop[i]), "popularity_measure": "given"})
    return pd.DataFrame(rows)


def _loss_rows(base, compressed, rng):
    model = anatomy_tables(_question_table(base, compressed, rng.random(len(base))), seed=3)["loss_model"]
    lost = model[model.outcome == "lost"]
    return lost.set_index(["fit", "term"])


def test_pure_noise_gives_a_confidence_gradient_inside_its_null():
    """Loss as argmax flips of the base model's scores plus iid noise: the gradient with
    confidence is steep, and it is what the null (noise of the same mean KL) gives. Over 40
    such data sets the observed coefficient fell inside the null's range in 37 (a 20-draw
    range holds a fresh draw about 90% of the time); this one is seeded."""
    rng = np.random.default_rng(0)
    base = _base_scores(rng, 1500)
    compressed = log_softmax(base + rng.standard_normal(base.shape), axis=1)
    rows = _loss_rows(base, compressed, rng)
    gradient = rows.loc[(SECONDARY, CONFIDENCE)]
    assert gradient.coef < -0.5 and gradient.null_draws == 20 and gradient.note == ""
    assert gradient.null_low <= gradient.coef <= gradient.null_high, gradient
    assert gradient.null_kl == pytest.approx(np.mean([kl_divergence(b, c) for b, c in zip(base, compressed)]),
                                             rel=1e-9)
    assert rows.loc[(TOTAL, POPULARITY)].status == PRESPECIFIED
    assert set(rows.status.drop((TOTAL, POPULARITY))) == {"descriptive"}
    assert rows.loc[(TOTAL, POPULARITY)][["null_coef", "null_kl"]].isna().all()


def test_a_loss_blind_to_confidence_is_outside_the_null():
    """A compression that sends 15% of the questions, chosen at random, to a wrong choice
    whatever the base model's confidence: the observed gradient is flat, above the range
    that noise of the same mean KL gives."""
    rng = np.random.default_rng(1)
    n = 1500
    base = _base_scores(rng, n)
    shift = np.zeros_like(base)
    hit = np.flatnonzero(rng.random(n) < 0.15)
    shift[hit, rng.integers(1, base.shape[1], len(hit))] = 12.0
    gradient = _loss_rows(base, log_softmax(base + shift, axis=1), rng).loc[(SECONDARY, CONFIDENCE)]
    assert gradient.ci_low < 0 < gradient.ci_high, gradient
    assert gradient.coef > gradient.null_high, gradient


def test_the_noise_scale_matches_the_mean_kl_question_by_question():
    rng = np.random.default_rng(5)
    probs = [json.dumps([round(float(x), 4) for x in softmax(rng.normal(0, 2, k))]) for k in (2, 4, 4, 3, 4, 2)]
    blocks = choice_blocks(probs)
    assert sorted(len(pos) for pos, _ in blocks) == [1, 2, 3]
    noise = [rng.standard_normal(logp.shape) for _, logp in blocks]
    scale = noise_scale(blocks, noise, 0.3)
    per_question = [kl_divergence(logp[i], log_softmax(logp[i] + scale * z[i]))
                    for (_, logp), z in zip(blocks, noise) for i in range(len(logp))]
    assert np.mean(per_question) == pytest.approx(0.3, rel=1e-6) == mean_kl(blocks, noise, scale)
    assert noise_scale(blocks, noise, float("inf")) is None


def test_right_choices_are_read_from_the_answer():
    assert right_choices("Paris", json.dumps(["Lyon", "Paris"])) == (1,)
    assert right_choices("A / C", json.dumps(["A", "B", "C"])) == (0, 2)
    assert right_choices("0 / 2", "null") == (0, 2)
    assert right_choices(float("nan"), json.dumps(["A"])) is None
