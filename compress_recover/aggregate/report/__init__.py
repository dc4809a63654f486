"""Rule ``report``: ``results/report.html``, the results record rendered section by section (:data:`.registry.SECTIONS`).

One self-contained page (images inlined), in the order a reader needs it: per compression
the verdict in a sentence and one figure, the explorer of every question, what the errors
look like and which facts are lost, then the evidence by topic, each collapsed behind a
one-line summary, the rule and the settings last, and the exact config and library
versions that produced it.

This package only formats. It reads the run through :class:`.inputs.ReportInputs` (the
:class:`~..results.Results` record, the figures, the cost JSONs, the config); each
section's context function (:mod:`.first_screen`, :mod:`.verdict`, :mod:`.evidence`,
:mod:`.costs`) turns it into the values its template shows, cell texts by :mod:`.cells`,
the report's own tables by :mod:`.frames`; each section's template is rendered with Jinja2
(autoescaped, an undefined name an error) and ``templates/page.html.j2`` lays them out. The
page's markup is in ``templates/sections/``, the method's prose (what each table means,
how it was computed) in ``templates/captions/``, once.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ...failures import shown
from ...io import atomic_file
from .cells import NO_CONTROL, NO_DAMAGE
from .inputs import ReportInputs
from .registry import SECTIONS, Section

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["TEMPLATES", "SECTIONS", "Section", "ReportInputs", "render", "render_page", "render_section", "run_report"]


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


def render_section(section_id: str, inputs: ReportInputs) -> str:
    """One section of :data:`SECTIONS` as the page shows it ("" when its context leaves it out)."""
    (section,) = [s for s in SECTIONS if s.id == section_id]
    context = section.context(inputs)
    return "" if context is None else render(section.template, **context)


def render_page(inputs: ReportInputs, sections: list[Section] = SECTIONS) -> str:
    """The page: each section whose context is not None, rendered with its context, in order."""
    from markupsafe import Markup

    shown_sections = []
    for section in sections:
        context = section.context(inputs)
        if context is not None:
            shown_sections.append({"id": section.id, "summary": section.summary, "collapsed": section.collapsed,
                                   "html": Markup(render(section.template, **context))})
    return render("page.html.j2", sections=shown_sections)


def run_report(*, summary_csv: str, analysis_dir: str, figures: dict[str, str], cost_files: list[str],
               config: dict, knowledge_tasks: list[str], out_html: str,
               attention_figures: list[str] | None = None, manifest_dirs: list[str] = (),
               levels_dir: str | None = None) -> None:
    inputs = ReportInputs.read(summary_csv=summary_csv, analysis_dir=analysis_dir, cost_files=cost_files,
                               figures=figures, config=config, knowledge_tasks=knowledge_tasks,
                               attention_figures=list(attention_figures or []), manifest_dirs=list(manifest_dirs),
                               levels_dir=levels_dir)
    page = render_page(inputs)
    with atomic_file(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
