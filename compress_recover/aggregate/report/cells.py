"""A table cell's text: numbers, "n/a" and why a value is undefined, intervals, mean ± sd.

Every function here returns plain text (the templates escape it). No value is left as a
bare dash: a missing one says why (:data:`NO_DAMAGE` for a recovery fraction where
compression lost nothing, :data:`NO_CONTROL`, :func:`compress_recover.failures.shown` for
a run whose recovery training failed), and :data:`UNDEFINED` ("n/a") where no reason is known.
"""

from __future__ import annotations

import math

NO_DAMAGE = "undefined (no damage)"  # a recovery fraction where compression lost nothing
NO_CONTROL = "n/a (no control run)"  # a control gain where the uncompressed model was not recovered
UNDEFINED = "n/a"  # any other missing value


def number(v):
    """A float from a value that may be a JSON stand-in for an infinity ("inf") or null."""
    if v is None:
        return float("nan")
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    return v


def isnan(v) -> bool:
    v = number(v)
    return isinstance(v, float) and math.isnan(v)


def fmt(v, floatfmt: str = "{:.3f}") -> str:
    """A cell's text: a number in ``floatfmt``, "n/a" for a NaN (callers that know why a value
    is missing say it instead, :func:`or_why`), ∞ for an infinity, else the value as text."""
    v = number(v)
    if isinstance(v, float):
        if math.isnan(v):
            return UNDEFINED
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return floatfmt.format(v)
    return str(v)


def or_why(v, why: str, floatfmt: str = "{:.2f}") -> str:
    """``v`` formatted, or ``why`` it is missing where it is NaN."""
    return why if isnan(v) else fmt(v, floatfmt)


def why_undefined(base_acc, compressed_acc, has_control: bool = True) -> str:
    """Why a recovery fraction of a model with these accuracies is NaN: no damage to recover
    (the fraction's denominator), no control run (a control-subtracted fraction), else n/a."""
    if number(base_acc) - number(compressed_acc) <= 0:
        return NO_DAMAGE
    return UNDEFINED if has_control else NO_CONTROL


def p_value(v) -> str:
    """A p-value: a bootstrap one is (k + 1) / (B + 1), never 0; a t tail below float
    precision is shown as "< 1e-300", never as a p of exactly 0."""
    v = number(v)
    return "< 1e-300" if isinstance(v, float) and v == 0 else fmt(v, "{:.3g}")


def bracket(low, high, floatfmt: str = "{:.2f}") -> str:
    """"[low, high]"."""
    return f"[{fmt(low, floatfmt)}, {fmt(high, floatfmt)}]"


def interval_or_why(low, high, why: str) -> str:
    """"[low, high]", or ``why`` the interval is missing where both ends are NaN."""
    return why if isnan(low) and isnan(high) else bracket(low, high)


def with_interval(points, lows, highs, floatfmt: str = "{:.3f}", whys=None) -> list[str]:
    """"point [low, high]" per row of three columns; a NaN point shows its row's ``whys``
    (default n/a), without the interval when that is NaN too."""
    whys = whys or [UNDEFINED] * len(points)
    return [or_why(p, why, floatfmt) + ("" if isnan(lo) and isnan(hi) else f" {bracket(lo, hi, floatfmt)}")
            for p, lo, hi, why in zip(points, lows, highs, whys, strict=True)]


def pm(mean, sd, floatfmt: str = "{:.3f}", why: str = UNDEFINED) -> str:
    """"mean ± sd" (just the mean with one seed); ``why`` where the mean is NaN."""
    if isnan(mean):
        return why
    sd = number(sd)
    return fmt(mean, floatfmt) + ("" if isnan(sd) else f" ± {fmt(sd, floatfmt)}")


def counts(values, floatfmt: str = "{:,.0f}") -> list[str]:
    """Counts as text with thousands separators (a NaN: n/a)."""
    return [fmt(float(v), floatfmt) for v in values]


def base_label(model: str, precisions: dict[str, str]) -> str:
    """"base (<precision>)" for ``model``, or plain "base" where the summary states none."""
    precision = precisions.get(model)
    return f"base ({precision})" if precision else "base"


def table(frame, floatfmt: str = "{:.3f}") -> dict:
    """A frame as a template's table: ``head`` (the column names) and ``rows`` of cell texts (:func:`fmt`)."""
    return {"head": [str(c) for c in frame.columns],
            "rows": [[fmt(v, floatfmt) for v in row] for row in frame.itertuples(index=False)]}
