"""Each section's template context, built from the records: verdict, split, tables, budget curve, costs, leaks, config.

One function per section of the page (``templates/sections/<name>.html.j2``); each takes
records (verdict.json, the analysis's frames, the summary, the cost JSONs, the config) and
returns the plain values its template shows, cell texts formatted by :mod:`.cells` and
tables as ``{"head", "rows"}`` (:func:`.cells.table`); a section with nothing to show
gets None and is left out. No HTML here, and no prose beyond a cell's text: the page's
markup is in ``templates/sections/``, what each table means in ``templates/captions/``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

from ...failures import failed_groups, is_failed, shown
from ...runs import COMMIT_SHA
from ..stats.budget import budget_steps
from ..stats.questions import ALL_KNOWLEDGE
from .cells import NO_CONTROL, base_label, bracket, fmt, isnan, number, or_why, p_value, pm, table, why_undefined
from .frames import (GAP, accuracy_pivot, checkpoint_table, collateral_table, cost_table, failed_runs_table,
                     fraction_table, perplexity_gaps, perplexity_uncontrolled, split_counts)

METHOD_HEAD = ["recovery", "side", "training seed(s)", "acc (mean ± sd)", "control gain", "decided on",
               "F (± sd over seeds)", "bounds at α_i/2", "confidence 1 − α_i", "Holm α_i", "p", "Holm p", "decision",
               "P(right choice) Δ vs compressed [95% t], sign-flip p (descriptive)",
               "McNemar p per seed (descriptive)", "to decide at power (pre-specified effect: F = 0)"]
NONINFERIORITY_HEAD = ["input vs parameters", "fractions", "F_input − F_parameters", "lower bound", "confidence",
                       "margin", "p", "Holm p", "result"]


def figure(path: str, alt: str) -> dict:
    """An image inlined: its alt text and its bytes in base64."""
    return {"alt": alt, "data": base64.b64encode(Path(path).read_bytes()).decode()}


def bases_text(precisions: dict[str, str]) -> str:
    """"<model>: base (<precision>)" per model, "; "-joined (empty without precisions)."""
    return "; ".join(f"{m}: {base_label(m, precisions)}" for m in sorted(precisions))


# --------------------------------------------------------------------------- reproducibility

def floating_revisions(config: dict) -> dict[str, str]:
    """Hub models whose revision is a branch or tag (``allow_floating_revision``), by name."""
    return {name: spec.get("revision", "") for name, spec in (config.get("models") or {}).items()
            if spec.get("source") == "hub" and not COMMIT_SHA.fullmatch(spec.get("revision", ""))}


def floating_revision(config: dict) -> dict:
    """The models pinned to a branch or tag, as (model, revision) pairs in name order."""
    return {"floating": sorted(floating_revisions(config).items())}


# --------------------------------------------------------------------------- verdict

def rule(verdict: dict, precisions: dict[str, str]) -> dict:
    """The verdict's rule, the non-inferiority rule and the settings they ran with."""
    iters = verdict.get("bootstrap_iters", {})
    budget = verdict["budget"]
    steps = budget_steps(budget)
    return {"rule": verdict["rule"], "noninferiority_rule": verdict.get("noninferiority_rule", ""),
            "thresholds": verdict["thresholds"], "resamples_pooled": iters.get("pooled", "?"),
            "resamples_per_task": iters.get("per_task", "?"),
            "seeds": ", ".join(map(str, verdict.get("seeds", []))) or "none",
            "final_steps": steps[-1], "curve_steps": ", ".join(map(str, steps[:-1])),
            "batch_size": budget["batch_size"], "seq_len": budget["seq_len"], "bases": bases_text(precisions)}


def _margin_text(m: dict) -> str:
    margin = next((t for t in m.get("margin_test", []) if t["metric"] == "p_right"), None)
    if not margin:
        return "n/a (no margin test)"
    return (f"{fmt(margin['mean_difference'], '{:+.3f}')} {bracket(margin['ci_low'], margin['ci_high'], '{:.3f}')}"
            f", p = {fmt(margin['p_value'], '{:.3g}')}")


