"""Method registries: a compression or recovery method is one small registered unit.

A unit is its config dataclass (unknown keys rejected, types checked), which states
everything the rest of the code needs of the method as class attributes: its name, its
entry points as ``"module:function"`` strings (imported only when a job runs, so reading
the registry, as Snakemake does while building the DAG, never imports torch) and the
facts others ask of it (calibration data? which side of the model? can it be merged?).
Adding a method is one new module (config + entry points) and one ``register`` line;
no shared module names a method.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

SIDES = ("parameters", "input")


class ConfigError(ValueError):
    """A config.yaml value is wrong; the message names its key."""


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config. ``name`` overrides the derived output name."""

    name: str | None = None

    method: ClassVar[str] = ""
    # Compression: "module:function" of compress(model_dir, out_dir, config, calibration, device,
    # seed, dtype) -> (model, details). Recovery: of prepare(model, config, seed) -> trainable model.
    entry_point: ClassVar[str | None] = None
    # Compression: whether the method calibrates on text.
    uses_calibration: ClassVar[bool] = False
    # Compression: whether an entry is the compressed version of one model (made elsewhere), so
    # it is listed under that model (models.<name>.compressions), never in compression.methods.
    per_model: ClassVar[bool] = False
    # Compression: optional installs the method needs ("llama_cpp": llama-cpp-python, built by
    # make setup-gguf), refused with the plan when missing.
    tools: ClassVar[tuple[str, ...]] = ()
    # Recovery: "module:function" of load(model, adapter_dir) -> model with the saved adapter.
    adapter_loader: ClassVar[str | None] = None
    # Recovery: "parameters" (new weights inside the model) or "input" (prompts at the input).
    side: ClassVar[str] = ""
    # Recovery: whether the trained adapter could be merged into the model's weights.
    mergeable: ClassVar[bool] = False
    # Recovery: the samples field a method that chooses one prompt of a pool per input writes
    # (the prompt chosen per question; see compress_recover.prompt_choice); None for every
    # other method. A class attribute like the others, never a config key.
    choice_field: ClassVar[str | None] = None
    # Recovery: a published cost claim about the method against another method, which the
    # report sets beside our measurement: {"against": method, "params_ratio": how many times
    # fewer extra parameters, "latency_change": relative latency change, "source": citation}.
    cost_claim: ClassVar[dict | None] = None
    # Recovery: whether the method trains (False: its adapter is computed or built without
    # training, e.g. from the weights and calibration data, or demonstrations in the prompt).
    # With ``side`` it places the method in the report's 2 x 2 view.
    trained: ClassVar[bool] = True
    # Recovery: whether the method's result depends on the run's seed (False: one run, on
    # the first of recovery.seeds, whatever the seeds).
    seeded: ClassVar[bool] = True
    # Recovery: whether running the method on the uncompressed model can change it (False: it
    # corrects a compression residual, which the uncompressed model does not have, so its
    # format control is the uncompressed model itself and no control run is made).
    runs_on_base: ClassVar[bool] = True
    # Recovery: what a method that trains nothing reads besides the compressed checkpoint:
    # "uncompressed" (the uncompressed checkpoint and the calibration text), "fewshot_tasks"
    # (the few-shot task folders, rule fewshot_task).
    # A method that needs "uncompressed" takes its information from the uncompressed model:
    # the verdict treats it as a reference, beside the two sides and outside their comparison
    # (compress_recover/aggregate/stats/methods.py).
    needs: ClassVar[tuple[str, ...]] = ()

    # Seconds one job of the method (its compress_<method> or compute_<method> job) took on the
    # run estimate's reference machine, start-up included (compress_recover.estimate: a 2-core
    # AMD EPYC, float32, the default grid, issue 37); None: not measured there.
    reference_job_s: ClassVar[float | None] = None

    def prompt_positions(self) -> tuple[str, int]:
        """Recovery: (config key, positions) the method puts before the input at most (0: none)."""
        return ("", 0)

    def trainable_parameters(self, shape) -> int:
        """Recovery: the parameters it trains on a model of ``shape`` (a
        :class:`compress_recover.shape.ModelShape`): its prompt positions x the width; 0
        for a method that trains none (the run estimate's floor uses it)."""
        return int(self.prompt_positions()[1] or 0) * int(shape.hidden or 0) if self.trained else 0

    def scored_passes(self, evaluation: dict) -> int:
        """Recovery: how many times evaluation (config.yaml ``evaluation``) scores each
        question (a prompt pool's ablation scores it under every prompt)."""
        return 1

    def num_fewshot(self) -> int | None:
        """Recovery: demonstrations put in each evaluated prompt (None: evaluation.num_fewshot)."""
        return None

    def check_budget(self, key: str, seq_len: int) -> None:
        """Recovery: checks against the training blocks' length (recovery.budget.seq_len)."""

    def check_shape(self, key: str, model: str, shape) -> None:
        """Checks against the model at hand (a :class:`compress_recover.shape.ModelShape`):
        raise ConfigError naming ``key`` and ``model`` for a value this model cannot take."""

    def check_plan(self, key: str, plan) -> None:
        """Checks against the whole plan (a :class:`compress_recover.config.plan.Plan`: the
        grid, the tasks, the split, the evaluation settings), after every other check of the
        entry: raise ConfigError naming ``key`` or the other config keys involved."""

    def training_texts(self, default: str) -> list[str]:
        """Recovery: the training texts a run reads (``default``: its entry's text); a method
        that trains one part per text (a pool of per-source prompts) lists them all."""
        return [default]

    def divisors(self) -> dict[str, int]:
        """Config keys whose value must divide every pruned/quantized layer's input width."""
        return {}

    def slug(self) -> str:
        """The folder name for this configuration (``results/<model>/<slug>/``)."""
        return self.name or self.method

    def check(self, key: str) -> None:
        """Range checks beyond types; raise ConfigError naming ``key``."""

    def source_files(self) -> list[str]:
        """Compression: files or folders made elsewhere the entry reads (rule inputs: changing
        one reruns its job); none for a method that compresses the base model."""
        return []

    def check_source(self, key: str) -> None:
        """Compression: what the entry points to exists (checked with the plan, before any job)."""

    def gguf_file(self) -> bool:
        """Compression: whether the compressed checkpoint keeps a GGUF file (``model.gguf``)
        that llama.cpp's own runtime also evaluates (rule evaluate_llamacpp)."""
        return False

    def merge_effect(self, details: dict) -> dict:
        """Compression: what merging a weight adapter into this compressed checkpoint would do
        (``details`` as in its manifest). Recorded in the manifest; recovery reads it."""
        return {"merge_breaks_sparsity": False, "note": "dense checkpoint: merging is lossless"}

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


