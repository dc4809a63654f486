"""Rule ``report``: ``results/report.html``, the analysis's records rendered through the templates in ``templates/``.

One self-contained page (images inlined): the verdict's rule and the verdict first (with
the evidence per method: intervals at the Holm level, p-values, seeds, format control,
power), the dev/test split it rests on, then tables (mean ± sd over seeds, the base model
first, its precision stated beside every "base"; knowledge accuracy on the test questions,
the final budget's runs only), the budget curves, the collateral damage, pictures, costs,
the leak filter's counts (corpus and generated text), and the exact config and library
versions that produced it.

This package only renders: it reads verdict.json and the CSVs under ``results/analysis/``,
the summary, the figures and the cost JSONs, turns them into each section's values
(:mod:`.sections`, cell texts by :mod:`.cells`, the report's own tables by :mod:`.frames`)
and renders ``templates/page.html.j2`` with Jinja2 (autoescaped, undefined names an
error). The page's layout is in ``templates/sections/``, the method's prose (what each
table means, how it was computed) in ``templates/captions/``, once.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ...failures import shown
from ...io import atomic_file, read_json
from ..figures import FIGURES
from ..stats.questions import read_questions
from ..tables import base_precisions, compute_dtypes, headline_summary, perplexity_recovery, read_csv_or_empty
from . import sections
from .cells import NO_CONTROL, NO_DAMAGE, table

TEMPLATES = Path(__file__).parent / "templates"
# Figures shown in their own section, not under "Pictures".
SECTION_FIGURES = {"budget_curves", "overview", "remedy_deltas", "loss_anatomy"}

__all__ = ["TEMPLATES", "render", "run_report"]


def _prose(text) -> str:
    """A caption's wrapped lines joined into one: its line breaks are for the editor, not the page."""
    from markupsafe import Markup

    return Markup(re.sub(r"\s*\n\s*", " ", str(text)).strip())


@functools.cache
def environment():
    """The Jinja2 environment of ``templates/``: autoescape on, an undefined name an error."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["prose"] = _prose
    env.globals.update(NO_DAMAGE=NO_DAMAGE, NO_CONTROL=NO_CONTROL, shown=shown)
    return env


def render(template: str, **context) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return environment().get_template(template).render(**context)


def _floating_revision_html(config: dict) -> str:
    """The "not reproducible" warning for hub models pinned to a branch or tag; empty when none is."""
    return render("sections/floating_revision.html.j2", **sections.floating_revision(config))


def run_report(*, summary_csv: str, analysis_dir: str, figures: dict[str, str], cost_files: list[str],
               config: dict, knowledge_tasks: list[str], out_html: str,
               attention_figures: list[str] | None = None, manifest_dirs: list[str] = ()) -> None:
    import pandas as pd

    analysis = Path(analysis_dir)
    verdict = read_json(analysis / "verdict.json")
    summary = headline_summary(summary_csv, verdict["budget"])
    precisions = base_precisions(summary)
    fractions = pd.read_csv(analysis / "recovery_fraction.csv")
    ppl_rec = perplexity_recovery(summary)
    failures = sections.failures_at_final_budget(verdict)
    cost_records = [read_json(f) for f in cost_files]  # read once, for the cost, pool and claims tables
    cost_table, versions = sections.costs(cost_records)

    def shown_figure(name: str, alt: str):
        return sections.figure(figures[name], alt) if name in figures else None

    page = render(
        "page.html.j2",
        bases=sections.bases_text(precisions),
        glance=sections.glance(verdict, precisions),
        overview=shown_figure("overview", "Accuracy of the base, compressed and every remedy, with costs"),
        explorer=sections.explorer(read_questions(analysis / "questions.csv"), verdict),
        errors=sections.errors(read_csv_or_empty(analysis / "transitions.csv", keep_default_na=False)),
        deltas=shown_figure("remedy_deltas", "Per-question change in the right choice's probability per remedy"),
        anatomy=sections.anatomy(read_csv_or_empty(analysis / "loss_model.csv")),
        anatomy_figure=shown_figure("loss_anatomy", "Loss rate against popularity and base confidence"),
        **sections.floating_revision(config),
        rule=sections.rule(verdict, precisions),
        verdicts=[sections.verdict_block(v, precisions) for v in verdict["verdicts"]],
        failed_runs=sections.failed_runs(verdict),
        split=sections.split(verdict, read_csv_or_empty(analysis / "dev_accuracy.csv")),
        accuracy=sections.accuracy(summary, knowledge_tasks, precisions, read_csv_or_empty(analysis / "accuracy.csv"),
                                   failures),
        fractions=sections.fractions(fractions, ppl_rec, failures),
        budget=sections.budget_curve(read_csv_or_empty(analysis / "budget_curve.csv"), figures["budget_curves"]),
        collateral=sections.collateral(read_csv_or_empty(analysis / "collateral.csv")),
        format_control=sections.shown_table(read_csv_or_empty(analysis / "format_control.csv")),
        margins=sections.margins(read_csv_or_empty(analysis / "margin_tests.csv")),
        ablation=sections.shown_table(read_csv_or_empty(analysis / "prompt_pool_ablation.csv")),
        pool=sections.pool_training(cost_records),
        flips=table(read_csv_or_empty(analysis / "flips.csv", keep_default_na=False)),
        mcnemar=table(read_csv_or_empty(analysis / "paired_tests.csv", keep_default_na=False), "{:.3g}"),
        pictures=sections.pictures(figures, [name for name in FIGURES if name not in SECTION_FIGURES]),
        attention=sections.attention(attention_figures),
        costs=cost_table,
        remedies=sections.remedies_2x2(verdict, cost_records),
        paper=sections.paper_claims(cost_records, verdict.get("methods", {})),
        leaks=sections.leaks(verdict["leaks"]),
        shortfalls=sections.shortfalls(manifest_dirs),
        **sections.config_and_versions(config, versions, compute_dtypes(summary)),
    )
    with atomic_file(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
