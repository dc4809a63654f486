"""Config of few-shot prompting (Brown et al. 2020, https://arxiv.org/abs/2005.14165) as a
recovery method, kept import-light."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig


@dataclass(frozen=True)
class FewShotConfig(MethodConfig):
    """``k`` demonstrations of the same relation before each question, built by lm-eval's own
    few-shot machinery (the task's delimiter and sampler). For the built knowledge tasks they
    come from the **dev** questions only and never share the question's fact
    (:mod:`compress_recover.data.fewshot_task`); a user's task folder uses its own few-shot
    split. One order of the dev questions per task, seeded by the run's seed (lm-eval's
    ``fewshot_random_seed``); each question takes the first k it allows. Nothing is trained
    and no parameter is added; its cost is the longer input.

    Example (config.yaml, under ``recovery.methods``)::

        - method: fewshot
          k: 3
    """

    method = "fewshot"
    entry_point = "compress_recover.recover.fewshot:build"
    adapter_loader = "compress_recover.recover.fewshot:load"
    side = "input"  # demonstrations at the input
    trained = False
    needs = ("fewshot_tasks",)
    reference_job_s = 7.0 / 3  # compute_fewshot (no model loaded) on compress_recover.estimate's reference machine
    k: int = 3

    def num_fewshot(self) -> int:
        return self.k

    def check(self, key: str) -> None:
        if self.k < 1:
            raise ConfigError(f"{key}.k: {self.k} must be >= 1")

    def check_plan(self, key: str, plan) -> None:
        """Refused before any job: (1) evaluation.num_fewshot > 0, which scores every other run,
        the compressed model itself included, with demonstrations too (``Plan.shots``), so the
        remedy is compared with a prompted model (at k = num_fewshot it is that model, its
        recovery 0 by construction): few-shot prompting is a remedy against zero-shot scoring;
        (2) no dev question in the built knowledge tasks (data.split.dev_fraction 0) to draw
        from; (3) a k above what every question of the built knowledge tasks is allowed (its
        own dev questions; with recovery.recover_base the format control's pool too), counted
        exactly at plan time (``Plan.demonstration_limit``), as rule fewshot_task would."""
        if plan.num_fewshot > 0:
            raise ConfigError(f"evaluation.num_fewshot: {plan.num_fewshot} with {key}.k: {self.k}: every other run, "
                              f"the compressed model as it is included, is then scored {plan.num_fewshot}-shot too, "
                              f"so few-shot prompting is compared with a prompted model"
                              + (" and equals it (its recovery 0 by construction)" if self.k == plan.num_fewshot
                                 else "") + f"; set evaluation.num_fewshot: 0 to measure it against zero-shot "
                              f"scoring, or drop {key}")
        if not plan.knowledge_tasks:
            return  # a user's task folder draws from its own few-shot split (checked by the plan)
        if plan.dev_fraction() == 0:
            raise ConfigError(f"data.split.dev_fraction: 0 puts every question of the built knowledge tasks in test, "
                              f"so {key} (k: {self.k}) has no dev question to draw its demonstrations from; set "
                              "dev_fraction above 0 (default 0.25), or drop the entry")
        most, why = plan.demonstration_limit(control=plan.recover_base)
        if self.k > most:
            raise ConfigError(f"{key}.k: {self.k} demonstrations per question, but {why}; the largest k allowed is "
                              f"{most}" + ("" if most else " (none: drop the entry or change data.split)"))
