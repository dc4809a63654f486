"""Method registries: a compression or recovery method is one small registered unit.

A unit is a name, a config dataclass (unknown keys rejected, types checked) and an
entry point given as ``"module:function"``. Entry points are imported only when a
job runs, so reading the registry (as Snakemake does while building the DAG) never
imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A config.yaml value is wrong; the message names its key."""


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config. ``name`` overrides the derived output name."""

    name: str | None = None

    method: ClassVar[str] = ""
    uses_calibration: ClassVar[bool] = False
    # Recovery methods: "parameters" (new weights inside the model) or "input" (prompts).
    side: ClassVar[str] = ""

    def divisors(self) -> dict[str, int]:
        """Config keys whose value must divide every pruned/quantized layer's input width."""
        return {}

    def slug(self) -> str:
        """The folder name for this configuration, e.g. ``gptq-w4g64``."""
        return self.name or self.method

    def check(self, key: str) -> None:
        """Range checks beyond types; raise ConfigError naming ``key``."""

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "name"}

    @classmethod
    def from_dict(cls, raw: dict, key: str) -> "MethodConfig":
        raw = {k: v for k, v in raw.items() if k != "method"}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {unknown} for method '{cls.method}'; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        for k, v in raw.items():
            if not _type_ok(v, hints[k]):
                raise ConfigError(f"{key}.{k}: {v!r} is not of type {hints[k]}")
        cfg = cls(**raw)
        cfg.check(key)
        return cfg


@dataclass(frozen=True)
class NoMethod(MethodConfig):
    """The identity: the base model uncompressed, or the compressed model unrecovered."""

    method = "none"

    def slug(self) -> str:
        return "none"


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(hint) or (Any,)
        return isinstance(value, (list, tuple)) and all(_type_ok(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is Any:
        return True
    return isinstance(value, hint)


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type[MethodConfig]
    entry_point: str | None  # "module:function"; None for the identity method

    def load(self) -> Callable:
        if self.entry_point is None:
            raise RuntimeError(f"method '{self.name}' has no entry point: it does nothing")
        module, func = self.entry_point.split(":")
        return getattr(importlib.import_module(module), func)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._methods: dict[str, Method] = {}

    def register(self, config_cls: type[MethodConfig], entry_point: str | None) -> None:
        name = config_cls.method
        if name in self._methods:
            raise ValueError(f"{self.kind} method '{name}' registered twice")
        self._methods[name] = Method(name, config_cls, entry_point)

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __contains__(self, name: str) -> bool:
        return name in self._methods

    def names(self) -> list[str]:
        return sorted(self._methods)

    def parse(self, raw: dict, key: str) -> MethodConfig:
        if not isinstance(raw, dict) or "method" not in raw:
            raise ConfigError(f"{key}: each entry needs a 'method' ({self.names()})")
        if raw["method"] not in self._methods:
            raise ConfigError(f"{key}.method: unknown {self.kind} method {raw['method']!r}; known: {self.names()}")
        return self._methods[raw["method"]].config_cls.from_dict(raw, key)