def _power_needed(m: dict) -> str:
    """What would decide an undecided method (its power estimate); decided ones need nothing."""
    power = m.get("power") or {}
    if not power:
        return "not needed (decided)"
    q, s = number(power.get("questions_needed")), number(power.get("seeds_needed"))
    k = number(power.get("scale_both"))
    return "; ".join(x for x in (
        None if isnan(q) else f"{fmt(q, '{:,.0f}')} questions",
        None if isnan(s) else f"{fmt(s, '{:,.0f}')} seeds",
        None if isnan(k) or not (math.isinf(q) and math.isinf(s)) else f"or {k:g}× both") if x) \
        or power.get("note", "no estimate")


def _seeds_cell(m: dict) -> str:
    seeds = ", ".join(str(s) for s in m["seeds"]) or "none"
    failed = ", ".join(str(s) for s in m.get("failed_seeds") or [])
    claim = f"; about the {m['claim']}" if m.get("claim") else ""
    return seeds + (f" (failed to train: {failed})" if failed else "") + claim


def _control_text(m: dict) -> str:
    if not m["control_seeds"]:
        return NO_CONTROL
    return f"{fmt(m['control_gain'], '{:+.3f}')} (seed {', '.join(map(str, m['control_seeds']))})"


def _fractions_text(m: dict) -> str:
    """Both fractions (± sd over seeds): control-subtracted and raw; raw alone without a control run."""
    why = why_undefined(m["base_acc"], m["compressed_acc"])
    raw = pm(m["recovery_fraction"], m["fraction_sd"], "{:.2f}", why)
    if not m["control_seeds"]:
        return f"raw {raw}"
    return f"controlled {pm(m['controlled_fraction'], m['controlled_sd'], '{:.2f}', why)}; raw {raw}"


def _bounds_text(m: dict) -> str:
    """The decision's bounds at α_i / 2 (recovers: the lower of both fractions' lower bounds;
    fails: the raw upper bound), then each fraction's interval at that level."""
    both = bracket(m["ci_low"], m["ci_high"])
    if not m["control_seeds"]:
        return both
    return (f"{both} (controlled {bracket(m.get('controlled_ci_low'), m.get('controlled_ci_high'))}; raw "
            f"{bracket(m.get('raw_ci_low'), m.get('raw_ci_high'))})")


def _method_row(m: dict) -> dict:
    """One method's evidence: the cells before the decision, the decision, the cells after;
    for a method whose every run failed to train, its first three cells and why."""
    first = [m["recovery"], m["side"]]
    if is_failed(m):
        return {"cells": [*first, ", ".join(map(str, m["seeds"]))], "failed": shown(m["failure"]),
                "colspan": len(METHOD_HEAD) - 3}
    mcnemar = ", ".join(f"{t['b_seed'] or 'no seed'}: {fmt(t['p_value'], '{:.3g}')}" for t in m.get("mcnemar", []))
    return {"cells": [*first, _seeds_cell(m), pm(m["recovered_acc"], m["recovered_sd"]), _control_text(m),
                      m["fraction_used"], _fractions_text(m), _bounds_text(m), fmt(m["confidence"], "{:.2%}"),
                      fmt(m["holm_level"], "{:.4f}"), p_value(m["p_value"]), p_value(m["p_holm"])],
            "decision": m["decision"],
            "after": [_margin_text(m), mcnemar or "n/a (no McNemar test)", _power_needed(m)]}


def _noninferiority_row(t: dict, why: str) -> dict:
    """One non-inferiority test; ``why``: why a difference of fractions is NaN (no damage)."""
    return {"cells": [f"{t['input']} vs {t['parameters']}", t["fractions"], or_why(t["difference"], why, "{:+.2f}"),
                      fmt(t["lower_bound"], "{:+.2f}"), fmt(t["confidence"], "{:.2%}"), f"−{t['margin']}",
                      p_value(t["p_value"]), p_value(t["p_holm"])],
            "result": t["result"]}


