"""The top layer: config.yaml (already schema-validated) turned into the job grid.

Imported by ``rules/common.smk`` while Snakemake builds the DAG, so nothing here imports
anything heavy (no torch, no transformers). It may import every stage; no stage imports it.

| module | its one idea |
|---|---|
| :mod:`.entries` | a method entry of config.yaml, parsed, and the runs a recovery entry expands into |
| :mod:`.checks` | the semantic checks the schema cannot express, each raising ``ConfigError`` naming the key |
| :mod:`.plan` | the plan: :func:`build_plan` runs the checks and returns the job grid (:class:`Plan`) |
| :mod:`.rule_values` | how plan values reach the rules: canonical params, wildcard constraints |

Task-YAML probing of ``data.task_dirs`` lives in the data stage
(:mod:`compress_recover.data.task_yaml`); run names, in :mod:`compress_recover.runs`.
"""

from .entries import Entry
from .plan import Plan, build_plan
from .rule_values import canonical, choice_regex

__all__ = ["Entry", "Plan", "build_plan", "canonical", "choice_regex"]
