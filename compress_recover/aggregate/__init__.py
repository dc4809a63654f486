"""Stage 6, aggregate: the tidy table, the statistics and verdict, the pictures, the report.

| rule | function |
|---|---|
| ``summary`` | :func:`compress_recover.aggregate.summary.summarize` |
| ``analysis`` | :func:`compress_recover.aggregate.analysis.run_analysis` (the path below) |
| ``figures`` | :func:`compress_recover.aggregate.figures.run_figures` (one function per figure) |
| ``attention`` | :func:`compress_recover.evaluate.attention.run_attention_analysis` |
| ``report`` | :func:`compress_recover.aggregate.report.run_report` (renders the records, :mod:`.report`) |

The analysis is a typed path, one idea per module: :mod:`.leak_check` → :mod:`.questions`
(the only reader of lm-eval's sample format) → :mod:`.grid` → :mod:`.bootstrap` (draws,
bounds, the one Holm-family helper) → :mod:`.fractions` → :mod:`.decisions` (``Damage``,
``Decision``) → :mod:`.verdict` (``Verdict``, the rule). Beside it: :mod:`.accuracy`
(accuracy and the format control), :mod:`.paired` (McNemar, margins, flips),
:mod:`.ablation` (prompt pools), :mod:`.budget` (final budget, budget curve, dev accuracy),
:mod:`.collateral`; :mod:`.methods` answers which method and side a recovery group has,
:mod:`.settings` holds the thresholds. A failed run's status is
:mod:`compress_recover.failures`', a run's identity :mod:`compress_recover.runs`'.
:mod:`.tables` derives the tables the figures and the report share from the summary.
"""
