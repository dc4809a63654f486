"""A method's config is written twice: the schema's branch for the method and the method's
config class (its dataclass fields and its ``check()``). For every registered compression
and recovery method the two agree on the set of fields and on each field's type, default,
description and range; a failure names the first difference.

The class states types and defaults as dataclass fields, but ranges only as the values its
``check()`` refuses (and, for a choice, as a module constant such as ``ROUTINGS``), so
ranges are compared by probing: each value at, beside and around every bound the schema
states, every value of an enum and of the class's stated choices, must be accepted by both
or refused by both.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import types
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

from compress_recover.compress import COMPRESSION
from compress_recover.recover import RECOVERY
from compress_recover.registry import ConfigError

from conftest import REPO

SCHEMA = yaml.safe_load(Path(REPO / "compress_recover" / "schema" / "config.schema.yaml").read_text())
REGISTRIES = {"compression": COMPRESSION, "recovery": RECOVERY}
METHODS = [(section, name) for section, registry in REGISTRIES.items() for name in registry.names()]
# Keys of a recovery entry that the plan reads (compress_recover.config.entries), not the method's class.
ENTRY_KEYS = {"objective", "text"}
# Keys of a compression entry that the plan reads: recover (false: evaluated with no recovery run).
COMPRESSION_ENTRY_KEYS = {"recover"}
# Range differences found when this test was written: (section, method, field) -> the values
# on which schema and class disagree. Fixing one changes which step refuses a config, and
# with what message, so they are kept as they are; each must still be found (fixing one
# means deleting its line), and any other difference fails.
KNOWN_DIFFERENCES = {
    # check() also refuses 0..7 (-1 or >= 8); the schema says minimum -1
    ("compression", "gptq", "group_size"): lambda v: 0 <= v < 8,
    # the schema refuses alpha <= 0 and weight_decay < 0; check() does not
    ("recovery", "lora", "alpha"): lambda v: v <= 0,
    ("recovery", "lora", "weight_decay"): lambda v: v < 0,
    ("recovery", "prompt_tuning", "weight_decay"): lambda v: v < 0,
    ("recovery", "idp", "weight_decay"): lambda v: v < 0,
    # a cross-field rule the schema does not express: curated needs pool_size == len(sources)
    # (check() refuses the defaults' 4 prompts for 2 sources, naming both keys)
    ("recovery", "idp", "routing"): lambda v: v == "curated",
}
# Keys added after runs existed whose schema states no default on purpose: the schema's
# defaults are written into every entry's rule params, so a default would change the params
# of every existing job of the method and rerun it (seen: every LoRA job of a finished demo).
# (section, method, field) -> the class default the schema leaves out.
NO_SCHEMA_DEFAULT = {("recovery", "lora", "layers"): None}
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _items(section: str) -> dict:
    return SCHEMA["properties"][section]["properties"]["methods"]["items"]


def _branch(section: str, method: str) -> dict[str, dict]:
    """The schema's properties for ``method``: its branch's, with the shared ones (``{}``)
    taken from the list item."""
    items = _items(section)
    branches = [b["then"] for b in items["allOf"]
                if b["if"]["properties"]["method"].get("const") == method
                or method in b["if"]["properties"]["method"].get("enum", [])]
    assert len(branches) == 1, f"{section}.methods: {len(branches)} schema branches for method {method!r}, not 1"
    return {k: (v or items["properties"].get(k, {})) for k, v in branches[0]["properties"].items()}


def _class_types(hint) -> tuple[set[str], set[str] | None]:
    """The JSON types of a field's type hint, and of its items for a list."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found, items = set(), None
        for h in typing.get_args(hint):
            kinds, item_kinds = _class_types(h)
            found |= kinds
            items = item_kinds or items
        return found, items
    if typing.get_origin(hint) in (list, tuple):
        return {"array"}, _class_types((typing.get_args(hint) or (typing.Any,))[0])[0]
    return ({JSON_TYPES[hint]} if hint in JSON_TYPES else set()), None


def _json_types(kind) -> set[str]:
    return {kind} if isinstance(kind, str) else set(kind)


def _schema_types(prop: dict) -> tuple[set[str], set[str] | None]:
    """The JSON types a schema property allows, and of its items for an array."""
    items = prop.get("items")
    return _json_types(prop.get("type", [])), None if items is None else _json_types(items.get("type", []))


def _default(field: dataclasses.Field):
    value = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    return list(value) if isinstance(value, tuple) else value


