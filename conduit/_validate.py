"""One validator per kind of value, for constructor and function arguments.

Each returns the value converted (``int`` or ``float``) or raises ``error`` (a
:class:`~conduit.errors.ConduitError` subclass, :class:`ConfigurationError` by
default) with one message per kind. ``bool`` is never a number here, although
Python makes it an ``int``.

>>> integer("workers", 4, low=1)
4
>>> number("alpha", True, low=0.0, strict_low=True)
Traceback (most recent call last):
...
conduit.errors.ConfigurationError: alpha must be a positive number, got True
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from conduit.errors import ConduitError, ConfigurationError

__all__ = ["integer", "number", "positive"]


def _bounds(low: float | None, high: float | None, strict_low: bool, kind: str) -> str:
    if low is not None and high is not None:
        within = f"in {'(' if strict_low else '['}{low:g}, {high:g}]"
        return f"an int {within}" if kind == "an int" else within
    if high is None and (low, strict_low) == (0, True):
        return f"a positive {kind.split()[-1]}"
    if low is not None:
        return f"{kind} {'>' if strict_low else '>='} {low:g}"
    if high is not None:
        return f"{kind} <= {high:g}"
    return kind


def integer(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    error: type[ConduitError] = ConfigurationError,
) -> int:
    """``value`` as an ``int`` within ``[low, high]`` (either bound optional)."""
    whole = None if isinstance(value, bool) or not isinstance(value, Integral) else int(value)
    if whole is None or (low is not None and whole < low) or (high is not None and whole > high):
        raise error(f"{name} must be {_bounds(low, high, False, 'an int')}, got {value!r}")
    return whole


def number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
    allow_inf: bool = False,
    error: type[ConduitError] = ConfigurationError,
) -> float:
    """``value`` as a ``float`` within the bounds (``strict_low``: ``> low``); finite unless
    ``allow_inf`` (never NaN)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, Real)
        and (math.isfinite(value) or (allow_inf and math.isinf(value)))
    )
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (low is None or (number > low if strict_low else number >= low)) and (
            high is None or number <= high
        )
    if not ok:
        kind = _bounds(low, high, strict_low, "a number" if allow_inf else "a finite number")
        raise error(f"{name} must be {kind}, got {value!r}")
    return number


def positive(name: str, value: object, *, error: type[ConduitError] = ConfigurationError) -> float:
    """A finite number > 0."""
    return number(name, value, low=0.0, strict_low=True, error=error)
