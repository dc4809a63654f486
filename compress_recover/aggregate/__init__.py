"""Stage 6, aggregate: the tidy table, the statistics and verdict, the results record, and its views.

| rule | function |
|---|---|
| ``summary`` | :func:`compress_recover.aggregate.summary.summarize` |
| ``analysis`` | :func:`compress_recover.aggregate.analysis.run_analysis` (statistics → :class:`.results.Results`) |
| ``figures`` | :func:`compress_recover.aggregate.figures.run_figures` (one function per figure) |
| ``report`` | :func:`compress_recover.aggregate.report.run_report` (the sections of :data:`.report.SECTIONS`) |

Three layers, imports running down only:

1. :mod:`.stats`: the statistics, pure functions and typed records, one idea per module:
   :mod:`.stats.leak_check` → :mod:`.stats.questions` (the only reader of lm-eval's sample
   format) → :mod:`.stats.grid` → :mod:`.stats.bootstrap` (draws, bounds, the one
   Holm-family helper) → :mod:`.stats.fractions` → :mod:`.stats.decisions` (``Damage``,
   ``Decision``, the family's members) → :mod:`.stats.verdict` (``Verdict``, the rule);
   beside it :mod:`.stats.accuracy`, :mod:`.stats.paired`, :mod:`.stats.ablation`,
   :mod:`.stats.budget`, :mod:`.stats.collateral`, :mod:`.stats.anatomy`,
   :mod:`.stats.status`, :mod:`.stats.methods`, :mod:`.stats.settings`, and
   :mod:`.stats.costs` (medians over seeds, the published claims against ours, the 2 × 2's
   best remedy).
2. :mod:`.results`: the record between them and every reader: each table's spec (name,
   columns, dtypes, meaning), :class:`.results.Results` with ``save`` / ``load`` (the files of
   ``results/analysis/``, byte for byte, and the schema version).
3. The views, which open the run only with :meth:`.results.Results.load`: :mod:`.figures`,
   :mod:`.report` (its explorer's data from :mod:`.explorer`) and :mod:`.snapshot` (the
   results docs' snapshot, whose tables :mod:`.results_pages` renders from the snapshot's
   JSON); :mod:`.tables` derives what the figures and the report share from the summary.

The attention analysis loads models, so it is a stage-5 job:
:mod:`compress_recover.evaluate.attention`. Adding a statistic or a report section:
docs/extending.md.
"""
