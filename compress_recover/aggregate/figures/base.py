"""What every figure reads (:class:`Inputs`, from the results record) and the helpers they share."""

from __future__ import annotations

from dataclasses import dataclass

from ...data.split import TEST
from ...recover.colours import method_colour
from ..results import Results
from ..stats.budget import at_final_budget
from ..stats.methods import method_of
from ..stats.questions import ALL_KNOWLEDGE
from ..tables import at_final_budget_rows, pooled_test_accuracy

MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LINESTYLES = ["-", "-.", ":", (0, (5, 1))]


@dataclass(frozen=True)
class Inputs:
    summary: "pandas.DataFrame"  # noqa: F821
    fractions: "pandas.DataFrame"  # noqa: F821
    flips: "pandas.DataFrame"  # noqa: F821
    accuracy: "pandas.DataFrame"  # noqa: F821  pooled knowledge accuracy (test questions) per model
    methods: dict  # recovery group (or run) -> method
    budget_curve: "pandas.DataFrame"  # noqa: F821  the analysis's budget_curve.csv
    questions: "pandas.DataFrame"  # noqa: F821  questions.csv at the final budget, test questions, no pooled task
    loss_anatomy: "pandas.DataFrame"  # noqa: F821  the analysis's loss_anatomy.csv

    @classmethod
    def read(cls, summary_csv: str, analysis_dir: str, knowledge_tasks: list[str]) -> "Inputs":
        """The summary at the final budget and the analysis's tables (``knowledge_tasks`` is
        kept for the rule's call: the analysis already pooled them)."""
        return cls.of(Results.load(analysis_dir, summary=summary_csv))

    @classmethod
    def of(cls, results: Results) -> "Inputs":
        """What the figures draw from a results record (read with its summary)."""
        t = results.tables
        questions = t.questions
        if not questions.empty:
            questions = questions[(questions.task != ALL_KNOWLEDGE) & (questions.split == TEST)
                                  & at_final_budget(questions, results.final_steps)]
        return cls(summary=at_final_budget_rows(results.summary, results.budget), fractions=t.recovery_fraction,
                   flips=t.flips, accuracy=pooled_test_accuracy(t.accuracy), methods=results.method_names,
                   budget_curve=t.budget_curve, questions=questions, loss_anatomy=t.loss_anatomy)

    def method(self, recovery: str) -> str:
        return method_of(recovery, None, self.methods)

    def colour(self, recovery: str) -> str:
        return method_colour(self.method(recovery))

    def variant(self, recovery: str) -> int:
        """Index of ``recovery`` among the recovery groups of the same method (its style)."""
        groups = sorted({r for r in self.accuracy.recovery if self.method(r) == self.method(recovery)})
        return groups.index(recovery) if recovery in groups else 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interval_bars(y, low, high):
    """Error bar lengths below and above ``y`` for an interval [low, high] (none where it
    is not finite)."""
    import numpy as np

    y, low, high = (np.asarray(v, dtype=float) for v in (y, low, high))
    below, above = np.clip(y - low, 0, None), np.clip(high - y, 0, None)
    return np.where(np.isfinite(below), below, np.nan), np.where(np.isfinite(above), above, np.nan)


def _panels(plt, count: int, width: float, height: float):
    """``count`` stacked axes (at least one) in one figure."""
    fig, axes = plt.subplots(max(count, 1), 1, figsize=(width, height * max(count, 1)), squeeze=False)
    return fig, list(axes[:, 0])