def verdict_class(label: str) -> str:
    """The verdict div's CSS class from its label: "recoverable from the input side" ->
    "recoverable-from-the-input-side" (style.css has one per verdict)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def verdict_block(v: dict, precisions: dict[str, str]) -> dict:
    """One (model, compression)'s verdict, its damage and each method's evidence."""
    e = v["evidence"]
    base = base_label(v["model"], precisions)
    why = why_undefined(e["base_acc"], e["compressed_acc"])
    return {"kind": verdict_class(v["verdict"]), "model": v["model"], "compression": v["compression"],
            "verdict": v["verdict"], "reason": v["reason"], "base": base, "Base": base[:1].upper() + base[1:],
            "base_acc": fmt(e["base_acc"]), "compressed_acc": fmt(e["compressed_acc"]), "n": e["n"],
            "lost_only": e["lost_only"], "gained_only": e["gained_only"], "damage": fmt(e["damage"]),
            "damage_upper": fmt(e["damage_upper"]), "confidence": fmt(e["confidence"], "{:.2%}"),
            "min_damage": e["min_damage"], "p_holm": p_value(e["p_holm"]), "family_size": e.get("family_size", 1),
            "method_head": METHOD_HEAD, "methods": [_method_row(m) for m in e["methods"]],
            "noninferiority_head": NONINFERIORITY_HEAD,
            "noninferiority": [_noninferiority_row(t, why) for t in e.get("noninferiority", [])]}


def failed_runs(verdict: dict) -> dict | None:
    """The runs whose recovery training failed (verdict.json's ``failed_runs``)."""
    failed = verdict.get("failed_runs", [])
    return {"table": table(failed_runs_table(failed))} if failed else None


# --------------------------------------------------------------------------- split, tables

def split(verdict: dict, dev) -> dict | None:
    """The dev/test split's settings and counts, and the dev questions' accuracy (for choosing)."""
    settings = verdict.get("split")
    if not settings:
        return None
    return {"seed": settings["seed"], "dev_fraction": settings["dev_fraction"],
            "held_out": ", ".join(settings.get("held_out_tasks", [])), "counts": table(split_counts(settings)),
            "dev": table(checkpoint_table(dev, ("rank",))) if len(dev) else None}


def accuracy(summary, knowledge_tasks: list[str], precisions: dict[str, str], test_accuracy, failures: dict) -> dict:
    """Accuracy per task and the held-out perplexity, tasks × models."""
    return {"table": table(accuracy_pivot(summary, knowledge_tasks, precisions, test_accuracy, failures))}


def fractions(fractions_frame, ppl_rec, failures: dict) -> dict:
    """The pooled recovery fractions beside the perplexity recovery (raw and against the
    control run), where perplexity hides a knowledge loss, and which models cannot be
    compared so for want of a control run."""
    return {"gaps": perplexity_gaps(fractions_frame, ppl_rec), "has_perplexity": bool(len(ppl_rec)), "gap": GAP,
            "uncontrolled": ", ".join(perplexity_uncontrolled(fractions_frame, ppl_rec)),
            "table": table(fraction_table(fractions_frame, ppl_rec, failures), "{:.3f}")}


def budget_curve(curve, figure_path: str) -> dict | None:
    """The budget curves' figure and table (budget_curve.csv)."""
    if curve.empty:
        return None
    return {"figure": figure(figure_path, "budget curves"), "table": table(checkpoint_table(curve))}


def shown_table(frame, floatfmt: str = "{:.3f}") -> dict | None:
    """An analysis table shown as it is (collateral, format control, margins, ablation); None when empty."""
    if frame is None or frame.empty:
        return None
    return table(frame, floatfmt)


def collateral(frame) -> dict | None:
    return shown_table(collateral_table(frame))


def margins(frame) -> dict | None:
    """The paired margin tests on the pooled knowledge questions."""
    return shown_table(frame[frame.task == ALL_KNOWLEDGE] if len(frame) else frame, "{:.3g}")


# --------------------------------------------------------------------------- pictures, costs, data, config

def pictures(figures: dict[str, str], names: list[str]) -> list[dict]:
    """The figures shown under "Pictures", in ``names``' order."""
    return [figure(figures[name], name.replace("_", " ")) for name in names]


def attention(attention_figures: list[str] | None) -> list[dict] | None:
    """The attention and activation figures, one per model and compression; None without."""
    if not attention_figures:
        return None
    return [figure(f, f"attention {Path(f).parent.parent.name}") for f in attention_figures]


def costs(records: list[dict]) -> tuple[dict | None, dict]:
    """The cost table (None without cost.json records) and the library versions."""
    frame, versions = cost_table(records)
    return (table(frame, "{:.2f}") if len(frame) else None), versions


POOL_HEAD = {"routing": "routing", "trained_with": "examples trained per prompt",
             "text_before": "chosen on training-text spans, before", "text_after": "after",
             "text_entropy": "entropy after (H / log m)", "confusion": "held-out source → prompt"}


def pool_training(costs: list[dict]) -> dict | None:
    """How each prompt pool was used in training (its cost.json's ``pool``, from the adapter's
    manifest; ``costs``: the cost.json records): one row per run; None when no run has a pool."""
    import pandas as pd

    rows = [{"model": cost["model"], "compression": cost["compression"], "run": cost.get("run", cost["recovery"]),
             **{POOL_HEAD[k]: cost["pool"].get(k) for k in POOL_HEAD}} for cost in costs if cost.get("pool")]
    if not rows:
        return None
    return table(pd.DataFrame(rows).sort_values(["model", "compression", "run"], kind="stable"), "{:.3f}")


def measured_costs(costs: list[dict]) -> dict[tuple, list[dict]]:
    """(model, compression, recovery group) -> its cost.json records that measured latency
    (status ok), one per seed."""
    runs: dict[tuple, list[dict]] = {}
    for cost in costs:
        if cost.get("status", "ok") == "ok" and cost.get("latency"):
            runs.setdefault((cost["model"], cost["compression"], cost["recovery"]), []).append(cost)
    return runs


def median_of(group: list[dict], value) -> float:
    """The median of ``value(record)`` over a group of cost records (NaN for none)."""
    import statistics

    return statistics.median(value(c) for c in group) if group else float("nan")


def batch_latency(cost: dict) -> float:
    return cost["latency"]["batch"]["median_s"]


def paper_claims(costs: list[dict], methods: dict[str, str]) -> dict | None:
    """Our measurement of the published cost claims beside them (a recovery method's config
    ``cost_claim``; ``costs``: the cost.json records): per (model, compression), each group of a method with a claim against
    the first group of the method the claim compares it with (``methods``: recovery group ->
    method, verdict.json's), medians over seeds: extra parameters (theirs / ours, "x fewer")
    and latency per batch and per generated token (relative change) on the deployment
    kernel. None when no claim has both sides."""
    import pandas as pd

    from ...recover import RECOVERY

    claims = {name: RECOVERY[name].config_cls.cost_claim for name in RECOVERY.names()
              if RECOVERY[name].config_cls.cost_claim}

    runs: dict[tuple, dict[str, list[dict]]] = {}
    for (model, comp, rec), group in measured_costs(costs).items():
        runs.setdefault((model, comp), {})[rec] = group

    def params(c):
        return c["extra_params"]

    def token(c):
        return c["latency"]["generation"]["per_token_s"]

    rows = []
    for (model, comp), groups in sorted(runs.items()):
        for method, claim in claims.items():
            against = next((g for g in groups if methods.get(g) == claim["against"]), None)
            if against is None:
                continue
            base = groups[against]
            for group in (g for g in groups if methods.get(g) == method):
                ours = groups[group]
                rows.append({
                    "model": model, "compression": comp, "runs": f"{group} vs {against}",
                    "extra params: x fewer": median_of(base, params) / max(median_of(ours, params), 1),
                    "paper": f"{claim['params_ratio']:.0f}x",
                    "latency per batch": median_of(ours, batch_latency) / median_of(base, batch_latency) - 1,
                    "per token": median_of(ours, token) / median_of(base, token) - 1,
                    "paper latency": f"{100 * claim['latency_change']:+.0f}%",
                    "kernel": ", ".join(ours[0].get("latency_kernels") or ["dense"]),
                    "source": claim["source"],
                })
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    for col in ("latency per batch", "per token"):
        frame[col] = [f"{100 * v:+.0f}%" for v in frame[col]]
    frame["extra params: x fewer"] = [f"{v:.0f}x" for v in frame["extra params: x fewer"]]
    return table(frame)


def leaks(leak_counts: dict) -> list[dict]:
    """The leak filter's counts: the corpus text's, then each generated text's."""
    return [{"what": "Corpus text", **leak_counts}] + [
        {"what": f"Text generated by model {g.get('model') or g.get('text_dir')}", **g}
        for g in leak_counts.get("generated", [])]


def shortfalls(folders) -> dict | None:
    """What jobs served with less than asked (their manifest.json's ``shortfalls``: the key
    that asked, what, how many asked and served), by folder; None when nothing fell short."""
    import pandas as pd

    rows = []
    for folder in folders:
        manifest = Path(folder) / "manifest.json"
        if manifest.is_file():
            rows += [{"folder": str(folder), **s} for s in json.loads(manifest.read_text()).get("shortfalls", [])]
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["folder", "key", "what", "asked", "served"])
    return table(frame.rename(columns={"key": "config key"}))


