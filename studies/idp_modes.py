"""The IDP routing study's table and the pre-written rule's pick (studies/idp_modes.yaml).

Reads what the pipeline wrote under results/ (the analysis record, through
:meth:`compress_recover.aggregate.results.Results.load`: its dev accuracy, question and
recovery fraction tables; and every IDP run's cost.json) and prints, per routing mode and
compression: dev accuracy, the pool's entropy on the dev questions (H / log m), test
accuracy and recovery fraction with its 95% interval (pooled knowledge questions), the
prompts chosen per test question, and the routing on the training text (cost.json's
``pool``); then the rule's pick.

    python studies/idp_modes.py [--results results] [--floor 0.5]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from compress_recover.aggregate.results import Results, analysis_path
from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE as ALL
from compress_recover.data.split import DEV, TEST
from compress_recover.prompt_choice import normalised_entropy


@dataclass(frozen=True)
class Routing:
    """What a run's cost.json says of its pool's routing in training (``pool``: prompt_choice.pool_summary)."""

    trained_with: str = ""  # training examples per prompt, "a/b/..."
    text_after: str = ""  # choices on the training text after training
    confusion: str = ""  # a per-source pool's confusion table

    @classmethod
    def of(cls, run: Path | None) -> "Routing":
        """The routing in ``run``'s cost.json (empty without a run or a pool)."""
        pool = (json.loads(run.read_text()).get("pool") if run else None) or {}
        return cls(**{f.name: pool.get(f.name) or "" for f in fields(cls)})


def entropy(choices, pool: int) -> float:
    """H / log(pool) of the prompts chosen (0 for a pool of one)."""
    return normalised_entropy(pd.Series(choices, dtype=int).value_counts().reindex(range(pool), fill_value=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--floor", type=float, default=0.5)
    args = parser.parse_args()
    results = Path(args.results)
    tables = Results.load(analysis_path(results)).tables
    dev, questions, fractions = tables.dev_accuracy, tables.questions, tables.recovery_fraction
    idp = questions[questions.pool_choice.notna() & (questions.task != ALL)]  # each question once
    rows, order = [], []
    for (model, comp, rec), frame in idp.groupby(["model", "compression", "recovery"]):
        runs = sorted((results / model / comp).glob(f"{rec}.seed*/cost.json"))
        routing = Routing.of(runs[0] if runs else None)
        pool = len(routing.trained_with.split("/")) if routing.trained_with else int(frame.pool_choice.max()) + 1
        d = dev[(dev.model == model) & (dev.compression == comp) & (dev.recovery == rec)]
        f = fractions[(fractions.model == model) & (fractions.compression == comp) & (fractions.recovery == rec)
                      & (fractions.task == ALL)]
        test = frame[frame.split == TEST]
        counts = test.pool_choice.astype(int).value_counts().reindex(range(pool), fill_value=0)
        rows.append({
            "mode": rec, "compression": comp,
            "dev_acc": float(d.recovered_acc.iloc[0]) if len(d) else float("nan"),
            "dev_entropy": entropy(frame[frame.split == DEV].pool_choice.astype(int).tolist(), pool),
            "test_acc": float(test.correct.mean()),
            "F": float(f.recovery_fraction.iloc[0]) if len(f) else float("nan"),
            "F_95": f"[{f.ci_low.iloc[0]:.2f}, {f.ci_high.iloc[0]:.2f}]" if len(f) else "",
            "test_choices": "/".join(map(str, counts.tolist())),
            "train_choices": routing.trained_with, "text_after": routing.text_after, "confusion": routing.confusion,
        })
        order.append(rec)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    order = list(dict.fromkeys(order))  # the modes in the table's order
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
