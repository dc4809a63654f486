"""The report's own tables as frames of cell texts: accuracy, the content-free baseline, recovery fractions, checkpoints, collateral.

Each function turns the analysis's records (its CSVs, the summary, the cost JSONs) into a
frame whose cells are already text (:mod:`.cells`): a missing value says why, a run whose
recovery training failed says "failed: why" (:func:`compress_recover.failures.shown`).
"""

from __future__ import annotations

from ...failures import failure_text, seeds_text, shown
from ...runs import BASE
from ..stats.questions import ALL_KNOWLEDGE
from ..tables import CELL, PPL_METRIC, base_first_order, mean_sd
from .cells import (NO_CONTROL, NO_DAMAGE, UNDEFINED, base_label, counts, fmt, interval_or_why, isnan, number, or_why,
                    pm, why_undefined, with_interval)

FRACTION_COLUMNS = ["recovery fraction (± sd)", "95% interval", "control_gain", "controlled (± sd)",
                    "controlled 95% interval"]


# --------------------------------------------------------------------------- accuracy per task

def _column_label(cell: tuple, several_models: bool, precisions: dict[str, str]) -> str:
    model, comp, rec = cell
    label = f"{comp}/{rec}"
    if comp == BASE and rec == BASE:
        label += f" = {base_label(model, precisions)}"
    return f"{model}/{label}" if several_models else label


def _test_rows(test_accuracy):
    """The analysis's accuracy.csv (test questions) as mean_sd rows, per task then pooled."""
    if test_accuracy.empty:
        return test_accuracy
    know = test_accuracy.rename(columns={"acc": "value", "acc_sd": "value_sd"})
    know = know.sort_values("task", key=lambda t: t == ALL_KNOWLEDGE, kind="stable")
    names = ["all knowledge (pooled)" if t == ALL_KNOWLEDGE else t for t in know.task]
    return know.assign(task=[f"{t}, test questions" for t in names])[[*CELL, "task", "value", "value_sd", "seeds"]]


def _accuracy_cell(sub, cell: tuple, floatfmt: str, failures: dict) -> str:
    """One model's mean ± sd on one task; "failed: why" when every run of it failed to train,
    the failed seeds noted when some did; n/a when it has no value for another reason."""
    runs = failures.get(cell, [])
    if cell not in sub.index:
        return shown(failure_text(runs)) if runs else UNDEFINED
    failed = f" ({seeds_text(runs)} failed to train)" if runs else ""
    return pm(sub.value[cell], sub.value_sd[cell], floatfmt) + failed


def accuracy_pivot(summary, knowledge_tasks: list[str], precisions: dict[str, str], test_accuracy,
                   failures: dict | None = None):
    """Tasks × models, mean ± sd over seeds at the final budget: knowledge accuracy on the
    test questions per task and pooled (``test_accuracy``: the analysis's accuracy.csv),
    every other task's accuracy as lm-eval reports it, and the held-out perplexity; the
    base model's column first. ``failures``: (model, compression, recovery) -> its runs that
    failed to train at the final budget (:func:`compress_recover.failures.failed_groups`)."""
    import pandas as pd

    other = mean_sd(summary[(summary.metric == "acc") & (summary.subtask == summary.task)
                            & ~summary.task.isin(knowledge_tasks)])
    ppl = mean_sd(summary[summary.metric == PPL_METRIC])
    ppl["task"] = f"held-out {PPL_METRIC}"
    frames = [f for f in (_test_rows(test_accuracy), other, ppl) if len(f)]
    cells = pd.concat(frames, ignore_index=True) if frames else other
    failures = failures or {}
    order = base_first_order([*cells[CELL].itertuples(index=False), *failures])
    several = cells.model.nunique() > 1
    table = {}
    for task in dict.fromkeys(cells.task):
        sub = cells[cells.task == task].set_index(CELL)
        floatfmt = "{:.2f}" if task.startswith("held-out") else "{:.3f}"
        table[task] = {_column_label(c, several, precisions): _accuracy_cell(sub, c, floatfmt, failures)
                       for c in order}
    out = pd.DataFrame(table).T
    out.index.name = "task"
    return out.reset_index()


# --------------------------------------------------------------------------- the content-free baseline

