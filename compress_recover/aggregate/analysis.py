"""Rule ``analysis``: the statistics and the verdict, written to ``results/analysis/``.

After checking that no training or held-out passage (of the corpus text and of every
model's generated text) names a question's subject together with its answer,
:func:`analyse` turns the per-question table (:mod:`.stats`) into the files below. The
questions are split into dev and test (:mod:`compress_recover.data.split`): the verdict and
every headline table use the test questions of the final budget's runs only; the dev
questions serve choices (``dev_accuracy.csv``), the intermediate checkpoints the budget curve.

- ``questions.csv``: one row per (model, compression, recovery, seed, steps, task, question),
  with its ``split``; ``split.csv``: (task, doc_id, split) of every question;
- ``accuracy.csv``: accuracy per (model, compression, recovery, task), mean and sd over seeds;
- ``recovery_fraction.csv``: raw and control-subtracted recovery fractions with 95%
  two-level bootstrap intervals, per task;
- ``decisions.csv``: per (model, compression, recovery) on the pooled knowledge task, the
  fraction the verdict uses, its interval at the Holm level, p-values and the decision;
- ``noninferiority.csv``, ``format_control.csv``, ``margin_tests.csv``,
  ``paired_tests.csv`` (McNemar), ``flips.csv``, ``prompt_pool_ablation.csv``;
- ``dev_accuracy.csv``: per (model, compression, recovery, steps) on the pooled dev
  questions, accuracy and recovery fractions with 95% intervals and each recovery group's
  rank among those of its method (for choosing; no verdict, no Holm);
- ``budget_curve.csv``: the same per checkpoint on the pooled test questions, from the
  compressed model (steps 0) to the final budget, with the training tokens (descriptive);
- ``collateral.csv``: per knowledge task (held-out ones flagged) and recovered model at the
  final budget, the questions it newly breaks and newly fixes against its compressed model;
- ``failed_runs.csv``: every run (and checkpoint) whose recovery training failed, with why;
  those runs have no question in any table;
- ``verdict.json``: the rule in words, its settings (the split's with its question counts),
  the leak checks, per compression the verdict with the evidence it rests on (a method
  whose every run failed to train: decision ``failed (<why>)``), and ``failed_runs``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..data.leaks import default_variants, pairs_from_tasks
from ..io import atomic_file, read_json, read_jsonl, write_json
from ..data.split import DEV, TEST, split_counts, split_settings
from .leak_check import RegexLeakMatcher
from .stats import (ALL_KNOWLEDGE, BASE, FAILED_RUN_COLUMNS, accuracy_draws, at_final_budget, budget_steps,
                    build_grids, failed_groups, failure_text, final_steps, flips, fraction, holm, lower_bound,
                    margin_tests, method_of, paired_tests, pool_ablation, question_table, seed_means, seeds_text,
                    share_at_or_above, share_at_or_below, share_below, split_failed, stable_seed, upper_bound,
                    with_pooled_task)

log = logging.getLogger(__name__)

INTERVAL = 0.95  # the level of the descriptive intervals (tables); decisions use Holm levels
MAX_ITERS = 20000


class LeakError(RuntimeError):
    pass


def check_leaks(text_dir: str | Path, task_dirs: list[str]) -> dict:
    """Fail if any kept passage (train or held-out) names a question's subject and answer;
    else the counts of the text's ``leak_report.json`` (with its ``model`` for a model's
    generated text)."""
    leak_filter = RegexLeakMatcher(pairs_from_tasks(task_dirs), default_variants())  # not the filter's matcher
    hits = []
    for split in ("train", "heldout"):
        for row in read_jsonl(Path(text_dir) / f"{split}.jsonl"):
            found = leak_filter.leaks(row["text"])
            if found:
                hits.append({"split": split, "id": row["id"], "leaks": found[:3]})
    if hits:
        raise LeakError(f"{len(hits)} passage(s) of {text_dir} name a question's subject and answer together, "
                        f"e.g. {hits[:3]}; rebuild that text with the current leak filter and knowledge tasks "
                        "(delete the folder, or snakemake --forcerun text / generated_text)")
    report = read_json(Path(text_dir) / "leak_report.json")
    optional = {k: report[k] for k in ("model", "dropped_too_short") if k in report}
    return {**optional, "dropped_leaks": report["dropped_leaks"], "passages_total": report["passages_total"],
            "train_passages": report["train_passages"], "heldout_passages": report["heldout_passages"],
            "fact_pairs_checked": len(leak_filter.pairs), "remaining_leaks": 0}


@dataclass(frozen=True)
class Settings:
    """The thresholds of the verdict (config.yaml ``report``)."""

    alpha: float = 0.05
    min_recovery_fraction: float = 0.5
    bootstrap_iters: int = 1000
    noninferiority_margin: float = 0.1
    power: float = 0.8
    min_damage: float = 0.02  # accuracy (absolute) below which a loss does not matter
    min_tail_resamples: int = 20  # resamples beyond the smallest Holm bound, at least

    @classmethod
    def from_report(cls, report: dict | None = None, **overrides) -> "Settings":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (report or {}).items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# --------------------------------------------------------------------------- fractions

def _sd(values) -> float:
    import numpy as np

    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def _seed_resample(observed, iters: int, rng):
    """Mean of the observed per-run values over runs resampled with replacement (questions fixed)."""
    import numpy as np

    observed = np.asarray(observed, dtype=float)
    return seed_means(np.broadcast_to(observed, (iters, len(observed))), rng)


@dataclass
class PairDraws:
    """Point estimates and bootstrap draws of one recovery's fraction on one task."""

    estimates: dict
    raw: dict  # "two_level" / "questions" / "seeds" -> draws
    controlled: dict | None
    accuracy: "numpy.ndarray | None" = None  # noqa: F821  two-level draws of the recovered accuracy

    @property
    def has_control(self) -> bool:
        return self.controlled is not None

    def used(self, controlled: bool | None = None) -> tuple[float, dict]:
        """(point, draws) of the fraction the verdict uses: control-subtracted when it can."""
        use = self.has_control if controlled is None else controlled
        e = self.estimates
        return (e["controlled_fraction"], self.controlled) if use else (e["recovery_fraction"], self.raw)


