"""How plan values reach Snakemake's rules: params with their keys in a canonical order, and wildcard constraints."""

from __future__ import annotations

import re


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares a job's params with those of its last run as written, key order
    included: canonical params keep a reordered config.yaml from rerunning anything.
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def choice_regex(names) -> str:
    """A wildcard constraint that matches exactly the given names."""
    names = sorted(set(names))
    return "|".join(re.escape(n) for n in names) if names else "(?!)"