def _same(a, b) -> bool:
    """Equal values of the same JSON kind (True is not 1; 16 and 16.0 are the same number)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool) and (a is None) == (b is None)


def _accepts(cls, raw: dict) -> bool:
    try:
        cls.from_dict(raw, "probe")
    except ConfigError:
        return False
    return True


def _baseline(cls, props: dict) -> dict:
    """A config the class accepts: its defaults, or with one optional number set to a value
    inside its schema range (when the class needs one of several fields, as pruning does)."""
    if _accepts(cls, {}):
        return {}
    for name, prop in props.items():
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        high = prop.get("maximum", prop.get("exclusiveMaximum"))
        if "number" in _schema_types(prop)[0] and low is not None and high is not None:
            candidate = {name: (low + high) / 2}
            if _accepts(cls, candidate):
                return candidate
    raise AssertionError(f"{cls.__name__}: no config found that its check() accepts")


def _stated_choices(cls, default) -> list:
    """The choices a class's module states as a constant holding the field's default, all of
    its type (``ROUTINGS = ("hard", "shard", "soft")``, ``GPTQ_BITS``): what its check() accepts."""
    constants = vars(sys.modules[cls.__module__]).values()
    return [v for c in constants if isinstance(c, (tuple, list, set, frozenset)) and default in c
            and all(type(x) is type(default) for x in c) for v in c]


def _probes(prop: dict, kinds: set[str], choices: list) -> list:
    """Values to try on a field: each enum value (and the class's own ``choices``) and its
    neighbours, an empty list and the default one, each bound and its neighbours, the
    integers just above a lower bound, and far values on both sides."""
    if "enum" in prop:
        values = [*prop["enum"], *choices]
        numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if numbers:
            values += range(min(numbers) - 1, max(numbers) + 2)
        if all(isinstance(v, str) for v in values):
            values.append("not-" + "-".join(values))
        return values
    if "array" in kinds:
        return [[], *([prop["default"]] if prop.get("default") else [])]
    bounds = [prop[k] for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum") if k in prop]
    if "integer" in kinds:
        values = [-10**6, 10**6]
        for b in bounds:
            values += [b - 1, b, b + 1]
        for b in [prop[k] for k in ("minimum", "exclusiveMinimum") if k in prop]:
            values += range(b, b + 12)
        return values
    if "number" in kinds:
        values = [-1e6, 1e6, -1.0, 0.0, 0.5, 1.0, 2.0]
        for b in bounds:
            values += [b - 1e-6, b, b + 1e-6]
        return values
    return []


def _range_differences(cls, name: str, prop: dict, baseline: dict) -> list[tuple[object, str]]:
    """(value, what differs) for each probed value of field ``name`` that only one side accepts."""
    probes = _probes(prop, _schema_types(prop)[0], _stated_choices(cls, prop.get("default")))
    differences = []
    for value in {repr(v): v for v in probes}.values():  # each value once (1 and 1.0 both)
        by_schema = jsonschema.Draft202012Validator(prop).is_valid(value)
        by_class = _accepts(cls, {**baseline, name: value})
        if by_schema != by_class:
            differences.append((value, f"{name}: {value!r} is {'accepted' if by_schema else 'refused'} by the "
                                       f"schema but {'accepted' if by_class else 'refused'} by {cls.__name__}"))
    return differences


def _differences(cls, props: dict[str, dict], entry_keys: set[str]) -> list[tuple[str, object, str]]:
    """(field, probed value or None, what differs) between a schema branch's properties and
    the config class ``cls``; the value is given for a range difference only. ``entry_keys``:
    the keys the plan reads on the entry, which the branch must have."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    found = []
    in_schema = set(props) - {"method"} - ENTRY_KEYS - COMPRESSION_ENTRY_KEYS
    for name in sorted(in_schema - set(fields)):
        found.append((name, None, f"{name}: in the schema's branch but not a field of {cls.__name__}"))
    for name in sorted(set(fields) - in_schema):
        found.append((name, None, f"{name}: a field of {cls.__name__} but not in the schema's branch"))
    for name in sorted(entry_keys - set(props)):
        found.append((name, None, f"{name}: the plan reads it on every such entry; the schema's branch lacks it"))
    own = {name: props[name] for name in sorted(in_schema & set(fields)) if name != "name"}  # name: MethodConfig's
    for name, prop in own.items():
        (schema_types, schema_items), (class_types, class_items) = _schema_types(prop), _class_types(hints[name])
        default = _default(fields[name])
        if schema_types != class_types:
            found.append((name, None, f"{name}: type {sorted(schema_types)} in the schema, {hints[name]} "
                                      f"({sorted(class_types)}) in {cls.__name__}"))
        elif schema_items != class_items:
            found.append((name, None, f"{name}: items of type {schema_items} in the schema, {class_items} "
                                      f"in {cls.__name__}"))
        if "default" not in prop:
            found.append((name, None, f"{name}: no default in the schema ({cls.__name__}: {default!r})"))
        elif not _same(prop["default"], default):
            found.append((name, None, f"{name}: default {prop['default']!r} in the schema, {default!r} "
                                      f"in {cls.__name__}"))
        if not prop.get("description"):
            found.append((name, None, f"{name}: no description in the schema"))
    baseline = _baseline(cls, own)
    for name, prop in own.items():
        found += [(name, value, what) for value, what in _range_differences(cls, name, prop, baseline)]
    return found


@pytest.mark.parametrize("section", REGISTRIES)
def test_the_schema_lists_every_registered_method(section):
    enum = _items(section)["properties"]["method"]["enum"]
    assert sorted(enum) == REGISTRIES[section].names()


@pytest.mark.parametrize("section, method", METHODS)
def test_schema_branch_and_config_class_agree(section, method):
    """Fields, types, defaults, descriptions and ranges; the known differences (above) aside."""
    trains = section == "recovery" and method != "none" and REGISTRIES[section][method].config_cls.trained
    entry_keys = COMPRESSION_ENTRY_KEYS if section == "compression" and method != "none" else set()
    found = _differences(REGISTRIES[section][method].config_cls, _branch(section, method),
                         ENTRY_KEYS if trains else entry_keys)

    def known(name, value) -> bool:
        return value is not None and KNOWN_DIFFERENCES.get((section, method, name), lambda v: False)(value)

    def unstated(name, what) -> bool:
        return (section, method, name) in NO_SCHEMA_DEFAULT and what.startswith(f"{name}: no default in the schema")

    new = [what for name, value, what in found if not known(name, value) and not unstated(name, what)]
    more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
    assert not new, f"{section} method {method!r}: {new[0]}{more}"
    gone = [name for (s, m, name) in KNOWN_DIFFERENCES if (s, m) == (section, method)
            and not any(n == name and known(n, v) for n, v, _ in found)]
    assert not gone, f"{section} method {method!r}: {gone[0]} now agrees; remove it from KNOWN_DIFFERENCES"


def test_the_comparison_names_each_kind_of_difference():
    """A field one side lacks, a type, a default and a range that differ, and a choice the
    class accepts that the schema does not list are each found, by field."""
    cls = COMPRESSION["gptq"].config_cls
    assert [(n, v) for n, v, _ in _differences(cls, _branch("compression", "gptq"), set())] == \
        [("group_size", v) for v in range(8)]

    props = copy.deepcopy(_branch("compression", "gptq"))
    props.pop("sym")
    props["extra"] = {"type": "integer", "default": 1, "description": "not a field"}
    props["true_sequential"]["type"] = "integer"
    props["damp_percent"]["default"] = 0.1
    props["damp_percent"]["exclusiveMaximum"] = 0.5
    props["bits"]["enum"] = [2, 3, 4]
    found = _differences(cls, props, {"objective"})
    messages = {}  # each field's first difference
    for name, _, what in found:
        messages.setdefault(name, what)
    assert messages["sym"] == "sym: a field of GPTQConfig but not in the schema's branch"
    assert messages["extra"] == "extra: in the schema's branch but not a field of GPTQConfig"
    assert messages["objective"].startswith("objective: the plan reads it")
    assert messages["true_sequential"].startswith("true_sequential: type ['integer'] in the schema, <class 'bool'>")
    assert "damp_percent: default 0.1 in the schema, 0.05 in GPTQConfig" in [w for *_, w in found]
    assert "damp_percent: 0.5 is refused by the schema but accepted by GPTQConfig" in [w for *_, w in found]
    assert "bits: 8 is refused by the schema but accepted by GPTQConfig" in [w for *_, w in found]
    assert _class_types(float | None) == ({"number", "null"}, None)
    assert _class_types(list[str]) == ({"array"}, {"string"})
    assert not _same(1, True) and not _same(0, None) and _same(16, 16.0)


def test_a_key_without_a_schema_default_stays_out_of_the_rule_params_until_set():
    # the params Snakemake compares for a LoRA job are its entry as validated: `layers` is absent
    # unless written, so existing LoRA jobs keep their params (and their results) when it is added
    from compress_recover.config import build_plan
    from test_config import default_config

    config = default_config()
    plan = build_plan(config)
    lora = next(e for e in plan.recoveries.values() if e.method == "lora")
    assert "layers" not in lora.raw and lora.config.layers is None
    config["recovery"]["methods"].append({"method": "lora", "name": "lora-matched", "rank": 1, "alpha": 2,
                                          "target_modules": ["q_proj"], "layers": list(range(10))})
    matched = next(e for e in build_plan(config).recoveries.values() if e.group == "lora-matched")
    assert matched.raw["layers"] == list(range(10)) and matched.config.layers == list(range(10))