def pair_draws(grid, draws: dict, comp: str, rec: str, seed: int) -> PairDraws:
    """Recovery fraction of ``rec`` on ``comp``: point estimates (means over seeds, control
    gain subtracted when the uncompressed model was recovered too) and bootstrap draws:
    two-level (seeds, then questions), questions only (seeds fixed) and seeds only
    (questions fixed), the last two for the power estimate."""
    import numpy as np

    rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, comp, rec, "seeds"))
    base, compressed, recovered = grid.get(BASE, BASE), grid.get(comp, BASE), grid.get(comp, rec)
    control = grid.get(BASE, rec)
    b, c = draws[(BASE, BASE)][:, 0], draws[(comp, BASE)][:, 0]
    b0, c0, runs = base.accuracy, compressed.accuracy, recovered.run_accuracies
    iters = len(b)
    r = {"two_level": seed_means(draws[(comp, rec)], rng), "questions": draws[(comp, rec)].mean(axis=1),
         "seeds": _seed_resample(runs, iters, rng)}
    e = {"n": grid.n, "seeds": [s for s in recovered.seeds], "runs": list(recovered.runs), "base_acc": b0,
         "compressed_acc": c0, "recovered_acc": float(runs.mean()), "recovered_sd": _sd(runs),
         "recovery_fraction": fraction(b0, c0, runs.mean()), "fraction_sd": _sd(fraction(b0, c0, runs)),
         "control_acc": float("nan"), "control_sd": float("nan"), "control_gain": float("nan"),
         "control_seeds": [], "controlled_fraction": float("nan"), "controlled_sd": float("nan")}
    raw = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), v) for k, v in r.items()}
    if control is None:
        return PairDraws(e, raw, None, r["two_level"])
    ctrl = control.run_accuracies
    gain = float(ctrl.mean() - b0)
    # Only a gain is subtracted (clipped at 0, draw by draw): a method is never credited on the
    # compressed model for what it breaks on the uncompressed one.
    g = {"two_level": seed_means(draws[(BASE, rec)], rng) - b, "questions": draws[(BASE, rec)].mean(axis=1) - b,
         "seeds": _seed_resample(ctrl, iters, rng) - b0}
    g = {k: np.maximum(v, 0.0) for k, v in g.items()}
    e.update(control_acc=float(ctrl.mean()), control_sd=_sd(ctrl), control_gain=gain,
             control_seeds=list(control.seeds), controlled_fraction=fraction(b0, c0, runs.mean(), max(gain, 0.0)),
             controlled_sd=_sd(fraction(b0, c0, runs, max(gain, 0.0))))
    controlled = {k: fraction(*((b0, c0) if k == "seeds" else (b, c)), r[k], g[k]) for k in r}
    return PairDraws(e, raw, controlled, r["two_level"])


def grid_pairs(grid, draws: dict, seed: int) -> dict:
    """(compression, recovery) -> :class:`PairDraws` of every recovery of a compressed model."""
    return {(c, r): pair_draws(grid, draws, c, r, seed) for c in grid.compressions() for r in grid.recoveries(c)}


def _interval(draws, level: float = INTERVAL) -> tuple[float, float]:
    tail = (1 - level) / 2
    return lower_bound(draws, tail), upper_bound(draws, tail)


