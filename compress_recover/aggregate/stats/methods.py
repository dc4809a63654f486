"""Which registered method, and which side of the verdict, each recovery group belongs to.

A recovery group (config.yaml's entry name, e.g. ``<method>`` or ``<method>-kd``) runs one
registered method; the method's registration says its side: ``parameters`` (new weights
inside the model) or ``input`` (prompts at the input). The rule passes both maps in
(``recovery.methods``: group or run -> method, ``recovery.sides``: method -> side);
:class:`Methods` answers every question about them, so no other module threads the two
dicts around.

A **reference** recovery is one whose information comes from the uncompressed model, not
from the compressed one and the leak-filtered training text: a correction computed from the
uncompressed weights (a low-rank copy of W_base - W_compressed is, at full rank, the base
itself) or a run distilling the uncompressed model's logits. Its success says the knowledge can be put back from the uncompressed model, which
neither side's claim is about, so the verdict shows it beside the sides with its own label
and the side comparison never reads it (``references``: group -> where its
information comes from; the plan derives it from each method's registration and objective,
never from names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARAMETERS, INPUT = "parameters", "input"


def method_of(recovery: str, run: str | None = None, methods: dict[str, str] | None = None) -> str:
    """The registered method of a recovery group (or run); the group's own name if unmapped."""
    methods = methods or {}
    return methods.get(recovery) or methods.get(run or "") or recovery


@dataclass(frozen=True)
class Methods:
    """``methods``: recovery group (or run) -> registered method; ``sides``: method -> side;
    ``trained``: method -> whether it trains (a method missing there trains);
    ``references``: group -> the uncompressed model's part its information comes from
    (absent: a side's method)."""

    methods: dict = field(default_factory=dict)
    sides: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)

    def reference(self, recovery: str, run: str | None = None) -> str:
        """Where ``recovery``'s information comes from when it is a reference ("" otherwise)."""
        return self.references.get(recovery) or self.references.get(run or "") or ""

    def is_trained(self, recovery: str) -> bool:
        """Whether ``recovery``'s method trains (False: computed or built without training)."""
        return bool(self.trained.get(self.method(recovery), True))

    def method(self, recovery: str, run: str | None = None) -> str:
        return method_of(recovery, run, self.methods)

    def side(self, recovery: str) -> str | None:
        """The side of ``recovery``'s method (None for a method with no registered side)."""
        return self.sides.get(self.method(recovery))

    def registered_side(self, recovery: str) -> str:
        """The side of ``recovery``'s method; fails for a method with no registered side."""
        method = self.method(recovery)
        if method not in self.sides:
            raise ValueError(f"recovery '{recovery}' (method '{method}') has no registered side")
        return self.sides[method]

    def named(self, side: str) -> str:
        """The methods of ``side``, sorted and comma-separated ("none registered" without one)."""
        return ", ".join(sorted(m for m, v in self.sides.items() if v == side)) or "none registered"

    def relabelled(self, back: dict[str, tuple[str, int | None]]) -> "Methods":
        """The same sides for the pseudo-groups of a budget curve (``back``: label -> (group, steps))."""
        return Methods({name: self.method(rec) for name, (rec, _) in back.items()}, self.sides, self.trained,
                       {name: self.reference(rec) for name, (rec, _) in back.items() if self.reference(rec)})