def config_and_versions(config: dict, versions: dict, dtypes: dict[str, str] | None = None) -> dict:
    """The exact config (YAML), the library versions (JSON) that produced the report and the
    precision the evaluations computed in (``dtypes``: model -> dtype used, from the summary)."""
    import yaml

    precision = "; ".join(f"{m}: {d}" for m, d in sorted((dtypes or {}).items()))
    return {"config": yaml.safe_dump(config, sort_keys=False), "versions": json.dumps(versions, indent=1),
            "compute_dtype": precision, "config_dtype": config.get("dtype", "float32")}


def failures_at_final_budget(verdict: dict) -> dict:
    """(model, compression, recovery) -> its runs that failed to train at the final budget."""
    return failed_groups(verdict.get("failed_runs", []), verdict.get("final_steps"))


CELLS_2X2 = [(False, "input"), (False, "parameters"), (True, "input"), (True, "parameters")]


def remedies_2x2(verdict: dict, costs: list[dict]) -> dict | None:
    """The 2 x 2 view: per (model, compression), for {training-free, trained} x {input side,
    parameter side}, the group with the highest recovery fraction (the one its decision
    used) with its interval at the Holm level and decision, and its cost beside it (medians
    over its runs: extra parameters, input tokens added, latency per batch relative to the
    compressed model's, training or compute time). None when no decision was made."""
    import pandas as pd

    runs = measured_costs(costs)
    rows = []
    for v in verdict.get("verdicts", []):
        model, comp = v["model"], v["compression"]
        decided = [m for m in v["evidence"].get("methods", []) if not is_failed(m)]
        compressed = median_of(runs.get((model, comp, "none"), []), batch_latency)
        for trained, side in CELLS_2X2:
            cell = [m for m in decided if bool(m.get("trained", True)) == trained and m["side"] == side]
            head = {"model": model, "compression": comp, "training": "trained" if trained else "training-free",
                    "side": side}
            if not cell:
                rows.append({**head, "best": "none tried", **dict.fromkeys(
                    ["F [interval]", "decision", "extra params", "input tokens added", "latency per batch",
                     "training / compute s"], "n/a")})
                continue
            best = max(cell, key=lambda m: -math.inf if isnan(m["fraction"]) else m["fraction"])
            group = runs.get((model, comp, best["recovery"]), [])
            rows.append({**head, "best": best["recovery"],
                         "F [interval]": f"{fmt(best['fraction'], '{:.2f}')} "
                                         f"[{fmt(best['ci_low'], '{:.2f}')}, {fmt(best['ci_high'], '{:.2f}')}]",
                         "decision": best["decision"],
                         "extra params": fmt(median_of(group, lambda c: c["extra_params"]), "{:,.0f}"),
                         "input tokens added": fmt(median_of(group, lambda c: c.get("input_tokens_added") or 0),
                                                   "{:.0f}"),
                         "latency per batch": (f"{median_of(group, batch_latency) / compressed:.2f}x"
                                               if group and compressed == compressed else "n/a"),
                         "training / compute s": fmt(median_of(group, lambda c: c["training_time_s"] or 0.0),
                                                     "{:.0f}")})
    return table(pd.DataFrame(rows)) if rows else None


