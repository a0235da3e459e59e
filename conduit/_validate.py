"""One validator per kind of value, for constructor and function arguments.

Each returns the value converted (``int`` or ``float``) or raises ``error`` (a
:class:`~conduit._errors.ConduitError` subclass, :class:`ConfigurationError` by
default) with one message per kind. ``bool`` is never a number here, although
Python makes it an ``int``.

>>> integer("workers", 4, low=1)
4
>>> number("alpha", True, low=0.0, strict_low=True)
Traceback (most recent call last):
...
conduit._errors.ConfigurationError: alpha must be a positive number, got True
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TypeGuard

from conduit._errors import ConduitError, ConfigurationError, InvalidFeedbackError

__all__ = ["integer", "is_number", "number", "outcome", "positive"]


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


def is_number(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number (``int``, ``float``, numpy's), not a ``bool``."""
    return isinstance(value, Real) and not isinstance(value, bool)


def integer(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    strict_low: bool = False,
    what: str | None = None,
    error: type[ConduitError] = ConfigurationError,
) -> int:
    """``value`` as an ``int`` within ``[low, high]`` (either bound optional; ``strict_low``:
    ``> low``). ``what`` replaces the message's description of the accepted values."""
    whole = None if isinstance(value, bool) or not isinstance(value, Integral) else int(value)
    if (
        whole is None
        or (low is not None and (whole <= low if strict_low else whole < low))
        or (high is not None and whole > high)
    ):
        kind = what or _bounds(low, high, strict_low, "an int")
        raise error(f"{name} must be {kind}, got {value!r}")
    return whole


def number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
    allow_inf: bool = False,
    what: str | None = None,
    error: type[ConduitError] = ConfigurationError,
) -> float:
    """``value`` as a ``float`` within the bounds (``strict_low``: ``> low``); finite unless
    ``allow_inf`` (never NaN). ``what`` replaces the message's description."""
    ok = is_number(value) and (math.isfinite(value) or (allow_inf and math.isinf(value)))
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (low is None or (number > low if strict_low else number >= low)) and (
            high is None or number <= high
        )
    if not ok:
        kind = what or _bounds(
            low, high, strict_low, "a number" if allow_inf else "a finite number"
        )
        raise error(f"{name} must be {kind}, got {value!r}")
    return number


def positive(name: str, value: object, *, error: type[ConduitError] = ConfigurationError) -> float:
    """A finite number > 0."""
    return number(name, value, low=0.0, strict_low=True, error=error)


def outcome(name: str, value: object, upper: float, *, bounded: bool = False) -> float:
    """A measured quality, cost or latency: a finite number in [0, ``upper``], else
    :class:`~conduit._errors.InvalidFeedbackError` (``bounded``: its message gives the range).

    >>> outcome("cost", -1, 1000.0)
    Traceback (most recent call last):
    ...
    conduit._errors.InvalidFeedbackError: cost must be >= 0, got -1.0
    """
    if not is_number(value):
        raise InvalidFeedbackError(f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range (2**1024): no outcome is that large
        raise InvalidFeedbackError(f"{name} must be at most {upper:g}, got {value}") from None
    if not math.isfinite(number):
        raise InvalidFeedbackError(f"{name} must be finite, got {number}")
    if bounded and not 0 <= number <= upper:
        raise InvalidFeedbackError(f"{name} must be [0, {upper:g}], got {number}")
    if number < 0:
        raise InvalidFeedbackError(f"{name} must be >= 0, got {number}")
    if number > upper:
        raise InvalidFeedbackError(f"{name} must be at most {upper:g}, got {number}")
    return number
