"""The IDP routing study's table and the pre-written rule's pick (studies/idp_modes.yaml).

Reads what the pipeline wrote under results/ (analysis/dev_accuracy.csv, questions.csv,
recovery_fraction.csv and every IDP run's cost.json) and prints, per routing mode and
compression: dev accuracy, the pool's entropy on the dev questions (H / log m), test
accuracy and recovery fraction with its 95% interval (pooled knowledge questions), the
prompts chosen per test question, and the routing on the training text (cost.json's
``pool``); then the rule's pick.

    python studies/idp_modes.py [--results results] [--floor 0.5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from compress_recover.prompt_choice import normalised_entropy

ALL = "all_knowledge"


def entropy(choices, pool: int) -> float:
    """H / log(pool) of the prompts chosen (0 for a pool of one)."""
    return normalised_entropy(pd.Series(choices, dtype=int).value_counts().reindex(range(pool), fill_value=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--floor", type=float, default=0.5)
    args = parser.parse_args()
    results = Path(args.results)
    analysis = results / "analysis"
    dev = pd.read_csv(analysis / "dev_accuracy.csv")
    questions = pd.read_csv(analysis / "questions.csv", dtype={"pool_correct": str})
    fractions = pd.read_csv(analysis / "recovery_fraction.csv")
    idp = questions[questions.pool_choice.notna() & (questions.task != ALL)]  # each question once
    rows = []
    for (model, comp, rec), frame in idp.groupby(["model", "compression", "recovery"]):
        runs = sorted((results / model / comp).glob(f"{rec}.seed*/cost.json"))
        cost = json.loads(runs[0].read_text()) if runs else {}
        trained = (cost.get("pool") or {}).get("trained_with", "")
        pool = len(trained.split("/")) if trained else int(frame.pool_choice.max()) + 1
        d = dev[(dev.model == model) & (dev.compression == comp) & (dev.recovery == rec)]
        f = fractions[(fractions.model == model) & (fractions.compression == comp) & (fractions.recovery == rec)
                      & (fractions.task == ALL)]
        test = frame[frame.split == "test"]
        counts = test.pool_choice.astype(int).value_counts().reindex(range(pool), fill_value=0)
        rows.append({
            "mode": rec, "compression": comp,
            "dev_acc": float(d.recovered_acc.iloc[0]) if len(d) else float("nan"),
            "dev_entropy": entropy(frame[frame.split == "dev"].pool_choice.astype(int).tolist(), pool),
            "test_acc": float(test.correct.mean()),
            "F": float(f.recovery_fraction.iloc[0]) if len(f) else float("nan"),
            "F_95": f"[{f.ci_low.iloc[0]:.2f}, {f.ci_high.iloc[0]:.2f}]" if len(f) else "",
            "test_choices": "/".join(map(str, counts.tolist())),
            "train_choices": (cost.get("pool") or {}).get("trained_with", ""),
            "text_after": (cost.get("pool") or {}).get("text_after", ""),
            "confusion": (cost.get("pool") or {}).get("confusion", ""),
        })
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    order = list(dict.fromkeys(table["mode"]))
    per_mode = table.groupby("mode", sort=False)[["dev_acc", "dev_entropy"]].mean().reindex(order)
    print("\nper mode, mean over compressions:")
    print(per_mode.to_string(float_format=lambda x: f"{x:.3f}"))
    eligible = per_mode[per_mode.dev_entropy >= args.floor]
    if eligible.empty:
        print(f"\nno mode reaches dev entropy {args.floor}: the default stays 'hard' (the pool collapses)")
    else:
        best = eligible.dev_acc.max()
        pick = next(m for m in order if m in eligible.index and eligible.dev_acc[m] == best)
        print(f"\nrule's pick: {pick} (dev accuracy {best:.3f}, dev entropy {eligible.dev_entropy[pick]:.3f})")


if __name__ == "__main__":
    main()
