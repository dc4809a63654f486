"""The experiment plan: config.yaml (already schema-validated and checked) turned into the job grid.

:func:`build_plan` runs every semantic check (:mod:`.checks`), parses the method entries
(:mod:`.entries`) and returns a :class:`Plan`: the models, compressions, recovery runs and
tasks, and the (model, compression, recovery run) cells to evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..compress import COMPRESSION
from ..data.content_free import variant_name
from ..data.fewshot_task import planned_demonstration_limits
from ..data.knowledge_task import DEFAULT_MAX_ANSWER_PRESENCE
from ..data.perplexity_task import PERPLEXITY_TASK
from ..data.split import split_settings
from ..recover import RECOVERY
from ..recover.objective import Objective
from ..runs import BASE
from ..registry import ConfigError
from .checks import (check_attention_task, check_content_free_tasks, check_corpus, check_demonstration_pools,
                     check_demonstrations, check_finite, check_format_control, check_grid, check_knowledge_tasks,
                     check_llamacpp, check_models, check_names, check_prompt_positions, check_report, check_runtime,
                     check_seeds, check_shapes, check_split, check_steps, check_task_dirs, check_task_names,
                     check_widths)
from .entries import TEXTS, Entry, check_text, expand_runs, parse_entries


@dataclass
class Plan:
    models: dict[str, dict]
    compressions: dict[str, Entry]
    recoveries: dict[str, Entry]
    knowledge_tasks: list[str]
    builtin_tasks: list[str]
    custom_tasks: dict[str, str]  # task -> folder
    recover_base: bool = False
    perplexity_tasks: list[str] = field(default_factory=list)
    custom_knowledge: list[str] = field(default_factory=list)  # custom tasks marked knowledge: true
    seeds: list[int] = field(default_factory=lambda: [0])
    budget_steps: list[int] = field(default_factory=lambda: [60])  # sorted; the last is the final budget
    num_fewshot: int = 0  # evaluation.num_fewshot: demonstrations for a run whose method sets none
    content_free_mask: str | None = None  # data.content_free_mask (None: no content-free variant)
    # custom knowledge task -> its subject_field and masked_fields (data.task_dirs), when it gets a variant
    custom_subjects: dict[str, dict] = field(default_factory=dict)
    llamacpp: bool = True  # evaluation.llamacpp: GGUF checkpoints also evaluated by llama.cpp's runtime
    split: dict = field(default_factory=dict)  # data.split ({}: its defaults)
    # how the built knowledge tasks are drawn: data.num_choices, data.max_questions,
    # data.max_answer_presence and the run's seed (rule knowledge_task's params)
    question_settings: dict = field(default_factory=dict)
    tasks: list[str] = field(init=False)

    def __post_init__(self):
        self.tasks = [*self.knowledge_tasks, *self.perplexity_tasks, *self.builtin_tasks, *self.custom_tasks]

    def compressions_by_method(self, method: str) -> list[str]:
        return [s for s, e in self.compressions.items() if e.method == method]

    def recoveries_by_method(self, method: str) -> list[str]:
        """The runs of ``method`` that train (intermediate checkpoints are saved by their parent)."""
        return [s for s, e in self.recoveries.items() if e.method == method and e.parent is None]

    def checkpoint_steps(self) -> list[int]:
        """The budget's intermediate steps: each trained run saves one checkpoint at each."""
        return self.budget_steps[:-1]

    def texts_used(self) -> list[str]:
        """The training texts some recovery run uses, in TEXTS order."""
        used = {t for e in self.recoveries.values() if e.method != BASE and e.config.trained
                for t in e.config.training_texts(e.text)}
        return [t for t in TEXTS if t in used]

    def shots(self, run: str) -> int:
        """Demonstrations per prompt in the evaluation of ``run``: its method's (few-shot
        prompting's k), else evaluation.num_fewshot."""
        shots = self.recoveries[run].config.num_fewshot()
        return self.num_fewshot if shots is None else shots

    def most_shots(self) -> int:
        """The most demonstrations any evaluation asks for (0: every evaluation is zero-shot)."""
        return max([self.num_fewshot, *(self.shots(run) for run in self.recoveries)])

    def format_control(self, compression: str, run: str) -> bool:
        """Whether the evaluation of ``run`` on ``compression`` is a few-shot method's format
        control: the method (one that sets its own demonstrations) on the uncompressed model,
        whose demonstrations come from the other relations
        (:mod:`compress_recover.data.fewshot_task`)."""
        return self.compressions[compression].method == BASE and self.recoveries[run].config.num_fewshot() is not None

    def control_shots(self) -> int:
        """The most demonstrations a format control asks for (0: none runs)."""
        return max([self.shots(run) for _, comp, run in self.cells() if self.format_control(comp, run)], default=0)

    def dev_fraction(self) -> float:
        """data.split.dev_fraction (its default where the config leaves it out)."""
        return split_settings(self.split)["dev_fraction"]

    def demonstration_limit(self, control: bool = False) -> tuple[int, str] | None:
        """(the most demonstrations every question of every built knowledge task is allowed,
        why no more): from its own dev questions, and with ``control`` also from its format
        control's (:func:`compress_recover.data.fewshot_task.planned_demonstration_limits`:
        exactly what rule fewshot_task allows, computed before any job). None without a
        built knowledge task (a user's task folder draws from its own few-shot split)."""
        if not self.knowledge_tasks:
            return None
        limits = planned_demonstration_limits(self.knowledge_tasks, split=self.split, **self.question_settings)
        sources = [("own", "its own dev questions")]
        if control:
            sources.append(("control", "the format control's pool (the other relations' dev questions)"))
        most, task, source = min((limits[t][s], t, what) for t in self.knowledge_tasks for s, what in sources)
        pool = limits[task]["pool"]
        held = [t for t in split_settings(self.split)["held_out_tasks"] if t in self.knowledge_tasks]
        if not pool:
            why = (f"built knowledge task {task} has no dev question (data.split.dev_fraction "
                   f"{self.dev_fraction()}" + (f", data.split.held_out_tasks {held}: a held-out task's facts, and its "
                                               "inverse relation's, are all test" if held else "") + ")")
        else:
            why = (f"a question of built knowledge task {task} is allowed only {most} among {source} ({pool} dev "
                   f"questions at data.split.dev_fraction {self.dev_fraction()}; a demonstration is never of the "
                   "question's fact nor answered by one of its choices)")
        return most, why

    def references(self) -> dict[str, str]:
        """Recovery group -> where its information comes from, for the groups whose
        information is the uncompressed model's (the verdict's references,
        :mod:`compress_recover.aggregate.stats.methods`): a method that reads the uncompressed
        checkpoint (``needs`` "uncompressed") or an objective that distils its logits."""
        out = {}
        for e in self.recoveries.values():
            where = ("the uncompressed weights" if "uncompressed" in e.config.needs
                     else "the uncompressed model's logits" if e.objective is not None and e.objective.loss != "lm"
                     else "")
            if where:
                out[e.group] = where
        return out

    def groups(self) -> dict[str, str]:
        """Recovery entry name (without seed) -> method."""
        return {e.group: e.method for e in self.recoveries.values()}

    def cells(self) -> list[tuple[str, str, str]]:
        """Every (model, compression, recovery run) to evaluate.

        Recovery methods run on compressed models; on the base model only ``none``
        runs, unless ``recovery.recover_base`` asks for the control (never for a method
        that only corrects a compression residual, ``runs_on_base`` False: on the
        uncompressed model it is the model itself).
        """
        cells = []
        for model in self.models:
            for comp, centry in self.compressions.items():
                if centry.model not in (None, model):  # another model's own compression
                    continue
                for rec, rentry in self.recoveries.items():
                    if rentry.method != BASE and not centry.recover:  # evaluated as it is (recover: false)
                        continue
                    if centry.method == BASE and rentry.method != BASE and not (
                            self.recover_base and rentry.config.runs_on_base):
                        continue
                    cells.append((model, comp, rec))
        return cells

    def model_compressions(self, model: str) -> list[str]:
        """The compressions of ``model``: every entry of compression.methods and its own
        (models.<model>.compressions)."""
        return [c for c, e in self.compressions.items() if e.model in (None, model)]

    def gguf_cells(self) -> list[tuple[str, str]]:
        """(model, compression) of every compressed checkpoint that keeps a GGUF file, which
        llama.cpp's runtime also evaluates (rule evaluate_llamacpp)."""
        return [(m, c) for m in self.models for c in self.model_compressions(m)
                if self.compressions[c].config.gguf_file()]

    def task_kind(self, task: str) -> str:
        if task in self.knowledge_tasks or task in self.custom_knowledge:
            return "knowledge"
        if task in self.perplexity_tasks:
            return "perplexity"
        if task in self.custom_tasks:
            return "custom"
        return "builtin"

    def content_free(self) -> dict[str, str]:
        """The content-free variant of every built knowledge task and of every custom one whose
        data.task_dirs entry names its subject field -> the task
        (:mod:`compress_recover.data.content_free`); none without data.content_free_mask."""
        if self.content_free_mask is None:
            return {}
        return {variant_name(t): t for t in [*self.knowledge_tasks, *self.custom_content_free()]}

    def custom_content_free(self) -> list[str]:
        """The custom knowledge tasks that get a content-free variant (rule content_free_task)."""
        return [] if self.content_free_mask is None else [t for t in self.custom_knowledge if t in self.custom_subjects]

    def evaluated_tasks(self) -> list[str]:
        """Every task an evaluation scores: :attr:`tasks` and the content-free variants."""
        return [*self.tasks, *self.content_free()]

    def knowledge(self) -> list[str]:
        """Every knowledge task, built (``data.knowledge_tasks``) or custom, in task order."""
        return [t for t in self.tasks if self.task_kind(t) == "knowledge"]