def fraction_rows(grid, pairs: dict, methods: dict, sides: dict) -> list[dict]:
    """Rows of ``recovery_fraction.csv`` for one grid (95% intervals, no multiplicity)."""
    rows = []
    for (comp, rec), pair in pairs.items():
        e = pair.estimates
        method = method_of(rec, None, methods)
        low, high = _interval(pair.raw["two_level"])
        row = {"model": grid.model, "compression": comp, "recovery": rec, "method": method,
               "side": sides.get(method, ""), "task": grid.task, "n": e["n"], "seeds": len(e["runs"]),
               **{k: e[k] for k in ("base_acc", "compressed_acc", "recovered_acc", "recovered_sd", "control_gain",
                                    "recovery_fraction", "fraction_sd")},
               "ci_low": low, "ci_high": high, "controlled_fraction": e["controlled_fraction"],
               "controlled_sd": e["controlled_sd"], "controlled_ci_low": float("nan"),
               "controlled_ci_high": float("nan")}
        if pair.has_control:
            row["controlled_ci_low"], row["controlled_ci_high"] = _interval(pair.controlled["two_level"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- decisions

def bootstrap_size(settings: Settings, smallest_tail: float) -> int:
    """Resamples so that at least ``min_tail_resamples`` lie beyond the smallest Holm bound
    (never fewer than ``bootstrap_iters``, never more than 20,000)."""
    needed = math.ceil(settings.min_tail_resamples / smallest_tail) if smallest_tail > 0 else 0
    return max(settings.bootstrap_iters, min(needed, MAX_ITERS))


def power_needed(point: float, tau: float, v_questions: float, v_seeds: float, n: int, seeds: int,
                 level: float, power: float) -> dict:
    """Questions (seeds fixed) and seeds (questions fixed) needed to decide at ``power``.

    Normal approximation: the estimate's variance is v_q * n / n' + v_s * S / S' (v_q, v_s:
    bootstrap variances from resampling only questions, only seeds); deciding against the
    threshold two-sided at ``level`` with probability ``power`` needs
    |F - tau| >= (z(1 - level/2) + z(power)) * sd, so n' = n * v_q / (d^2 - v_s) and
    S' = S * v_s / (d^2 - v_q) with d = |F - tau| / (z(1 - level/2) + z(power)), and
    ``scale_both`` k = (v_q + v_s) / d^2: k times the questions and k times the seeds."""
    from scipy.stats import norm

    out = {"questions_needed": None, "seeds_needed": None, "scale_both": None, "level": level, "power": power}
    if not all(math.isfinite(x) for x in (point, v_questions, v_seeds)) or point == tau:
        out["note"] = "no estimate: the fraction is undefined or sits on the threshold"
        return out
    d2 = ((point - tau) / (norm.ppf(1 - level / 2) + norm.ppf(power))) ** 2
    out["questions_needed"] = math.ceil(n * v_questions / (d2 - v_seeds)) if d2 > v_seeds else math.inf
    if seeds > 1 and v_seeds > 0:
        out["seeds_needed"] = math.ceil(seeds * v_seeds / (d2 - v_questions)) if d2 > v_questions else math.inf
        out["scale_both"] = math.ceil((v_questions + v_seeds) / d2 * 10) / 10  # k x questions and k x seeds
    else:
        out["note"] = "one seed: the seed-to-seed variance is not estimated (questions_needed assumes none)"
    return out


def recovery_decisions(pairs: dict, settings: Settings, methods: dict, sides: dict) -> list[dict]:
    """Holm over every (model, compression, recovery) on the pooled task: each tested
    two-sided against F = min_recovery_fraction (p = 2 min(share below, share at or above));
    its interval is shown at 1 - alpha_i, alpha_i its Holm level; it recovers when the
    interval's lower end >= the threshold, fails when its upper end < it."""
    tau = settings.min_recovery_fraction
    keys = list(pairs)
    p_values = []
    for key in keys:
        draws = pairs[key].used()[1]["two_level"]  # undefined resamples count against both claims
        p_values.append(min(1.0, 2 * min(share_below(draws, tau), share_at_or_above(draws, tau))))
    adjusted, levels, rejected = holm(p_values, settings.alpha)
    out = []
    for key, p, p_holm, level, reject in zip(keys, p_values, adjusted, levels, rejected, strict=True):
        model, comp, rec = key
        pair = pairs[key]
        point, d = pair.used()
        low, high = lower_bound(d["two_level"], level / 2), upper_bound(d["two_level"], level / 2)
        decision = "recovers" if low >= tau else "fails" if high < tau else "undecided"
        if (decision != "undecided") != reject:
            raise AssertionError(f"{key}: interval decision {decision} disagrees with Holm ({p_holm})")
        method = method_of(rec, None, methods)
        if method not in sides:
            raise ValueError(f"recovery '{rec}' (method '{method}') has no registered side")
        e = pair.estimates
        row = {"model": model, "compression": comp, "recovery": rec, "method": method, "side": sides[method],
               **e, "fraction_used": "controlled" if pair.has_control else "raw (no control run)",
               "fraction": point, "threshold": tau, "holm_level": level, "confidence": 1 - level,
               "ci_low": low, "ci_high": high, "p_value": p, "p_holm": p_holm, "decision": decision,
               "family_size": len(keys)}
        if decision == "undecided":
            row["power"] = power_needed(point, tau, _var(d["questions"]), _var(d["seeds"]), e["n"], len(e["runs"]),
                                        settings.alpha / len(keys), settings.power)
        out.append(row)
    return out


def _var(draws) -> float:
    import numpy as np

    finite = draws[np.isfinite(draws)]
    return float(finite.var(ddof=1)) if len(finite) > 1 else float("nan")


def _failure_notes(decision: dict, groups: dict) -> dict:
    """A decided recovery group with the seeds of it (and of its control run on the
    uncompressed model) whose training failed: ``failed_seeds``, ``failure`` and a ``note``."""
    model, rec = decision["model"], decision["recovery"]
    runs = groups.get((model, decision["compression"], rec), [])
    control = groups.get((model, BASE, rec), [])
    notes = [f"{rec}: {seeds_text(runs)} failed to train ({failure_text(runs)}); decided on the other seed(s)"
             ] if runs else []
    if control:
        notes.append(f"{rec}: control run {seeds_text(control)} on the uncompressed model failed to train "
                     f"({failure_text(control)}); its control gain rests on the other seed(s), if any")
    return {**decision, "status": "ok", "failed_seeds": [r["seed"] for r in runs],
            "failure": failure_text(runs) if runs else "", "note": "; ".join(notes)}


def failed_decision(key: tuple, runs: list[dict], methods: dict, sides: dict) -> dict:
    """The decision of a recovery group whose every run at the final budget failed to train:
    ``failed (<why>)``, outside the Holm family (it was not tried)."""
    model, comp, rec = key
    method = method_of(rec, None, methods)
    why = failure_text(runs)
    return {"model": model, "compression": comp, "recovery": rec, "method": method, "side": sides.get(method, ""),
            "status": "failed", "seeds": [r["seed"] for r in runs], "runs": [r["run"] for r in runs],
            "failed_seeds": [r["seed"] for r in runs], "failure": why, "decision": f"failed ({why})",
            "note": f"{rec} failed to train: {why}", "family_size": None}


def with_failures(decisions: list[dict], groups: dict, damage: dict, methods: dict, sides: dict) -> list[dict]:
    """``decisions`` with the runs that failed to train at the final budget (``groups``,
    :func:`failed_groups`): a group decided on its other seeds notes the failed ones
    (:func:`_failure_notes`); a group whose every run failed, on a compression with a verdict,
    gets its own row (:func:`failed_decision`)."""
    out = [_failure_notes(d, groups) for d in decisions]
    decided = {(d["model"], d["compression"], d["recovery"]) for d in decisions}
    out.extend(failed_decision(key, runs, methods, sides) for key, runs in groups.items()
               if key[1] != BASE and key not in decided and key[:2] in damage)
    return out


def damage_decisions(grids: dict, draws: dict, settings: Settings) -> dict:
    """Per (model, compression) on the pooled task: damage = base - compressed accuracy,
    its one-sided upper bound at the Holm level over the compressions, and whether that is
    below ``min_damage`` (no measurable loss)."""
    keys, deltas = [], []
    for (model, task), grid in grids.items():
        for comp in grid.compressions():
            keys.append((model, comp))
            d = draws[(model, task)]
            deltas.append((grid, d[(BASE, BASE)][:, 0] - d[(comp, BASE)][:, 0]))
    p_values = [share_at_or_above(delta, settings.min_damage) for _, delta in deltas]
    adjusted, levels, rejected = holm(p_values, settings.alpha)
    out = {}
    for key, (grid, delta), p, p_holm, level, reject in zip(keys, deltas, p_values, adjusted, levels, rejected,
                                                            strict=True):
        base, compressed = grid.get(BASE, BASE), grid.get(key[1], BASE)
        b, c = base.accuracy, compressed.accuracy
        b_right, c_right = base.correct[0] > 0.5, compressed.correct[0] > 0.5
        upper = upper_bound(delta, level)
        if (upper < settings.min_damage) != reject:
            raise AssertionError(f"{key}: damage bound disagrees with Holm")
        out[key] = {"base_acc": b, "compressed_acc": c, "damage": b - c, "damage_upper": upper,
                    "damage_low": lower_bound(delta, level), "holm_level": level, "confidence": 1 - level,
                    "p_value": p, "p_holm": p_holm, "min_damage": settings.min_damage,
                    "no_measurable_loss": bool(upper < settings.min_damage), "n": grid.n,
                    "lost_only": int((b_right & ~c_right).sum()), "gained_only": int((~b_right & c_right).sum())}
    return out


def noninferiority(pairs: dict, settings: Settings, methods: dict, sides: dict) -> list[dict]:
    """Per (model, compression): every input-side recovery I vs every parameter-side one P,
    one-sided test of H0: F_I - F_P <= -margin on paired bootstrap draws (same questions),
    Holm over all such pairs; non-inferior when the lower bound at the Holm level > -margin.
    Control-subtracted fractions when both have a control run, else raw for both."""
    import numpy as np

    side = {key: sides.get(method_of(key[2], None, methods)) for key in pairs}
    tests = []
    for (model, comp, i_rec), i_pair in pairs.items():
        if side[(model, comp, i_rec)] != "input":
            continue
        for (m2, c2, p_rec), p_pair in pairs.items():
            if (m2, c2) != (model, comp) or side[(m2, c2, p_rec)] != "parameters":
                continue
            controlled = i_pair.has_control and p_pair.has_control
            (fi, di), (fp, dp) = i_pair.used(controlled), p_pair.used(controlled)
            diff = di["two_level"] - dp["two_level"]
            tests.append(((model, comp, i_rec, p_rec), fi - fp, diff, controlled))
    margin = settings.noninferiority_margin
    p_values = [share_at_or_below(diff, -margin) for _, _, diff, _ in tests]
    adjusted, levels, rejected = holm(p_values, settings.alpha)
    out = []
    for (key, point, diff, controlled), p, p_holm, level, reject in zip(tests, p_values, adjusted, levels, rejected,
                                                                        strict=True):
        low, high = lower_bound(diff, level), upper_bound(diff, level)
        if (low > -margin) != reject:
            raise AssertionError(f"{key}: non-inferiority bound disagrees with Holm")
        out.append({"model": key[0], "compression": key[1], "input": key[2], "parameters": key[3],
                    "fractions": "controlled" if controlled else "raw", "difference": point,
                    "lower_bound": low, "upper_bound": high, "holm_level": level, "confidence": 1 - level,
                    "margin": margin, "p_value": p, "p_holm": p_holm,
                    "result": "non-inferior" if low > -margin and not np.isnan(point) else "not shown"})
    return out


# --------------------------------------------------------------------------- the verdict

def final_budget(budget: dict | None) -> dict | None:
    """The final budget's steps, batch_size, seq_len and tokens (None without a budget)."""
    steps = final_steps(budget)
    if steps is None:
        return None
    return {"steps": steps, "batch_size": budget["batch_size"], "seq_len": budget["seq_len"],
            "tokens": steps * budget["batch_size"] * budget["seq_len"]}


def verdict_rule(sides: dict[str, str], settings: Settings | None = None, budget: dict | None = None) -> str:
    """The verdict's rule in words, with its thresholds and the methods of each side."""
    s = settings or Settings()

    def named(side: str) -> str:
        return ", ".join(sorted(m for m, v in sides.items() if v == side)) or "none registered"

    final = final_budget(budget)
    tokens = f" ({final['steps']} steps x {final['batch_size']} x {final['seq_len']} tokens)" if final else ""
    curve = ("; the intermediate checkpoints of the budget curve (steps "
             f"{', '.join(map(str, budget_steps(budget)[:-1]))}) are described, never decided on"
             if len(budget_steps(budget)) > 1 else "")
    return (
        "Per model and compression setting, on the pooled test questions of every knowledge task (held-out tasks "
        "included; the dev questions, if any, serve choices of recipe and budget and enter no decision), every "
        f"model scored on the same questions, with the runs at the final budget{tokens}{curve}. 'Base' is the "
        "uncompressed model at its stated base precision; damage = base "
        "accuracy - compressed accuracy. A recovery method's fraction F = (recovered - compressed - control gain) / "
        "(base - compressed): recovered is the mean over the method's seeds; control gain = (the uncompressed model "
        "recovered by the same method, mean over its seeds) - base when positive, else 0 (a method is never "
        "credited for what it breaks on the uncompressed model); a method without that control run uses "
        "F = (recovered - compressed) / (base - compressed) and is flagged 'raw'. Intervals are percentile "
        "bootstraps that resample the method's seeds with replacement, then the questions with replacement (one "
        "question resample shared by every model of the grid). Error control: the family is every (model, "
        "compression, recovery method) pair, m pairs; each is tested two-sided against F = min_recovery_fraction "
        f"({s.min_recovery_fraction}) with the bootstrap p-value 2 x min(share of resamples with F < threshold, "
        "share with F >= threshold), where a resample in which compression did no damage has no F and counts "
        f"against both; Holm's procedure at alpha = {s.alpha} gives each pair its level alpha_i = alpha / "
        "(m - r + 1) for the pair of rank r by p-value while Holm rejects, and the level at which it stopped for "
        "the rest; each interval is shown at confidence 1 - alpha_i. A method RECOVERS when the "
        "lower end of that interval is >= min_recovery_fraction, FAILS when the upper end is < min_recovery_fraction, "
        "and is UNDECIDED otherwise (the same as Holm-adjusted p <= alpha). The verdict is the first that applies: "
        "(1) NO MEASURABLE LOSS: the one-sided upper bound of the damage (question bootstrap), at confidence "
        "1 - alpha_j (alpha_j its Holm level over the compressions, testing H0: damage >= min_damage), is below "
        f"min_damage ({s.min_damage} accuracy); "
        f"(2) DISPLACED: an input-side method ({named('input')}) recovers; "
        f"(3) FORGOTTEN: a parameter-side method ({named('parameters')}) recovers and every input-side method "
        "tried fails; "
        f"(4) NOT RECOVERED AT THIS BUDGET{tokens}: every method tried fails, which is positive evidence that "
        "none wins back min_recovery_fraction of the loss at this budget, not an absence of evidence; "
        "(5) INCONCLUSIVE: anything else; for each undecided method the report estimates the questions (seeds "
        f"fixed) or seeds (questions fixed) that would decide it with probability {s.power} at the level "
        "alpha / family size. A run whose training diverged (a NaN or infinite loss or weight) has no adapter and "
        "no score: a method whose every run at the final budget failed is FAILED, was not tried, and stays out of "
        "the family (every method failed: inconclusive); a method with some failed seeds is decided on the others; "
        "the verdict's reason names each failure."
    )


def noninferiority_rule(settings: Settings) -> str:
    return (
        "Non-inferiority (reported beside the verdict, not part of it): per compression, every input-side method I "
        "against every parameter-side method P, H0: F_I - F_P <= -noninferiority_margin "
        f"({settings.noninferiority_margin}), on paired bootstrap draws (same questions, each method's seeds "
        f"resampled), Holm over all such pairs at alpha = {settings.alpha}; 'non-inferior' when the lower bound at "
        "confidence 1 - alpha_i is above -noninferiority_margin, else 'not shown'. Control-subtracted fractions "
        "when both methods have a control run, else raw fractions for both."
    )


def _fmt_interval(row: dict) -> str:
    return f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}] at {row['confidence']:.1%}"


