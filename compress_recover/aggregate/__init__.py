"""Stage 6, aggregate: the tidy table, the statistics and verdict, the pictures, the report.

| rule | function |
|---|---|
| ``summary`` | :func:`compress_recover.aggregate.summary.summarize` |
| ``analysis`` | :func:`compress_recover.aggregate.analysis.run_analysis` (statistics in :mod:`.stats`) |
| ``figures`` | :func:`compress_recover.aggregate.figures.run_figures` (one function per figure) |
| ``attention`` | :func:`compress_recover.aggregate.attention.run_attention_analysis` |
| ``report`` | :func:`compress_recover.aggregate.report.run_report` (the HTML page) |

:mod:`.tables` derives the tables the figures and the report share from the summary.
"""
