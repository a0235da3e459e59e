"""Pure metrics of a replay: baselines on the logged outcomes and RouteLLM's PGR, APGR, CPT.

Quality and cost arrive as ``(queries, models)`` arrays; an unknown cost is NaN
and is left out of every cost mean (never counted as zero).

PGR, APGR and CPT follow RouteLLM (Ong et al., ICLR 2025) for a log of two
models, a strong one and a weak one: a router's point is ``(strong share, PGR)``,
where the strong share is the fraction of queries it sent to the strong model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit._errors import ValidationError
from conduit.engines.bandits._base import FloatArray

__all__ = [
    "apgr",
    "cpt",
    "mean_cost",
    "oracle_choices",
    "pgr",
    "pgr_curve",
    "windowed_mean",
]


def pgr(q: float, q_weak: float, q_strong: float) -> float:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong one's.

    >>> pgr(0.75, q_weak=0.5, q_strong=1.0)
    0.5
    >>> pgr(1.0, q_weak=0.5, q_strong=0.9) > 1  # better than the strong model alone
    True
    """
    gap = q_strong - q_weak
    if not math.isfinite(gap) or gap == 0:
        raise ValidationError(
            f"PGR needs two models of different quality, got weak {q_weak} and strong {q_strong}"
        )
    return (q - q_weak) / gap


def pgr_curve(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ``(strong share, PGR)`` points with the anchors (0, 0) and (1, 1), sorted by share.

    Sending no query to the strong model recovers nothing; sending all of them
    recovers everything, whatever the router.

    >>> pgr_curve([(0.5, 0.7)])
    [(0.0, 0.0), (0.5, 0.7), (1.0, 1.0)]
    """
    curve: list[tuple[float, float]] = [(0.0, 0.0), (1.0, 1.0)]
    for share, value in points:
        share, value = float(share), float(value)
        if not (math.isfinite(share) and 0.0 <= share <= 1.0) or not math.isfinite(value):
            raise ValidationError(
                f"a PGR point must be (share in [0, 1], finite PGR), got ({share}, {value})"
            )
        curve.append((share, value))
    return sorted(curve)


def apgr(points: Iterable[tuple[float, float]]) -> float:
    """Area under PGR as a function of strong share on [0, 1] (trapezoids, anchors added).

    Random routing recovers exactly the share it pays for, so its APGR is 0.5:

    >>> round(apgr([(s, s) for s in (0.1, 0.3, 0.6)]), 12)
    0.5
    >>> round(apgr([(0.2, 0.8)]), 12)  # 0.2 * 0.8 / 2 + 0.8 * (0.8 + 1) / 2
    0.8
    """
    curve = pgr_curve(points)
    area = 0.0
    for (s0, p0), (s1, p1) in itertools.pairwise(curve):
        area += (s1 - s0) * (p0 + p1) / 2.0
    return area


def cpt(points: Iterable[tuple[float, float]], x: float) -> float:
    """Smallest strong share at which the (linearly interpolated) PGR reaches ``x``.

    ``cpt(points, 0.5)`` is RouteLLM's CPT(50%). The anchor (1, 1) makes any
    ``x`` in [0, 1] reachable.

    >>> round(cpt([(0.2, 0.6)], 0.5), 12)  # on the segment (0, 0) -> (0.2, 0.6)
    0.166666666667
    >>> round(cpt([(0.2, 0.6)], 0.8), 12)  # on the segment (0.2, 0.6) -> (1, 1)
    0.6
    """
    _validate.number("CPT's PGR level", x, low=0.0, high=1.0, error=ValidationError)
    curve = pgr_curve(points)
    for (s0, p0), (s1, p1) in itertools.pairwise(curve):
        if p0 >= x:
            return s0
        if p1 >= x:
            return s0 + (x - p0) / (p1 - p0) * (s1 - s0)
    return 1.0  # unreachable: the last anchor is (1, 1)


def oracle_choices(quality: FloatArray, cost: FloatArray) -> NDArray[np.intp]:
    """Per query, the model of best quality; among ties the cheapest (unknown cost last).

    >>> q = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    >>> c = np.array([[3.0, 1.0, 0.1], [0.1, np.nan, 2.0]])
    >>> oracle_choices(q, c).tolist()
    [1, 2]
    """
    best = quality == quality.max(axis=1, keepdims=True)
    finite_cost = np.where(np.isnan(cost), np.finfo(np.float64).max, cost)
    choices: NDArray[np.intp] = np.argmin(np.where(best, finite_cost, np.inf), axis=1)
    return choices


def mean_cost(costs: FloatArray) -> float | None:
    """Mean of the known (non-NaN) costs; None when none is known.

    >>> mean_cost(np.array([1.0, np.nan, 3.0]))
    2.0
    >>> mean_cost(np.array([np.nan])) is None
    True
    """
    known = costs[~np.isnan(costs)]
    return float(known.mean()) if known.size else None


def windowed_mean(values: Sequence[float] | FloatArray, window: int) -> FloatArray:
    """Trailing mean over the last ``window`` values at every step, skipping NaN.

    Fewer values are averaged before the first full window; a window with no
    known value is NaN.

    >>> windowed_mean([1.0, 0.0, np.nan, 1.0], window=2).tolist()
    [1.0, 0.5, 0.0, 1.0]
    """
    _validate.integer("window", window, low=0, strict_low=True, error=ValidationError)
    v = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, v, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known)])
    end = np.arange(1, v.size + 1)
    start = np.maximum(end - window, 0)
    n = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        means: FloatArray = np.where(n > 0, (sums[end] - sums[start]) / np.maximum(n, 1), np.nan)
    return means
