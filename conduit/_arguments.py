"""The argparse ``type=`` converters every ``conduit`` command shares (one per kind of value).

>>> positive_int("3"), port("8080"), fraction("0.25")
(3, 8080, 0.25)
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be at least 1, got 0
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "cost_weight",
    "fraction",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_fraction",
    "positive_int",
]


T = TypeVar("T")


def _parse(text: str, convert: Callable[[str], T], what: str) -> T:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _parse(text, int, what)
        if value < low:
            bound = "at least 1" if low == 1 else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _number_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _parse(text, float, "a number")
        if not low <= value <= high:  # also rejects nan
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")
cost_weight = _number_in(0.0, 100.0)
fraction = _number_in(0.0, 1.0)


def port(text: str) -> int:
    value = _parse(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _parse(text, float, "a number")
    if not (value > 0 and math.isfinite(value)):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_fraction(text: str) -> float:
    """A share in (0, 1]: a budget or a quality floor (zero would mean nothing at all)."""
    value = positive_float(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value