def _power_text(row: dict) -> str:
    p = row.get("power") or {}
    q, s = p.get("questions_needed"), p.get("seeds_needed")
    parts = []
    if q is not None:
        parts.append("no number of questions alone" if q == math.inf else f"about {q:,} questions")
    if s is not None:
        parts.append("no number of seeds alone" if s == math.inf else f"about {s} seeds")
    if q == math.inf and s == math.inf and p.get("scale_both"):
        parts.append(f"{p['scale_both']}x the questions and {p['scale_both']}x the seeds together")
    return " or ".join(parts) or p.get("note", "no estimate")


def _wins(m: dict) -> str:
    return f"{m['recovery']} F = {m['fraction']:.2f} {_fmt_interval(m)} >= {m['threshold']}"


def decide(damage: dict, methods: list[dict], budget: dict | None) -> tuple[str, str]:
    """The verdict and its reason from the damage decision and each method's decision. A
    method that failed to train (``status`` failed) was not tried: the verdict rests on the
    others, and the reason says so (as it notes seeds that failed); when every method failed,
    the verdict is inconclusive (after the no-measurable-loss test, which needs no method)."""
    tried = [m for m in methods if m.get("status") != "failed"]
    notes = "".join(f"; {m['note']}" for m in methods if m.get("note"))
    if methods and not tried and not damage["no_measurable_loss"]:
        return "inconclusive", "every recovery method failed to train, so none was tried" + notes
    verdict, reason = _decide_tried(damage, tried, budget)
    return verdict, reason + notes


