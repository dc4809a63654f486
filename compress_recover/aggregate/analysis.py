"""Rule ``analysis``: the path from lm-eval's samples to the verdict, and the files it writes to ``results/analysis/``.

The path, one module per step: leak check (:mod:`.leak_check`) → per-question table
(:mod:`.questions`) → grids (:mod:`.grid`) → paired bootstrap draws and Holm
(:mod:`.bootstrap`) → recovery fractions (:mod:`.fractions`) → decisions (:mod:`.decisions`)
→ verdict (:mod:`.verdict`); beside it the descriptive tables: accuracy and format control
(:mod:`.accuracy`), paired tests and flips (:mod:`.paired`), the prompt-pool ablation
(:mod:`.ablation`), the budget curve and dev accuracy (:mod:`.budget`) and collateral damage
(:mod:`.collateral`). Failed runs are set apart first (:mod:`compress_recover.failures`).

The verdict and every headline table use the test questions of the final budget's runs
only; the dev questions serve choices (``dev_accuracy.csv``), the intermediate checkpoints
the budget curve. Files: ``questions.csv``, ``split.csv``, ``accuracy.csv``,
``recovery_fraction.csv``, ``decisions.csv``, ``noninferiority.csv``, ``format_control.csv``,
``margin_tests.csv``, ``paired_tests.csv`` (McNemar), ``flips.csv``,
``prompt_pool_ablation.csv``, ``dev_accuracy.csv``, ``budget_curve.csv``, ``collateral.csv``,
``content_free.csv`` (the content-free baseline, :mod:`.content_free`), ``distance.csv`` (the
KL to the base model beside the flips, :mod:`.stats.distance`), ``failed_runs.csv``
and ``verdict.json`` (the rule in words, its settings, the split's question counts, the leak checks, per compression the verdict with the evidence it rests
on, the failed runs, and the verdict again on the one-to-one relations alone,
:mod:`.stats.sensitivity`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.split import DEV, TEST, split_counts, split_settings
from ..failures import FAILED_RUN_COLUMNS, failed_groups, split_failed
from ..io import read_json
from ..prompt_choice import examples_per_prompt
from .results import TABLE_SPECS, Results, Tables
from .stats.ablation import pool_ablation
from .stats.accuracy import accuracy_table, control_table
from .stats.bootstrap import accuracy_draws
from .stats.budget import at_final_budget, budget_curve, checkpoint_steps, dev_accuracy, final_steps
from .stats.clusters import cluster_sizes
from .stats.collateral import collateral
from .stats.content_free import content_free_table, prior_table, with_priors
from .stats.decisions import confirmatory, verdict_family, with_failures
from .stats.distance import distance_table
from .stats.fractions import fraction_rows, grid_pairs
from .stats.anatomy import anatomy_tables
from .stats.grid import base_first, build_grids
from .stats.pool_flags import MIN_EXAMPLES, chosen_on_test, undertrained_runs
from .stats.leak_check import check_leaks
from .stats.methods import Methods
from .stats.paired import flips, margin_tests, paired_tests
from .stats.questions import (ALL_KNOWLEDGE, question_table, read_popularity, split_mask, split_table,
                              with_pooled_task)
from .stats.sensitivity import one_to_one_verdicts
from .stats.settings import Settings
from .stats.verdict import noninferiority_rule, verdict_rule, verdicts

log = logging.getLogger(__name__)


def analyse(table, *, methods: Methods, settings: Settings, seed: int, budget: dict | None = None,
            held_out_tasks=(), failed: list[dict] = (), pool_examples: dict | None = None,
            min_examples: int = MIN_EXAMPLES) -> dict:
    """Every table and the verdict from the per-question ``table`` (with the pooled task and
    the ``split`` column). The verdict and every headline table use the test questions of
    the final budget's runs only; ``dev_accuracy`` the dev questions and ``budget_curve`` the
    test questions of every checkpoint; ``collateral`` flags ``held_out_tasks``. ``failed``:
    the runs whose recovery training failed (:func:`compress_recover.failures.split_failed`;
    not in ``table``), listed in ``failed_runs`` and accounted for in the decisions.
    ``pool_examples``: (model, compression, run) -> the training examples of each prompt of a
    prompt pool's run (:func:`compress_recover.prompt_choice.examples_per_prompt`); a run
    whose test questions a prompt trained with fewer than ``min_examples`` answered
    (:func:`.stats.pool_flags.undertrained_runs`) is shown everywhere but excluded from the
    decisions: its answers measure a random prefix, not a trained prompt."""
    import pandas as pd

    if "prior_correct" not in table:  # no content-free evaluation: the columns empty
        table = with_priors(table, None)
    table, final = checkpoint_steps(table, budget)
    test = table[split_mask(table, TEST)]
    headline = test[at_final_budget(test, final)]
    grids = build_grids(headline)
    excluded = undertrained(headline, pool_examples, min_examples)
    decided = headline[~headline.set_index(["model", "compression", "run"]).index.isin(
        [(r["model"], r["compression"], r["run"]) for r in excluded])] if excluded else headline
    pooled, family, pooled_iters = verdict_family(build_grids(decided) if excluded else grids, settings, methods)
    draws, pairs, fraction_table = {}, {}, []
    for key, grid in grids.items():
        if not grid.has_base:
            continue
        draws[key] = accuracy_draws(grid, pooled_iters if key in pooled else settings.bootstrap_iters, seed)
        these = grid_pairs(grid, draws[key])
        fraction_table.extend(fraction_rows(grid, these, methods))
        pairs.update({(grid.model, c, r, grid.task): p for (c, r), p in these.items()})
    family_pairs = {(m, c, r): pairs[(m, c, r, ALL_KNOWLEDGE)] for (m, c, r) in family}
    decision_draws = {key: draws[key] for key in pooled}
    if excluded:  # the pooled grids without the excluded runs: their own draws and pairs (the
        # descriptive tables keep every run's, in ``draws``)
        decision_draws = {key: accuracy_draws(grid, pooled_iters, seed) for key, grid in pooled.items()}
        family_pairs = {(grid.model, c, r): p for key, grid in pooled.items()
                        for (c, r), p in grid_pairs(grid, decision_draws[key]).items()}
    facts = table.groupby("model").fact.nunique().to_dict() if "fact" in table else {}
    damage, decisions, ni = confirmatory(pooled, decision_draws, family_pairs, settings, methods, facts)
    failures = failed_groups([*failed, *excluded], final)
    decisions = with_failures(decisions, failures, damage, methods)
    decision_table = pd.DataFrame([d.csv_row() for d in decisions])
    margins = margin_tests(grids, iters=settings.bootstrap_iters, seed=seed)
    mcnemar = paired_tests(grids, methods=methods)
    curves = {"methods": methods, "seed": seed, "iters": settings.bootstrap_iters, "budget": budget}
    return {
        "questions": base_first(table), "split": split_table(table), "accuracy": accuracy_table(grids),
        "recovery_fraction": base_first(pd.DataFrame(fraction_table)),
        "decisions": decision_table,
        "noninferiority": pd.DataFrame(ni), "format_control": control_table(grids, draws),
        "margin_tests": margins, "paired_tests": mcnemar, "flips": flips(grids),
        "prompt_pool_ablation": pool_ablation(headline, seed=seed),
        "dev_accuracy": dev_accuracy(table[split_mask(table, DEV)], list(dict.fromkeys(table.recovery)), **curves),
        "budget_curve": budget_curve(test, **curves),
        "collateral": collateral(grids, draws, untouched_tasks(table, held_out_tasks)),
        "distance": distance_table(grids, iters=settings.bootstrap_iters, seed=seed),
        "content_free": content_free_table(headline, iters=settings.bootstrap_iters, seed=seed),
        "verdicts": verdicts(damage, decisions, ni, margins, mcnemar, budget),
        "sensitivity": {"one_to_one": one_to_one_verdicts(decided, table, methods=methods,
                                                          settings=settings, seed=seed, budget=budget,
                                                          failed_groups=failures)},
        "failed_runs": pd.DataFrame(list(failed), columns=FAILED_RUN_COLUMNS).astype({"seed": "Int64",
                                                                                      "steps": "Int64"}),
        "bootstrap_iters": {"pooled": pooled_iters, "per_task": settings.bootstrap_iters},
        "resampling_units": {grid.model: cluster_sizes(grid.question_clusters) for grid in pooled.values()},
        **anatomy_tables(headline[headline.task != ALL_KNOWLEDGE], seed=seed),
    }


def undertrained(headline, pool_examples: dict | None, min_examples: int) -> list[dict]:
    """The runs of a prompt pool (:func:`.stats.pool_flags.undertrained_runs`) whose test
    questions a prompt trained with fewer than ``min_examples`` examples answered, as
    records of :func:`compress_recover.failures.failed_groups` (``excluded``: they trained,
    and are shown; only the decisions leave them out)."""
    import pandas as pd

    if not pool_examples:
        return []
    flags = undertrained_runs(chosen_on_test(headline), pool_examples, min_examples)
    out = []
    for (model, comp, run), f in flags.items():
        if not f.flagged:
            continue
        row = headline[(headline.model == model) & (headline.compression == comp) & (headline.run == run)].iloc[0]
        out.append({"model": model, "compression": comp, "recovery": row.recovery, "seed": int(row.seed),
                    "run": run, "steps": None if pd.isna(row.steps) else int(row.steps), "excluded": True,
                    "failure": f"undertrained prompts: {f.undertrained} of {f.questions} test questions answered "
                               f"by a prompt trained with fewer than {min_examples} examples (fewest "
                               f"{f.fewest_examples})"})
    return out


def untouched_tasks(table, held_out_tasks) -> set[str]:
    """The knowledge tasks no choice was made on: those held out (``data.split.held_out_tasks``)
    and, when some task has dev questions, every task left without any (its facts are all
    asked by a held-out task too, e.g. the inverse of a held-out relation)."""
    tasks = set(table.task) - {ALL_KNOWLEDGE}
    with_dev = set(table[table.split == DEV].task) - {ALL_KNOWLEDGE}
    return set(held_out_tasks) | ((tasks - with_dev) if with_dev else set())


def check_popularity(table) -> None:
    """Every question of a built relation is in popularity.csv (with its popularity, or a
    row saying the package has none): a subject missing there is an error naming it, never a
    question silently left out of the anatomy."""
    from ..data.facts import RELATIONS
    from ..data.popularity import NONE

    missing = table[table.task.isin(list(RELATIONS)) & (table.popularity_measure == NONE)].drop_duplicates(
        ["task", "doc_id"])
    if not missing.empty:
        first = missing.iloc[0]
        raise ValueError(f"popularity.csv: no popularity for {len(missing)} question(s) of built task(s) "
                         f"{sorted(set(missing.task))}, e.g. task {first.task} question {first.doc_id} "
                         f"({first.question!r}); rebuild it with rule popularity")


def check_demonstration_facts(table, fewshot_task_dirs) -> None:
    """Refuse an analysis whose few-shot prompts showed a test question: every fact a
    few-shot task folder drew demonstrations from (its manifest's ``dev_facts``; a format
    control's folder draws from the other tasks) must be a dev fact of the analysis's split
    wherever it is asked (a user's task sharing a fact with a built one can move it to test
    here, after the folder was built)."""
    for folder in fewshot_task_dirs:
        manifest = read_json(Path(folder) / "manifest.json")
        test = sorted(set(table[(table.split != DEV) & table.fact.isin(manifest["dev_facts"])].fact))
        if test:
            raise ValueError(f"{folder}: few-shot demonstrations were drawn from fact(s) {test[:5]}, which the "
                             f"analysis's dev/test split puts in test (a task of data.task_dirs shares them); "
                             "rebuild the few-shot folders with that task present")


def run_analysis(*, samples: list[tuple[dict, str]], knowledge_tasks: list[str], task_dirs: list[str],
                 content_free: list[tuple[dict, str]] = (),
                 text_dir: str, methods: dict[str, str], sides: dict[str, str], budget: dict, seed: int,
                 trained: dict[str, bool] | None = None, references: dict[str, str] | None = None,
                 out_dir: str, report: dict | None = None, seeds: list[int] | None = None,
                 alpha: float | None = None, min_recovery_fraction: float | None = None,
                 bootstrap_iters: int | None = None, split: dict | None = None,
                 generated_text_dirs: list[str] = (), fewshot_task_dirs: list[str] = (),
                 popularity_csv: str | None = None, pool_adapters: list[tuple[tuple, str]] = ()) -> Results:
    """``samples``: (labels, samples.jsonl) of every knowledge-task evaluation; labels carry
    model, compression, recovery, seed (None without recovery), steps (the checkpoint's
    training steps, None without recovery), run and task. An evaluation whose results JSON
    beside its samples (``<task>.json``) records a failed recovery training is set apart
    (:func:`compress_recover.failures.split_failed`): ``failed_runs.csv`` and verdict.json's
    ``failed_runs``. ``methods``/``sides``: recovery group -> method, method -> side; ``references``: group
    -> where a reference method's information comes from (:mod:`.stats.methods`).
    ``report``: config.yaml's ``report`` section (the keyword thresholds, if given, override
    it). ``split``: config.yaml's ``data.split`` (None: no dev set, every question test).
    ``generated_text_dirs``: each model's generated training text, leak-checked as the
    corpus text is. ``popularity_csv``: rule popularity's table of the built relations'
    subjects (None: no question has a popularity unless its doc gives one). ``content_free``:
    (labels, samples.jsonl) of every content-free evaluation, labelled with the knowledge
    task its variant masks: paired with the questions (:mod:`.stats.content_free`), never
    analysed as a task of their own. ``pool_adapters``: ((model, compression, run), adapter
    folder) of every prompt pool's run at the final budget, whose manifest counts the
    examples each prompt trained with (:func:`undertrained`)."""
    settings = Settings.from_report(report, alpha=alpha, min_recovery_fraction=min_recovery_fraction,
                                    bootstrap_iters=bootstrap_iters)
    recovery = Methods(dict(methods), dict(sides), dict(trained or {}), dict(references or {}))
    leaks = {**check_leaks(text_dir, task_dirs),
             "generated": [{"text_dir": str(d), **check_leaks(d, task_dirs)} for d in generated_text_dirs]}
    split_config = split_settings(split)
    evaluated, failed = split_failed(samples)
    for run in failed:
        log.warning("%s / %s / %s: recovery training failed (%s); no question of it enters the analysis",
                    run["model"], run["compression"], run["run"], run["failure"])
    questions_table = question_table(evaluated, recovery, split, popularity=read_popularity(popularity_csv))
    questions_table = with_priors(questions_table, prior_table(split_failed(list(content_free))[0]))
    if popularity_csv is not None:
        check_popularity(questions_table)
    check_demonstration_facts(questions_table, fewshot_task_dirs)
    table = with_pooled_task(questions_table, knowledge_tasks)
    examples = {tuple(run): examples_per_prompt(read_json(Path(folder) / "manifest.json").get("pool") or {})
                for run, folder in pool_adapters}
    result = analyse(table, methods=recovery, settings=settings, seed=seed, budget=budget,
                     held_out_tasks=split_config["held_out_tasks"], failed=failed,
                     pool_examples={k: v for k, v in examples.items() if v},
                     min_examples=int((report or {}).get("pool_min_examples", MIN_EXAMPLES)))
    questions = result["split"]
    results = Results(
        verdicts=result["verdicts"], rule=verdict_rule(recovery, settings, budget),
        noninferiority_rule=noninferiority_rule(settings), settings=settings,
        bootstrap_iters=result["bootstrap_iters"],
        seeds=list(seeds) if seeds is not None else sorted({int(s) for s in table.seed.dropna()}),
        methods=recovery, budget=budget,
        final_steps=final_steps(budget),
        split={**split_config,
               "counts": split_counts(dict(zip(zip(questions.task, questions.doc_id), questions.split)))},
        leaks=leaks, failed_runs=failed, sensitivity=result["sensitivity"],
        resampling_units=result["resampling_units"],
        tables=Tables(**{spec.name: result[spec.name] for spec in TABLE_SPECS}))
    results.save(out_dir)
    for v in results.verdicts:
        log.info("%s / %s: %s (%s)", v.model, v.compression, v.verdict, v.reason)
    return results

