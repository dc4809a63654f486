"""One colour per recovery method, the same in every figure (the figures of rule ``figures`` and the attention analysis)."""

from __future__ import annotations

import zlib

from ..runs import BASE

# Colours by position in the recovery registry (so fixed per method name), "none" grey;
# a method outside the registry gets one of the remaining colours by a hash of its name.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
NONE_COLOUR = "#555555"


def method_colour(method: str) -> str:
    """The colour of a recovery method in every figure."""
    from . import RECOVERY

    if method == BASE:
        return NONE_COLOUR
    names = [n for n in RECOVERY.names() if n != BASE]
    if method in names:
        return PALETTE[names.index(method) % len(PALETTE)]
    spare = PALETTE[len(names):] or PALETTE
    return spare[zlib.crc32(method.encode()) % len(spare)]