# --------------------------------------------------------------------------- the first screen

def _best_method(methods: list[dict]) -> dict | None:
    """The remedy with the highest recovery fraction (the one its decision used), failed ones aside."""
    tried = [m for m in methods if m.get("status", "ok") == "ok" and not isnan(number(m.get("fraction")))]
    return max(tried, key=lambda m: m["fraction"]) if tried else None


def glance(verdict: dict, precisions: dict[str, str]) -> list[dict]:
    """Per (model, compression) the plain sentence of the first screen: what compression
    took (accuracy before and after, questions lost and gained), the remedy that won back
    the most and the verdict; each number's table named by its anchor."""
    out = []
    for v in verdict["verdicts"]:
        e = v["evidence"]
        best = _best_method(e.get("methods", []))
        out.append({"kind": verdict_class(v["verdict"]), "model": v["model"], "compression": v["compression"],
                    "verdict": v["verdict"], "base": base_label(v["model"], precisions),
                    "base_acc": fmt(e["base_acc"]), "compressed_acc": fmt(e["compressed_acc"]), "n": e["n"],
                    "lost": e["lost_only"], "gained": e["gained_only"],
                    "best": None if best is None else {
                        "recovery": best["recovery"], "acc": fmt(best["recovered_acc"]),
                        "fraction": fmt(best["fraction"], "{:.2f}"), "which": best.get("fraction_used", ""),
                        "decision": best["decision"], "claim": best.get("claim", "")},
                    "tried": len(e.get("methods", []))})
    return out