NO_VARIANT = "n/a (no content-free variant)"


def content_free_frame(content_free, precisions: dict[str, str]):
    """The pooled test questions' accuracy beside the content-free baseline, one row per
    model (base first): accuracy, content-free accuracy, accuracy above it with its 95%
    interval, the share answered as without the subject (content_free.csv); None when no
    model has a content-free variant."""
    import pandas as pd

    pooled = content_free[content_free.task == ALL_KNOWLEDGE]
    if pooled.empty or not (pooled.n > 0).any():
        return None
    several = pooled.model.nunique() > 1
    by_cell = pooled.set_index(CELL)
    rows = []
    for cell in base_first_order(pooled[CELL].itertuples(index=False)):
        r = by_cell.loc[cell]
        why = NO_VARIANT if r.n == 0 else UNDEFINED
        rows.append({"model": _column_label(cell, several, precisions), "questions": fmt(float(r.n), "{:,.0f}"),
                     "accuracy": or_why(r.acc, why, "{:.3f}"),
                     "content-free accuracy": or_why(r.acc_content_free, why, "{:.3f}"),
                     "above content-free [95%]": with_interval([r.above_content_free], [r.ci_low], [r.ci_high],
                                                               whys=[why])[0],
                     "answered from the prior": or_why(r.from_prior, why, "{:.3f}")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- recovery fractions

def _fraction_cells(r) -> dict:
    """The recovery fraction columns of one row of recovery_fraction.csv, as text: a NaN says
    why (no damage, no control run)."""
    raw = why_undefined(r.base_acc, r.compressed_acc)
    controlled = why_undefined(r.base_acc, r.compressed_acc, not isnan(r.control_gain))
    return {"recovery fraction (± sd)": pm(r.recovery_fraction, r.fraction_sd, "{:.2f}", raw),
            "95% interval": interval_or_why(r.ci_low, r.ci_high, raw),
            "control_gain": or_why(r.control_gain, NO_CONTROL, "{:.3f}"),
            "controlled (± sd)": pm(r.controlled_fraction, r.controlled_sd, "{:.2f}", controlled),
            "controlled 95% interval": interval_or_why(r.controlled_ci_low, r.controlled_ci_high, controlled)}


PPL_COLUMNS = ["perplexity", "perplexity_control", "perplexity_recovery", "perplexity_recovery_controlled"]


def _perplexity_cells(r) -> dict:
    """Perplexity, the control's (the same method on the base model) and the raw and
    controlled perplexity recovery fractions (:func:`..tables.perplexity_recovery`): why a
    value is missing (no damage, no control run)."""
    no_damage = number(r.perplexity_compressed) - number(r.perplexity_base) <= 0
    no_control = isnan(r.perplexity_control)
    return {"perplexity": or_why(r.perplexity, UNDEFINED, "{:.3f}"),
            "perplexity_control": or_why(r.perplexity_control, NO_CONTROL, "{:.3f}"),
            "perplexity_recovery": or_why(r.perplexity_recovery, NO_DAMAGE if no_damage else UNDEFINED, "{:.3f}"),
            "perplexity_recovery_controlled": or_why(
                r.perplexity_recovery_controlled, NO_DAMAGE if no_damage else NO_CONTROL if no_control else UNDEFINED,
                "{:.3f}")}


def fraction_table(fractions, ppl_rec, failures: dict):
    """The pooled recovery fractions per recovered model (and perplexity's, when measured); a
    model whose every run failed to train says so in every cell, one with failed seeds beside
    its seed count."""
    import pandas as pd

    know = fractions[fractions.task == ALL_KNOWLEDGE]
    if len(ppl_rec):
        know = know.merge(ppl_rec, on=CELL, how="left")
    rows = []
    for r in know.itertuples(index=False):
        runs = failures.get((r.model, r.compression, r.recovery), [])
        rows.append({"model": r.model, "compression": r.compression, "recovery": r.recovery,
                     "seeds": f"{r.seeds}" + (f" ({seeds_text(runs)} failed to train)" if runs else ""),
                     **_fraction_cells(r), **(_perplexity_cells(r) if len(ppl_rec) else {})})
    listed = {(r["model"], r["compression"], r["recovery"]) for r in rows}
    columns = [*CELL, "seeds", *FRACTION_COLUMNS, *(PPL_COLUMNS if len(ppl_rec) else [])]
    rows.extend({**dict.fromkeys(columns, shown(failure_text(runs))), **dict(zip(CELL, key, strict=True)),
                 "seeds": f"0 ({seeds_text(runs)} failed to train)"}
                for key, runs in failures.items() if BASE not in key[1:] and key not in listed)
    return pd.DataFrame(rows, columns=columns)


GAP = 0.3  # how much more of the perplexity damage than of the knowledge damage a recovery must win back


def perplexity_gaps(fractions, ppl_rec) -> list[dict]:
    """The recovered models whose controlled perplexity recovery exceeds their controlled
    knowledge recovery by more than :data:`GAP`: like with like, each with the same method's
    effect on the base model (the control run) subtracted, so training on the held-out
    text's domain is not read as recovery. Compression, recovery and both fractions as
    percentages; a model without a control run is not compared (:func:`perplexity_uncontrolled`)."""
    if not len(ppl_rec):
        return []
    know = fractions[fractions.task == ALL_KNOWLEDGE].merge(ppl_rec, on=CELL, how="inner")
    big = know[(know.perplexity_recovery_controlled - know.controlled_fraction) > GAP]
    return [{"compression": r.compression, "recovery": r.recovery,
             "perplexity": f"{r.perplexity_recovery_controlled:.0%}", "knowledge": f"{r.controlled_fraction:.0%}"}
            for r in big.itertuples()]


def perplexity_uncontrolled(fractions, ppl_rec) -> list[str]:
    """"compression/recovery" of every recovered model with a perplexity whose method has no
    control run (the same method on the base model): its perplexity recovery cannot be
    compared like with like with its knowledge recovery."""
    if not len(ppl_rec):
        return []
    know = fractions[fractions.task == ALL_KNOWLEDGE].merge(ppl_rec, on=CELL, how="inner")
    return [f"{r.compression}/{r.recovery}" for r in know.itertuples() if isnan(r.perplexity_control)]


# --------------------------------------------------------------------------- budgets, collateral, split

def checkpoint_table(frame, extra: tuple[str, ...] = ()):
    """Rows of dev_accuracy.csv or budget_curve.csv: accuracy and the raw and controlled
    recovery fractions, each with its 95% interval (a NaN fraction says why)."""
    if frame.empty:
        return frame
    out = frame[["model", "compression", "recovery"]].copy()
    out["steps"], out["tokens"], out["runs"] = counts(frame.steps), counts(frame.tokens), counts(frame.seeds)
    out["questions"] = counts(frame.n)
    out["accuracy [95%]"] = with_interval(frame.recovered_acc, frame.acc_ci_low, frame.acc_ci_high)
    accuracies = list(zip(frame.base_acc, frame.compressed_acc, strict=True))
    raw = [why_undefined(b, c) for b, c in accuracies]
    controlled = [why_undefined(b, c, str(h) == "True") for (b, c), h in zip(accuracies, frame.has_control,
                                                                              strict=True)]
    out["F raw [95%]"] = with_interval(frame.recovery_fraction, frame.ci_low, frame.ci_high, "{:.2f}", raw)
    out["F controlled [95%]"] = with_interval(frame.controlled_fraction, frame.controlled_ci_low,
                                              frame.controlled_ci_high, "{:.2f}", controlled)
    for column in extra:
        out[column] = frame[column]
    return out


def collateral_table(frame):
    """collateral.csv: per task, before and after recovery, newly broken and fixed, Δ accuracy with its interval."""
    if frame.empty:
        return frame
    out = frame[["model", "compression", "recovery", "task"]].copy()
    out["held out"] = ["yes" if str(h) == "True" else "" for h in frame.held_out]
    out["questions"], out["runs"] = counts(frame.n), counts(frame.seeds)
    out["before recovery"], out["after recovery"] = frame.compressed_acc, frame.recovered_acc
    out["newly broken"] = counts(frame.newly_broken, "{:.1f}")
    out["newly fixed"] = counts(frame.newly_fixed, "{:.1f}")
    out["Δ accuracy [95%]"] = with_interval(frame.difference, frame.ci_low, frame.ci_high)
    return out
