"""A method entry of config.yaml, parsed, and the runs a recovery entry expands into.

An :class:`Entry` is one compression entry, or one run of a recovery entry: the entry's
name (its folder), its key in config.yaml (for errors), its method's validated config and,
for a recovery that trains, its objective, training text, seed and steps. Runs are named
by :mod:`compress_recover.runs`; nothing here spells a run name itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..recover.objective import Objective
from ..registry import ConfigError, MethodConfig
from ..runs import BASE, TEXTS, reserved_mark, run_name

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # a model's or an entry's name (its folder)
TEXT_SUFFIX = {"corpus": "", "generated": "-gen"}


@dataclass(frozen=True)
class Entry:
    """One compression entry of config.yaml, or one run of a recovery entry.

    A recovery entry that trains runs once per seed of ``recovery.seeds``: each run is an
    Entry whose ``slug`` (the ``{recovery}`` folder) is ``f"{group}.seed{seed}"``;
    ``group`` is the entry's own name (its method's, or ``name``). Method ``none`` trains
    nothing: one Entry, ``slug == group`` and ``seed`` None.
    """

    slug: str
    key: str  # e.g. "compression.methods[1]"
    raw: dict  # the method's own keys (a recovery entry's 'objective' is resolved into ``objective``)
    config: MethodConfig
    objective: Objective | None = None  # recovery entries that train: the effective objective
    group: str = ""  # the entry's name without seed ("" -> slug)
    seed: int | None = None  # the training seed of a recovery run
    text: str = "corpus"  # recovery entries: the training text (TEXTS)
    steps: int | None = None  # recovery runs that train: the optimizer steps of this adapter
    parent: str | None = None  # an intermediate checkpoint: the run whose training saved it
    model: str | None = None  # a compression listed under one model (models.<name>.compressions): that model
    recover: bool = True  # a compression: False (its entry's recover: false) evaluates it with no recovery run

    def __post_init__(self):
        if not self.group:
            object.__setattr__(self, "group", self.slug)

    @property
    def method(self) -> str:
        return self.config.method


def parse_entries(registry, raws: list[dict], section: str, objective: Objective | None = None,
                  default_text: str = "corpus") -> dict[str, Entry]:
    """Parse a methods list. For recovery (``objective`` given: the config-wide default)
    an entry may override the objective and the training text (``default_text``:
    recovery.text); a non-default one is part of its name (<name>-kd, <name>-gen, <name>-kd-gen)."""
    entries: dict[str, Entry] = {}
    for i, raw in enumerate(raws):
        key = f"{section}[{i}]"
        raw = dict(raw) if isinstance(raw, dict) else raw
        override = raw.pop("objective", None) if isinstance(raw, dict) and objective is not None else None
        text_override = raw.pop("text", None) if isinstance(raw, dict) and objective is not None else None
        recover = raw.pop("recover", None) if isinstance(raw, dict) and objective is None else None
        if recover is not None and not isinstance(recover, bool):
            raise ConfigError(f"{key}.recover: {recover!r} must be true or false")
        cfg = registry.parse(raw, key)
        if objective is not None and cfg.name is not None:
            mark = reserved_mark(cfg.name)
            if mark:
                raise ConfigError(f"{key}.name: {cfg.name!r} contains {mark}; choose another name")
        slug = cfg.slug()
        effective, text = None, default_text
        if objective is not None and cfg.method != BASE and cfg.trained:
            effective = Objective.from_dict(override, f"{key}.objective", base=objective)
            if text_override is not None:
                text = check_text(text_override, f"{key}.text")
            if cfg.name is None:
                slug += effective.suffix() + TEXT_SUFFIX[text]
        elif override is not None or text_override is not None:
            what = "objective" if override is not None else "text"
            raise ConfigError(f"{key}.{what}: method '{cfg.method}' trains nothing; remove its {what}")
        if slug == BASE and cfg.method != BASE:
            raise ConfigError(f"{key}: the name '{BASE}' is reserved for method '{BASE}'")
        if not NAME.match(slug):
            raise ConfigError(f"{key}: derived name {slug!r} is not a lowercase name; set 'name'")
        if slug in entries:
            raise ConfigError(f"{key}: name {slug!r} is already used by {entries[slug].key}; set a distinct 'name'")
        entries[slug] = Entry(slug, key, dict(raw), cfg, effective, text=text if effective else "corpus",
                              recover=recover is not False)
    return entries


def check_text(text, key: str) -> str:
    """A recovery training text: one of TEXTS; errors name ``key``."""
    if text not in TEXTS:
        raise ConfigError(f"{key}: {text!r} is not one of {list(TEXTS)}")
    return text


def expand_runs(groups: dict[str, Entry], seeds: list[int], steps: list[int]) -> dict[str, Entry]:
    """Every recovery entry that trains, once per seed (run ``<name>.seed<seed>``, trained to
    the final budget ``steps[-1]``), and its checkpoint at each earlier step of ``steps`` (run
    ``<name>.seed<seed>.step<n>``, saved by that run's training); ``none`` once. A method
    that trains nothing runs once per seed (once, on the first seed, when its result does
    not depend on the seed: ``seeded`` False), without budget checkpoints."""
    runs: dict[str, Entry] = {}
    for name, entry in groups.items():
        if entry.method == BASE:  # trains nothing: one run, named as the entry
            runs[name] = replace(entry, group=name, seed=None)
            continue
        if not entry.config.trained:  # computed, not trained: no budget, no checkpoints
            for seed in seeds if entry.config.seeded else seeds[:1]:
                run = run_name(name, seed)
                runs[run] = replace(entry, slug=run, group=name, seed=seed)
            continue
        for seed in seeds:
            run = run_name(name, seed)
            runs[run] = replace(entry, slug=run, group=name, seed=seed, steps=steps[-1])
            for n in steps[:-1]:
                checkpoint = run_name(name, seed, n)
                runs[checkpoint] = replace(entry, slug=checkpoint, group=name, seed=seed, steps=n, parent=run)
    return runs
