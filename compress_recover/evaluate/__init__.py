"""Stage 5, evaluate: lm-eval on every evaluated model, and what each model costs.

| rule | function |
|---|---|
| ``evaluate`` | :func:`compress_recover.evaluate.evaluate.run_evaluation` |
| ``cost`` | :func:`compress_recover.evaluate.cost.run_cost` |
"""
