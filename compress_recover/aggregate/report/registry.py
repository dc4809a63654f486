"""The report's sections in reading order: one :class:`Section` per part of the page.

The page (``templates/page.html.j2``) shows :data:`SECTIONS` in this order: first the open
ones a reader needs (the verdict in a sentence per compression, the explorer, the errors,
the anatomy), then the evidence by topic, each collapsed behind its one-line summary, the
rule last. A section is its id (the anchor ``ev-<id>`` of its collapsed box), its summary
line, its template under ``templates/``, the function that builds its template's context
from the :class:`.inputs.ReportInputs` (None leaves the section out), and whether it is
collapsed. Adding a section: a context function in a section module, its template (and its
caption under ``templates/captions/``), and one line here (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import costs, evidence, first_screen, verdict
from .inputs import ReportInputs


@dataclass(frozen=True)
class Section:
    id: str
    summary: str  # the collapsed box's one line ("" for an open section)
    template: str
    context: Callable[[ReportInputs], dict | None]
    collapsed: bool = True


def _open(id: str, template: str, context) -> Section:
    return Section(id, "", template, context, collapsed=False)


def _box(id: str, summary: str, template: str, context) -> Section:
    return Section(id, summary, f"sections/{template}.html.j2", context)


SECTIONS: list[Section] = [
    _open("bases", "captions/base_models.html.j2", first_screen.bases),
    _open("floating_revision", "sections/floating_revision.html.j2", first_screen.floating_revision),
    _open("glance", "sections/glance.html.j2", first_screen.glance),
    _open("explorer", "sections/explorer.html.j2", first_screen.explorer),
    _open("errors", "sections/errors.html.j2", first_screen.errors),
    _open("anatomy", "sections/anatomy.html.j2", first_screen.anatomy),
    _box("verdict", "Verdict: per compression, each remedy's recovery fraction, Holm interval, p, control, power",
         "verdict", verdict.verdicts),
    _box("family", "The confirmatory family: every claim Holm corrects for, its p-value and the level it was decided at",
         "family", verdict.family),
    _box("failed", "Failed runs: recovery trainings that produced no adapter", "failed_runs", verdict.failed_runs),
    _box("split", "Dev/test split: which questions chose settings, which decided", "split", evidence.split),
    _box("accuracy", "Accuracy per task, above the content-free baseline, and held-out perplexity, every model",
         "accuracy", evidence.accuracy),
    _box("fractions", "Knowledge recovery vs perplexity recovery", "fractions", evidence.fractions),
    _box("levels", "Compressions against their model, question by question: flips, same top answer, KL; a GGUF's "
         "torch and llama.cpp paths side by side", "levels", evidence.levels),
    _box("remedies", "Remedies, 2 × 2: training-free and trained, input and parameter side, with costs", "remedies",
         costs.remedies),
    _box("budget", "Budget curves: accuracy and recovery fraction against training tokens", "budget", evidence.budget),
    _box("collateral", "Collateral damage: what recovery did to tasks it was not trained for", "collateral",
         evidence.collateral),
    _box("format", "Format control: how much a remedy gains on the base model", "format_control",
         evidence.format_control),
    _box("margins", "Paired margins: change in the right choice's probability, per remedy", "margins",
         evidence.margins),
    _box("ablation", "Prompt pools: which prompt each question kept, and the pool ablation", "ablation",
         evidence.ablation),
    _box("flips", "Knowledge flips: questions kept, lost, gained, won back and broken (counts)", "flips",
         evidence.flips),
    _box("distance", "Distance beside the flips: each model's KL to the base model, and whether it tells the lost "
         "questions", "distance", evidence.distance),
    _box("mcnemar", "Paired tests (McNemar, exact) per seed", "mcnemar", evidence.mcnemar),
    _box("figures", "More pictures: accuracy vs compression, cost vs accuracy, flips, attention", "pictures",
         costs.pictures),
    _box("costs", "Costs: extra parameters, latency, training time, disk", "costs", costs.costs),
    _box("data", "Data: what was served with less than asked, and the leak filter's counts for the training text",
         "data", costs.data),
    _open("rule", "sections/rule.html.j2", verdict.rule),
    _box("config", "Config and library versions that produced this report", "config", costs.config),
]