def _decide_tried(damage: dict, methods: list[dict], budget: dict | None) -> tuple[str, str]:
    """:func:`decide` on the methods that were trained."""
    if damage["no_measurable_loss"]:
        return "no measurable loss", (
            f"damage {damage['damage']:.3f} (base {damage['base_acc']:.3f}, compressed "
            f"{damage['compressed_acc']:.3f}); its upper bound {damage['damage_upper']:.3f} at "
            f"{damage['confidence']:.1%} is below min_damage {damage['min_damage']}")
    by = {d: [m for m in methods if m["decision"] == d] for d in ("recovers", "fails", "undecided")}
    inputs = [m for m in methods if m["side"] == "input"]
    say = "; ".join
    recovering_inputs = [m for m in by["recovers"] if m["side"] == "input"]
    if recovering_inputs:
        return "displaced", "input-side recovery wins the knowledge back: " + say(map(_wins, recovering_inputs))
    recovering_params = [m for m in by["recovers"] if m["side"] == "parameters"]
    if recovering_params and inputs and all(m["decision"] == "fails" for m in inputs):
        return "forgotten", ("only new parameters win it back: " + say(map(_wins, recovering_params))
                             + "; every input-side method fails: " + say(
            f"{m['recovery']} {_fmt_interval(m)} < {m['threshold']}" for m in inputs))
    if methods and len(by["fails"]) == len(methods):
        final = final_budget(budget)
        tokens = f" ({final['steps']} steps, {final['tokens']:,} tokens)" if final else ""
        return "not recovered at this budget", (
            f"every method fails at this budget{tokens}, positive evidence that none wins back "
            f"{methods[0]['threshold']:.0%} of the loss: " + say(
                f"{m['recovery']} {_fmt_interval(m)} < {m['threshold']}" for m in methods))
    if not methods:
        return "inconclusive", "no recovery method was run on this compression"
    if not by["undecided"]:
        return "inconclusive", ("a parameter-side method recovers but no input-side method was tried, so displaced "
                                "and forgotten cannot be told apart")
    return "inconclusive", "undecided: " + say(
        f"{m['recovery']} F = {m['fraction']:.2f} {_fmt_interval(m)} contains {m['threshold']} "
        f"(would need {_power_text(m)} to decide at power {(m.get('power') or {}).get('power', '')})"
        for m in by["undecided"])


def verdicts(damage: dict, decisions: list[dict], tests: list[dict], margins, mcnemar, budget: dict | None) -> list:
    """The verdict per (model, compression), with the evidence it rests on."""
    out = []
    for (model, comp), dmg in damage.items():
        methods = [m for m in decisions if (m["model"], m["compression"]) == (model, comp)]
        for m in methods:
            m["margin_test"] = _records(margins, model=model, compression=comp, recovery=m["recovery"],
                                        task=ALL_KNOWLEDGE)
            m["mcnemar"] = _records(mcnemar, model=model, task=ALL_KNOWLEDGE, comparison="recovery",
                                    b=f"{comp}/{m['recovery']}")
        verdict, reason = decide(dmg, methods, budget)
        ni = [t for t in tests if (t["model"], t["compression"]) == (model, comp)]
        out.append({"model": model, "compression": comp, "verdict": verdict, "reason": reason,
                    "evidence": {**dmg, "methods": methods, "noninferiority": ni}})
    return out


def _records(frame, **match) -> list[dict]:
    if frame is None or frame.empty:
        return []
    mask = True
    for k, v in match.items():
        mask = mask & (frame[k] == v)
    return frame[mask].to_dict("records")


# --------------------------------------------------------------------------- tables

def accuracy_table(grids: dict):
    """Accuracy per (model, compression, recovery, task): mean and sd over seeds."""
    import pandas as pd

    rows = []
    for grid in grids.values():
        for (comp, rec), cell in grid.cells.items():
            accs = cell.run_accuracies
            rows.append({"model": grid.model, "compression": comp, "recovery": rec, "task": grid.task,
                         "seeds": len(cell.runs), "n": grid.n, "acc": float(accs.mean()), "acc_sd": _sd(accs),
                         "margin": float(cell.margin.mean()), "margin_norm": float(cell.margin_norm.mean())})
    return base_first(pd.DataFrame(rows))


