"""How quality, cost and latency become one score per candidate, and how sure a pick is.

Pure numpy functions, no state: the router and every policy score candidates
with these, so the formula exists once.

    utility = quality_weight * (mean + exploration) - cost_weight * cost_share
              - latency_weight * latency_share

``cost_share`` and ``latency_share`` are each candidate's predicted cost and
latency as a fraction of the largest known one (:func:`shares`). A sampling
policy (Thompson) puts a posterior draw of quality where the mean and the
exploration bonus go.

>>> import numpy as np
>>> share = shares(np.array([0.002, 0.001, np.nan]))
>>> share.tolist()
[1.0, 0.5, 0.0]
>>> cost = penalty(share, np.zeros(3), cost_weight=0.5, latency_weight=0.1)
>>> utility(np.array([0.9, 0.8, 0.5]), cost, quality_weight=1.0).round(2).tolist()
[0.4, 0.55, 0.5]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "TIE_TOLERANCE",
    "argmax",
    "confidence",
    "penalty",
    "sampled_argmax",
    "shares",
    "utility",
]

FloatArray = NDArray[np.float64]

#: Utilities closer than this to the best one count as ties.
TIE_TOLERANCE = 1e-12


def shares(values: FloatArray) -> FloatArray:
    """Each value as a fraction of the largest known one.

    An unknown value (NaN: no price and nothing observed yet) counts as free:
    optimism in the face of uncertainty, so an untried model is tried once and
    its cost learned, rather than assumed as dear as the dearest and never tried.
    """
    known = np.isfinite(values)
    if not known.any():
        return np.zeros_like(values)
    top = float(values[known].max())
    if top <= 0:
        return np.zeros_like(values)
    return np.where(known, values / top, 0.0)


def penalty(
    cost_share: FloatArray,
    latency_share: FloatArray,
    *,
    cost_weight: float,
    latency_weight: float,
) -> FloatArray:
    """The cost and latency term of the utility, per candidate."""
    return cost_weight * cost_share + latency_weight * latency_share


def utility(quality: FloatArray, penalty: FloatArray, *, quality_weight: float) -> FloatArray:
    """``quality_weight * quality - penalty``; ``quality`` is the mean plus exploration, or a
    posterior draw (a ``(K, S)`` array of draws takes a ``(K, 1)`` penalty)."""
    return quality_weight * quality - penalty


def argmax(utility: FloatArray, rng: np.random.Generator) -> tuple[int, float]:
    """The best utility and its propensity; ties broken uniformly at random (``1/ties``)."""
    best = np.flatnonzero(utility >= utility.max() - TIE_TOLERANCE)
    if best.size == 1:
        return int(best[0]), 1.0
    return int(rng.choice(best)), 1.0 / best.size


def sampled_argmax(utilities: FloatArray) -> tuple[int, float]:
    """Column 0 of ``(K, 1 + S)`` sampled utilities decides; the propensity of that pick is
    the share of the ``1 + S`` columns in which the same candidate wins."""
    index = int(np.argmax(utilities[:, 0]))
    return index, float(np.mean(np.argmax(utilities, axis=0) == index))


def confidence(
    utility: FloatArray, deviation: FloatArray, index: int, rng: np.random.Generator
) -> float:
    """Probability that candidate ``index`` is truly the best: each utility is taken as
    normal around its value less ``deviation`` (exploration or sampled noise), with
    ``|deviation|`` as its spread (64 draws)."""
    if utility.size == 1:
        return 1.0
    centre = utility - deviation
    spread = np.minimum(np.maximum(np.abs(deviation), 1e-9), 10.0)
    draws = centre[:, None] + spread[:, None] * rng.standard_normal((utility.size, 64))
    return float(np.mean(np.argmax(draws, axis=0) == index))