def _import(entry_point: str | None, what: str) -> Callable:
    if entry_point is None:
        raise RuntimeError(f"{what} is not defined")
    module, func = entry_point.split(":")
    return getattr(importlib.import_module(module), func)


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type[MethodConfig]

    @property
    def side(self) -> str:
        return self.config_cls.side

    def load(self) -> Callable:
        """The method's entry point (compress or prepare)."""
        return _import(self.config_cls.entry_point, f"method '{self.name}' has no entry point (it does nothing): it")

    def adapter_loader(self) -> Callable:
        """Recovery: the function that puts a saved adapter of this method on a model."""
        return _import(self.config_cls.adapter_loader, f"the adapter loader of method '{self.name}'")


class Registry:
    """``required``: class attributes every method but ``none`` must set."""

    def __init__(self, kind: str, required: tuple[str, ...] = ("entry_point",)):
        self.kind = kind
        self.required = required
        self._methods: dict[str, Method] = {}

    def register(self, config_cls: type[MethodConfig]) -> None:
        name = config_cls.method
        if name in self._methods:
            raise ValueError(f"{self.kind} method '{name}' registered twice")
        if name != "none":
            missing = [a for a in self.required if not getattr(config_cls, a)]
            if missing:
                raise ValueError(f"{self.kind} method '{name}' does not set {missing}")
            if "side" in self.required and config_cls.side not in SIDES:
                raise ValueError(f"{self.kind} method '{name}': side {config_cls.side!r} is not one of {SIDES}")
        self._methods[name] = Method(name, config_cls)

    def unregister(self, name: str) -> None:
        """Take method ``name`` out again (a test that registers a toy method of its own
        removes it, so no other test sees it)."""
        if name not in self._methods:
            raise KeyError(f"{self.kind} method '{name}' is not registered")
        del self._methods[name]

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __contains__(self, name: str) -> bool:
        return name in self._methods

    def names(self) -> list[str]:
        return sorted(self._methods)

    def sides(self) -> dict[str, str]:
        """Method -> side, for every method but ``none`` (recovery)."""
        return {n: m.side for n, m in sorted(self._methods.items()) if n != "none"}

    def parse(self, raw: dict, key: str) -> MethodConfig:
        if not isinstance(raw, dict) or "method" not in raw:
            raise ConfigError(f"{key}: each entry needs a 'method' ({self.names()})")
        if raw["method"] not in self._methods:
            raise ConfigError(f"{key}.method: unknown {self.kind} method {raw['method']!r}; known: {self.names()}")
        return self._methods[raw["method"]].config_cls.from_dict(raw, key)