# --------------------------------------------------------------------------- explorer, errors, anatomy

def explorer(questions, verdict: dict) -> dict | None:
    """The explorer's object (:func:`compress_recover.aggregate.explorer.explorer_data`); None without questions."""
    from ..explorer import explorer_data

    if questions.empty:
        return None
    data = explorer_data(questions, verdict.get("final_steps"))
    return data if data["views"] else None


TOP_TRANSITIONS = 12


def errors(transitions) -> list[dict]:
    """Per (model, compression): the answers the compressed model gave most often to the
    questions it lost (summed over the base answers they replaced), and the most frequent
    (base answer -> compressed answer) pairs."""
    out = []
    if transitions.empty:
        return out
    for (model, comp), sub in transitions.groupby(["model", "compression"], sort=False):
        answers = (sub.groupby(["task", "compressed_answer"]).agg(count=("count", "sum"),
                                                                  replaced=("base_answer", lambda s: len(set(s))))
                   .reset_index().sort_values(["count", "task"], ascending=[False, True], kind="stable")
                   .head(TOP_TRANSITIONS))
        pairs = sub.sort_values("count", ascending=False, kind="stable").head(TOP_TRANSITIONS)
        out.append({"model": model, "compression": comp, "lost": int(sub["count"].sum()),
                    "answers": table(answers.rename(columns={"compressed_answer": "compressed model's answer",
                                                             "count": "lost questions",
                                                             "replaced": "distinct right answers it replaced"})),
                    "pairs": table(pairs[["task", "base_answer", "compressed_answer", "count"]].rename(
                        columns={"base_answer": "base model's (right) answer",
                                 "compressed_answer": "compressed model's answer"}))})
    return out


def anatomy(loss_model) -> dict | None:
    """The logistic regressions of loss_model.csv: the pre-specified row per compression first."""
    if loss_model.empty:
        return None
    loss_model = loss_model.assign(note=loss_model.note.fillna(""))
    frame = loss_model.assign(order=(loss_model.status != "pre-specified").astype(int)).sort_values(
        ["order", "model", "compression"], kind="stable")
    shown = frame[["model", "compression", "outcome", "term", "status", "n", "events", "coef", "ci_low", "ci_high",
                   "odds_ratio", "p_value", "without_popularity", "note"]].rename(
        columns={"coef": "log-odds per unit", "ci_low": "95% low", "ci_high": "95% high", "p_value": "Wald p",
                 "without_popularity": "left out (no popularity)"})
    pre = frame[frame.status == "pre-specified"]
    return {"table": table(shown, "{:.3g}"), "prespecified": [
        {"model": r.model, "compression": r.compression, "coef": fmt(r.coef, "{:+.2f}"),
         "low": fmt(r.ci_low, "{:+.2f}"), "high": fmt(r.ci_high, "{:+.2f}"), "p": p_value(r.p_value), "n": r.n,
         "events": r.events, "note": r.note} for r in pre.itertuples()]}
