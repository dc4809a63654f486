"""What every section of the report reads: the results record, the figures, the cost records, the config.

One :class:`ReportInputs` is built per report; a section's context function takes it and
reads what it needs. The values several sections share (the base models' precisions, the
runs that failed at the final budget, the perplexity recovery, the cost table, the prompts
that answered each prompt pool's test questions) are computed once here, numbers only; the
sections format them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ...failures import failed_groups
from ...io import read_json
from ..results import Results
from ..stats.pool_flags import chosen_on_test
from ..tables import at_final_budget_rows, base_precisions, compute_dtypes, perplexity_recovery


@dataclass
class ReportInputs:
    """``results``: the analysis's record with rule summary's table (:meth:`Results.load`);
    ``figures``: figure name -> PNG; ``attention_figures``: one PNG per compressed model;
    ``costs``: every cost.json record; ``manifest_dirs``: the folders whose manifest records
    shortfalls; ``config``: the run's config; ``knowledge_tasks``: the built and user
    knowledge tasks."""

    results: Results
    figures: dict[str, str]
    costs: list[dict]
    config: dict
    knowledge_tasks: list[str]
    attention_figures: list[str] = field(default_factory=list)
    manifest_dirs: list[str] = field(default_factory=list)
    levels_dir: str | None = None  # rule levels' tables (every compression against its model, a GGUF's two paths)

    @classmethod
    def read(cls, *, summary_csv: str, analysis_dir: str, cost_files: list[str], **kw) -> "ReportInputs":
        """The record and the cost records read once (each cost.json for the cost, pool and claims tables)."""
        return cls(results=Results.load(analysis_dir, summary=summary_csv), costs=[read_json(f) for f in cost_files],
                   **kw)

    @functools.cached_property
    def summary(self):
        """The summary's rows at the final budget: what every headline table shows."""
        return at_final_budget_rows(self.results.summary, self.results.budget)

    @functools.cached_property
    def precisions(self) -> dict[str, str]:
        """model -> its base model's precision."""
        return base_precisions(self.summary)

    @functools.cached_property
    def failures(self) -> dict:
        """(model, compression, recovery) -> its runs that failed to train at the final budget."""
        return failed_groups(self.results.failed_runs, self.results.final_steps)

    @functools.cached_property
    def perplexity_recovery(self):
        return perplexity_recovery(self.summary)

    @functools.cached_property
    def compute_dtypes(self) -> dict[str, str]:
        return compute_dtypes(self.summary)

    @functools.cached_property
    def pool_choices(self) -> dict[tuple, list[int]]:
        """(model, compression, run) -> the prompt each test question of a prompt pool's run
        was answered with (the cost table's parameters used, the prompt pools' training)."""
        return chosen_on_test(self.results.tables.questions)

    @functools.cached_property
    def levels(self) -> dict | None:
        """Rule levels' tables (``levels``, ``steps``), None when the run made none."""
        import pandas as pd
        from pathlib import Path

        if not self.levels_dir or not (Path(self.levels_dir) / "levels.csv").is_file():
            return None
        folder = Path(self.levels_dir)

        def read(name):
            try:
                return pd.read_csv(folder / name)
            except pd.errors.EmptyDataError:
                return pd.DataFrame()

        return {"levels": read("levels.csv"), "steps": read("level_steps.csv")}

    @functools.cached_property
    def holds(self) -> dict[tuple[str, str], str]:
        """(model, compression) -> what a GGUF compression's file holds ("Q2_K: 180 Q4_0 + 30
        Q3_K + 1 Q8_0"), so that a level's name is never shown without its tensor types."""
        found = self.levels
        if found is None or not len(found["levels"]) or "tensor_types" not in found["levels"]:
            return {}
        frame = found["levels"]
        return {(m, c): f"{t}: {types}" for m, c, t, types in zip(frame.model, frame.compression, frame.gguf_type,
                                                                   frame.tensor_types, strict=True)
                if isinstance(types, str) and isinstance(t, str)}

    def figure(self, name: str, required: bool = False) -> str | None:
        """The PNG of figure ``name``; None when the run drew none, unless ``required`` (a
        section that shows it: an error naming it, never a page silently without it)."""
        if required and name not in self.figures:
            raise KeyError(f"the report needs figure {name!r} (rule figures draws it); given: {sorted(self.figures)}")
        return self.figures.get(name)