def model_compressions(models: dict, compressions: dict[str, Entry]) -> dict[str, Entry]:
    """compression.methods and each model's own compressions (models.<name>.compressions),
    one name space; a checkpoint made elsewhere is listed under the model it compresses."""
    for entry in compressions.values():
        if entry.config.per_model:
            raise ConfigError(f"{entry.key}: a checkpoint made elsewhere is the compressed version of one model; "
                              "list it under models.<name>.compressions")
    out = dict(compressions)
    for name, spec in models.items():
        own = parse_entries(COMPRESSION, spec.get("compressions") or [], f"models.{name}.compressions")
        for slug, entry in own.items():
            if entry.method == BASE:
                raise ConfigError(f"{entry.key}: '{BASE}' (the model itself) is listed once, in compression.methods")
            if slug in out:
                raise ConfigError(f"{entry.key}: name {slug!r} is already used by {out[slug].key}; set a distinct "
                                  "'name'")
            entry.config.check_source(entry.key)
            out[slug] = replace(entry, model=name)
    return out


def build_plan(config: dict) -> Plan:
    """Check the semantics the schema cannot express and return the job grid."""
    check_finite(config)
    check_runtime(config)
    models = config["models"]
    check_models(models)
    data = config["data"]
    check_knowledge_tasks(data)
    custom, custom_knowledge = check_task_dirs(data["task_dirs"])
    check_task_names(data, custom)
    custom_subjects = check_content_free_tasks(data["task_dirs"], data.get("content_free_mask"))
    report = config.get("report", {})
    check_report(report)
    check_attention_task(report, data["knowledge_tasks"])
    compressions = model_compressions(models, parse_entries(COMPRESSION, config["compression"]["methods"],
                                                            "compression.methods"))
    objective = Objective.from_dict(config["recovery"].get("objective"), "recovery.objective")
    seeds = check_seeds(config["recovery"].get("seeds", [0]))
    steps = check_steps(config["recovery"].get("budget", {}).get("steps", 60))
    default_text = check_text(config["recovery"].get("text", "corpus"), "recovery.text")
    groups = parse_entries(RECOVERY, config["recovery"]["methods"], "recovery.methods", objective, default_text)
    check_split(data.get("split", {}), [*data["knowledge_tasks"], *custom_knowledge])
    check_widths(models, compressions)
    check_grid(compressions, groups)
    check_prompt_positions(models, groups, config["recovery"]["budget"]["seq_len"])
    check_shapes(models, compressions, groups, report)
    for entry in groups.values():
        entry.config.check_budget(entry.key, config["recovery"]["budget"]["seq_len"])
    check_corpus(data)
    plan = Plan(models=models, compressions=compressions, recoveries=expand_runs(groups, seeds, steps),
                knowledge_tasks=list(data["knowledge_tasks"]), builtin_tasks=list(data["lm_eval_tasks"]),
                custom_tasks=custom, recover_base=config["recovery"]["recover_base"],
                perplexity_tasks=[PERPLEXITY_TASK] if data["perplexity"] else [],
                custom_knowledge=custom_knowledge, seeds=seeds, budget_steps=steps,
                llamacpp=bool(config.get("evaluation", {}).get("llamacpp", True)),
                num_fewshot=config.get("evaluation", {}).get("num_fewshot", 0),
                content_free_mask=data.get("content_free_mask"), custom_subjects=custom_subjects,
                split=dict(data.get("split") or {}),
                # (the schema's defaults where a config was not filled by it)
                question_settings={"num_choices": data.get("num_choices", 4), "seed": config.get("seed", 0),
                                   "max_questions": data.get("max_questions"),
                                   "max_answer_presence": data.get("max_answer_presence",
                                                                   DEFAULT_MAX_ANSWER_PRESENCE)})
    check_demonstrations(data["task_dirs"], plan.most_shots())
    check_format_control(plan.knowledge_tasks, plan.control_shots())
    for entry in [*compressions.values(), *groups.values()]:
        entry.config.check_plan(entry.key, plan)
    check_demonstration_pools(plan)
    check_names(plan)
    check_llamacpp(plan, config.get("evaluation", {}))
    return plan