def control_table(grids: dict, draws: dict, seed: int):
    """Format control per (model, task, recovery): the uncompressed model recovered by the
    method (mean and sd over seeds) minus the base model, with a 95% two-level interval."""
    import numpy as np
    import pandas as pd

    rows = []
    for key, grid in grids.items():
        base = grid.get(BASE, BASE)
        if base is None:
            continue
        for rec in grid.recoveries(BASE):
            ctrl = grid.get(BASE, rec).run_accuracies
            rng = np.random.default_rng(stable_seed(seed, grid.model, grid.task, rec, "control"))
            gain = seed_means(draws[key][(BASE, rec)], rng) - draws[key][(BASE, BASE)][:, 0]
            low, high = _interval(gain)
            rows.append({"model": grid.model, "task": grid.task, "recovery": rec, "seeds": len(ctrl),
                         "base_acc": base.accuracy, "control_acc": float(ctrl.mean()), "control_sd": _sd(ctrl),
                         "control_gain": float(ctrl.mean() - base.accuracy), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["model", "task", "recovery", "seeds", "base_acc", "control_acc", "control_sd",
                                       "control_gain", "ci_low", "ci_high"])


def base_first(frame):
    """Rows ordered model, then the base model (compression and recovery none) first."""
    if frame.empty or "compression" not in frame:
        return frame
    keys = {"_c": frame.compression != BASE}
    if "recovery" in frame:
        keys["_r"] = frame.recovery != BASE
    order = frame.assign(**keys).sort_values(
        [c for c in ("model", "_c", "compression", "_r", "recovery", "seed", "task") if c in frame or c in keys],
        kind="stable")
    return order.drop(columns=list(keys)).reset_index(drop=True)


# --------------------------------------------------------------------------- splits and budgets

def split_mask(table, which: str):
    """Rows of ``table`` whose question is in split ``which`` (dev or test); fails on a table
    without a valid ``split`` column (build it with :func:`.stats.question_table`)."""
    found = set(table["split"].astype(str)) - {DEV, TEST}
    if found:
        raise ValueError(f"question table: column split must hold '{DEV}' or '{TEST}', found {sorted(found)}; "
                         "build the table with stats.question_table")
    return table["split"] == which


def checkpoint_steps(table, budget: dict | None):
    """``table`` with every trained run's ``steps`` checked against ``recovery.budget.steps``
    (labels written before budget curves have none: they are the final budget's), and the
    final budget (without a budget, the largest steps in the table). Fails when two runs of
    one recovery group share a seed at one budget (a checkpoint labelled without its steps)."""
    allowed = budget_steps(budget)
    trained = table.recovery != BASE
    steps = table["steps"]
    outside = table[trained & steps.notna() & ~steps.isin(allowed)] if allowed else table.iloc[:0]
    if len(outside):
        raise ValueError(f"run(s) {sorted(set(outside.run))} were trained for {sorted(set(outside.steps))} steps, "
                         f"not one of recovery.budget.steps {allowed}")
    final = allowed[-1] if allowed else (int(steps.max()) if steps.notna().any() else None)
    table = table.assign(steps=steps.mask(trained & steps.isna(), final).astype("Int64"))
    runs = table[table.recovery != BASE].groupby(["model", "compression", "recovery", "seed", "steps", "task"],
                                                 dropna=False).run.unique()
    clash = [list(r) for r in runs if len(r) > 1]
    if clash:
        raise ValueError(f"runs {clash[:3]} share recovery group, seed and steps: label every checkpoint with its "
                         "steps (an intermediate checkpoint must not count as a further seed)")
    return table, final


def by_checkpoint(table):
    """``table`` with each checkpoint (recovery group, steps) of a trained run relabelled as a
    recovery group of its own, ``<group>@<steps>`` (the untrained models keep ``none``), so
    the grid machinery (paired draws, fractions, the format control at the same steps)
    applies per budget; and the map back, pseudo-group -> (group, steps)."""
    import pandas as pd

    trained = table.recovery != BASE
    names = table.recovery.where(~trained, table.recovery + "@" + table.steps.astype(str))
    pairs = pd.DataFrame({"name": names, "recovery": table.recovery, "steps": table.steps})[trained]
    pairs = pairs.drop_duplicates()
    if pairs.name.duplicated().any() or set(pairs.name) & set(table.recovery):
        raise ValueError(f"recovery group names clash with their checkpoints' labels <group>@<steps>: "
                         f"{sorted(set(pairs.name))}")
    back = {n: (r, None if pd.isna(s) else int(s)) for n, r, s in pairs.itertuples(index=False)}
    return table.assign(recovery=names), back


CHECKPOINT_COLUMNS = ["model", "compression", "recovery", "method", "side", "steps", "tokens", "n", "seeds",
                      "base_acc", "compressed_acc", "recovered_acc", "recovered_sd", "acc_ci_low", "acc_ci_high",
                      "recovery_fraction", "ci_low", "ci_high", "has_control", "control_gain",
                      "controlled_fraction", "controlled_ci_low", "controlled_ci_high"]


def _tokens(steps, budget: dict | None) -> float:
    if steps is None or not budget:
        return float("nan")
    return steps * budget["batch_size"] * budget["seq_len"]


def _start_row(row: dict, draws: dict) -> dict:
    """Step 0 of ``row``'s recovery group: the compressed model itself (fraction 0, or
    undefined without damage; no control gain without training)."""
    b, c = draws[(BASE, BASE)][:, 0], draws[(row["compression"], BASE)][:, 0]
    point = fraction(row["base_acc"], row["compressed_acc"], row["compressed_acc"])
    (acc_low, acc_high), (low, high) = _interval(c), _interval(fraction(b, c, c))
    controlled = {"control_gain": 0.0, "controlled_fraction": point, "controlled_ci_low": low,
                  "controlled_ci_high": high} if row["has_control"] else {}
    return {**row, "steps": 0, "tokens": 0, "seeds": 0, "recovered_acc": row["compressed_acc"],
            "recovered_sd": float("nan"), "acc_ci_low": acc_low, "acc_ci_high": acc_high,
            "recovery_fraction": point, "ci_low": low, "ci_high": high, **controlled}


def checkpoint_rows(table, *, methods: dict, sides: dict, seed: int, iters: int, budget: dict | None,
                    start: bool = False) -> list[dict]:
    """Per (model, compression, recovery group, steps) on the pooled questions of ``table``:
    accuracy (mean over seeds) and the raw and control-subtracted recovery fractions (the
    control: the uncompressed model's checkpoint at the same steps), each with a 95%
    two-level bootstrap interval, descriptive (no multiplicity correction). ``start``: also
    a row at steps 0 per recovery group, the compressed model, where its curve starts."""
    relabelled, back = by_checkpoint(table[table.task == ALL_KNOWLEDGE])
    named = {name: method_of(rec, None, methods) for name, (rec, _) in back.items()}
    rows = []
    for grid in build_grids(relabelled).values():
        if grid.get(BASE, BASE) is None:
            continue
        draws = accuracy_draws(grid, iters, seed)
        pairs = grid_pairs(grid, draws, seed)
        grid_rows = []
        for row, pair in zip(fraction_rows(grid, pairs, named, sides), pairs.values(), strict=True):
            rec, steps = back[row["recovery"]]
            acc_low, acc_high = _interval(pair.accuracy)
            grid_rows.append({**row, "recovery": rec, "steps": steps, "tokens": _tokens(steps, budget),
                              "acc_ci_low": acc_low, "acc_ci_high": acc_high, "has_control": pair.has_control})
        if start:
            firsts = {(r["compression"], r["recovery"]): r for r in reversed(grid_rows)}
            grid_rows.extend(_start_row(r, draws) for r in firsts.values())
        rows.extend(grid_rows)
    return rows


def _checkpoint_frame(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=CHECKPOINT_COLUMNS)
    return frame.sort_values(["model", "compression", "recovery", "steps"], kind="stable").reset_index(drop=True)


def budget_curve(test, **kw):
    """``budget_curve.csv``: :func:`checkpoint_rows` on the pooled test questions, from the
    compressed model (steps 0) through every checkpoint to the final budget."""
    return _checkpoint_frame(checkpoint_rows(test, start=True, **kw))


def dev_accuracy(dev, order: list[str], **kw):
    """``dev_accuracy.csv``: :func:`checkpoint_rows` on the pooled dev questions (held-out
    tasks have none), with ``rank``: 1 for the best dev accuracy among the recovery groups
    of the same method on the same (model, compression) at the same steps, ties broken by
    ``order`` (the config's order of the groups)."""
    frame = _checkpoint_frame(checkpoint_rows(dev, **kw))
    ranked = frame.assign(_order=frame.recovery.map({r: i for i, r in enumerate(order)})).sort_values(
        ["recovered_acc", "_order"], ascending=[False, True], kind="stable")
    frame["rank"] = ranked.groupby(["model", "compression", "method", "steps"], dropna=False).cumcount() + 1
    return frame.astype({"rank": "Int64"})


COLLATERAL_COLUMNS = ["model", "compression", "recovery", "task", "held_out", "n", "seeds", "compressed_acc",
                      "recovered_acc", "newly_broken", "newly_fixed", "difference", "ci_low", "ci_high"]


def _collateral_row(grid, draws: dict, comp: str, rec: str) -> dict:
    """One recovered model against its model before recovery on one task's grid."""
    before, cell = grid.get(comp, BASE), grid.get(comp, rec)
    right_before, right_after = before.correct[0] > 0.5, cell.correct > 0.5
    difference = draws[(comp, rec)].mean(axis=1) - draws[(comp, BASE)][:, 0]  # questions resampled, seeds fixed
    low, high = _interval(difference)
    return {"model": grid.model, "compression": comp, "recovery": rec, "task": grid.task, "n": grid.n,
            "seeds": len(cell.runs), "compressed_acc": before.accuracy, "recovered_acc": cell.accuracy,
            "newly_broken": float((right_before & ~right_after).sum(axis=1).mean()),
            "newly_fixed": float((~right_before & right_after).sum(axis=1).mean()),
            "difference": cell.accuracy - before.accuracy, "ci_low": low, "ci_high": high}


def collateral(grids: dict, draws: dict, held_out_tasks) -> "pandas.DataFrame":  # noqa: F821
    """``collateral.csv``: per knowledge task's test questions and recovered model at the
    final budget (on the uncompressed model too: the format control), the questions right
    before recovery and wrong after (``newly_broken``) and the reverse (``newly_fixed``),
    means over seeds, and the accuracy difference with a 95% question-bootstrap interval;
    ``held_out``: a task no choice was made on."""
    import pandas as pd

    rows = []
    for key, grid in grids.items():
        if grid.task == ALL_KNOWLEDGE or key not in draws:
            continue
        for comp in [c for c in (BASE, *grid.compressions()) if grid.get(c, BASE) is not None]:
            rows.extend({**_collateral_row(grid, draws[key], comp, rec), "held_out": grid.task in held_out_tasks}
                        for rec in grid.recoveries(comp))
    return base_first(pd.DataFrame(rows, columns=COLLATERAL_COLUMNS))


def split_table(table):
    """``split.csv``: (task, doc_id, split) of every question."""
    questions = table[table.task != ALL_KNOWLEDGE][["task", "doc_id", "split"]].drop_duplicates()
    return questions.sort_values(["task", "doc_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- the whole analysis

def _family(grids: dict, settings: Settings, methods: dict, sides: dict) -> tuple[dict, list, int]:
    """The pooled grids, the verdict's family of (model, compression, recovery) and the
    resamples its smallest Holm bound needs (:func:`bootstrap_size`)."""
    pooled = {k: g for k, g in grids.items() if k[1] == ALL_KNOWLEDGE and g.get(BASE, BASE) is not None}
    family = [(m, c, r) for (m, _), g in pooled.items() for c in g.compressions() for r in g.recoveries(c)]
    side = {key: sides.get(method_of(key[2], None, methods)) for key in family}
    n_ni = sum(1 for a in family for b in family if a[:2] == b[:2] and (side[a], side[b]) == ("input", "parameters"))
    n_comp = sum(len(g.compressions()) for g in pooled.values()) or 1
    tail = min(settings.alpha / (2 * max(len(family), 1)), settings.alpha / n_comp, settings.alpha / max(n_ni, 1))
    return pooled, family, bootstrap_size(settings, tail)


def analyse(table, *, methods: dict[str, str], sides: dict[str, str], settings: Settings, seed: int,
            budget: dict | None = None, held_out_tasks=(), failed: list[dict] = ()) -> dict:
    """Every table and the verdict from the per-question ``table`` (with the pooled task and
    the ``split`` column). The verdict and every headline table use the test questions of
    the final budget's runs only; ``dev_accuracy`` the dev questions and ``budget_curve`` the
    test questions of every checkpoint; ``collateral`` flags ``held_out_tasks``. ``failed``:
    the runs whose recovery training failed (:func:`.stats.split_failed`; not in ``table``),
    listed in ``failed_runs`` and accounted for in the decisions (:func:`with_failures`)."""
    import pandas as pd

    table, final = checkpoint_steps(table, budget)
    test = table[split_mask(table, TEST)]
    headline = test[at_final_budget(test, final)]
    grids = build_grids(headline)
    pooled, family, pooled_iters = _family(grids, settings, methods, sides)
    draws, pairs, fraction_table = {}, {}, []
    for key, grid in grids.items():
        if grid.get(BASE, BASE) is None:
            continue
        draws[key] = accuracy_draws(grid, pooled_iters if key in pooled else settings.bootstrap_iters, seed)
        these = grid_pairs(grid, draws[key], seed)
        fraction_table.extend(fraction_rows(grid, these, methods, sides))
        pairs.update({(grid.model, c, r, grid.task): p for (c, r), p in these.items()})
    family_pairs = {(m, c, r): pairs[(m, c, r, ALL_KNOWLEDGE)] for (m, c, r) in family}
    damage = damage_decisions(pooled, draws, settings)
    decisions = with_failures(recovery_decisions(family_pairs, settings, methods, sides), failed_groups(failed, final),
                              damage, methods, sides)
    ni = noninferiority(family_pairs, settings, methods, sides)
    margins = margin_tests(grids, iters=settings.bootstrap_iters, seed=seed)
    mcnemar = paired_tests(grids, methods=methods, sides=sides)
    curves = {"methods": methods, "sides": sides, "seed": seed, "iters": settings.bootstrap_iters, "budget": budget}
    return {
        "questions": base_first(table), "split": split_table(table), "accuracy": accuracy_table(grids),
        "recovery_fraction": base_first(pd.DataFrame(fraction_table)),
        "decisions": pd.DataFrame([_flat(d) for d in decisions]),
        "noninferiority": pd.DataFrame(ni), "format_control": control_table(grids, draws, seed),
        "margin_tests": margins, "paired_tests": mcnemar, "flips": flips(grids),
        "prompt_pool_ablation": pool_ablation(headline, seed=seed),
        "dev_accuracy": dev_accuracy(table[split_mask(table, DEV)], list(dict.fromkeys(table.recovery)), **curves),
        "budget_curve": budget_curve(test, **curves),
        "collateral": collateral(grids, draws, set(held_out_tasks)),
        "verdicts": verdicts(damage, decisions, ni, margins, mcnemar, budget),
        "failed_runs": pd.DataFrame(list(failed), columns=FAILED_RUN_COLUMNS).astype({"seed": "Int64",
                                                                                      "steps": "Int64"}),
        "bootstrap_iters": {"pooled": pooled_iters, "per_task": settings.bootstrap_iters},
    }


def _flat(decision: dict) -> dict:
    """A decision as one CSV row: lists joined with '|', the power estimate as its own columns."""
    renamed = {"seeds": "seed_values", "control_seeds": "control_seed_values"}  # the seeds themselves, not counts
    row = {renamed.get(k, k): "|".join(map(str, v)) if isinstance(v, list) else v for k, v in decision.items()
           if not isinstance(v, dict)}
    power = decision.get("power") or {}
    row["questions_needed"], row["seeds_needed"] = power.get("questions_needed"), power.get("seeds_needed")
    return row


def _json_safe(obj):
    """NaN and infinities as null (strict JSON), numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


OUTPUTS = ("questions", "split", "accuracy", "recovery_fraction", "decisions", "noninferiority", "format_control",
           "margin_tests", "paired_tests", "flips", "prompt_pool_ablation", "dev_accuracy", "budget_curve",
           "collateral", "failed_runs")


def run_analysis(*, samples: list[tuple[dict, str]], knowledge_tasks: list[str], task_dirs: list[str],
                 text_dir: str, methods: dict[str, str], sides: dict[str, str], budget: dict, seed: int,
                 out_dir: str, report: dict | None = None, seeds: list[int] | None = None,
                 alpha: float | None = None, min_recovery_fraction: float | None = None,
                 bootstrap_iters: int | None = None, split: dict | None = None,
                 generated_text_dirs: list[str] = ()) -> dict:
    """``samples``: (labels, samples.jsonl) of every knowledge-task evaluation; labels carry
    model, compression, recovery, seed (None without recovery), steps (the checkpoint's
    training steps, None without recovery), run and task. An evaluation whose results JSON
    beside its samples (``<task>.json``) records a failed recovery training is set apart
    (:func:`.stats.split_failed`): ``failed_runs.csv`` and verdict.json's ``failed_runs``. ``report``: config.yaml's
    ``report`` section (the keyword thresholds, if given, override it). ``split``:
    config.yaml's ``data.split`` (None: no dev set, every question test).
    ``generated_text_dirs``: each model's generated training text, leak-checked as the
    corpus text is."""
    settings = Settings.from_report(report, alpha=alpha, min_recovery_fraction=min_recovery_fraction,
                                    bootstrap_iters=bootstrap_iters)
    leaks = {**check_leaks(text_dir, task_dirs),
             "generated": [{"text_dir": str(d), **check_leaks(d, task_dirs)} for d in generated_text_dirs]}
    split_config = split_settings(split)
    evaluated, failed = split_failed(samples)
    for run in failed:
        log.warning("%s / %s / %s: recovery training failed (%s); no question of it enters the analysis",
                    run["model"], run["compression"], run["run"], run["failure"])
    table = with_pooled_task(question_table(evaluated, methods, split), knowledge_tasks)
    result = analyse(table, methods=methods, sides=sides, settings=settings, seed=seed, budget=budget,
                     held_out_tasks=split_config["held_out_tasks"], failed=failed)
    questions = result["split"]
    verdict = {
        "rule": verdict_rule(sides, settings, budget),
        "noninferiority_rule": noninferiority_rule(settings),
        "thresholds": asdict(settings),
        "bootstrap_iters": result["bootstrap_iters"],
        "seeds": list(seeds) if seeds is not None else sorted({int(s) for s in table.seed.dropna()}),
        "methods": {k: v for k, v in methods.items()},
        "sides": dict(sides),
        "budget": budget,
        "final_steps": final_steps(budget),
        "split": {**split_config,
                  "counts": split_counts(dict(zip(zip(questions.task, questions.doc_id), questions.split)))},
        "leaks": leaks,
        "verdicts": result["verdicts"],
        "failed_runs": failed,
    }
    out = Path(out_dir)
    for name in OUTPUTS:
        with atomic_file(out / f"{name}.csv") as tmp:
            result[name].to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "verdict.json", _json_safe(json.loads(json.dumps(_json_safe(verdict), default=str))))
    for v in verdict["verdicts"]:
        log.info("%s / %s: %s (%s)", v["model"], v["compression"], v["verdict"], v["reason"])
    return verdict
