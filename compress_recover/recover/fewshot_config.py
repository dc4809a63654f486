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
