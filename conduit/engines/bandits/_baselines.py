"""Baseline policies, for benchmarks and comparison rather than production.

They learn counts and mean quality (for ``stats``) like every mean learner, and
take no parameters beyond the common ones: none of them explores by an index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from conduit._errors import ConfigurationError
from conduit.engines.bandits._base import Estimate, FloatArray
from conduit.engines.bandits._mean import MeanPolicy

__all__ = ["AlwaysBestBandit", "AlwaysCheapestBandit", "OracleBandit", "RandomBandit"]


def _known_share(cost_share: FloatArray | None, size: int) -> FloatArray:
    """The candidates' cost shares, or zeros when the router gave none."""
    return cost_share if cost_share is not None else np.zeros(size)


class RandomBandit(MeanPolicy):
    """A uniformly random candidate (propensity ``1/K``)."""

    name = "random"

    def _pick(self, utility: FloatArray) -> tuple[int, float]:
        return int(self._rng.integers(utility.size)), 1.0 / utility.size


class AlwaysBestBandit(MeanPolicy):
    """Greedy: the best mean quality so far (untried models first), ignoring cost."""

    name = "always_best"

    def _utility(
        self,
        idx: NDArray[np.intp],
        estimate: Estimate,
        penalty: FloatArray,
        quality_weight: float,
        cost_share: FloatArray | None,
    ) -> FloatArray:
        return np.where(self._stats["n"][idx] == 0, np.inf, estimate.mean)


class AlwaysCheapestBandit(MeanPolicy):
    """The candidate with the lowest predicted cost, whatever its quality."""

    name = "always_cheapest"

    def _utility(
        self,
        idx: NDArray[np.intp],
        estimate: Estimate,
        penalty: FloatArray,
        quality_weight: float,
        cost_share: FloatArray | None,
    ) -> FloatArray:
        return -_known_share(cost_share, estimate.mean.size)


class OracleBandit(MeanPolicy):
    """Knows every model's true outcome for the current query (replay only).

    The replay calls :meth:`reveal` with each model's logged quality before it
    routes; the oracle then picks the best true quality, the cheapest among ties.
    """

    name = "oracle"

    def __init__(self, *, prior_mean: float = 0.5, seed: int | None = None, dim: int = 1) -> None:
        super().__init__(prior_mean=prior_mean, seed=seed, dim=dim)
        self._truth: dict[str, float] | None = None

    def reveal(self, quality: Mapping[str, float]) -> None:
        """The true quality of each model for the next query (used by one :meth:`choose`)."""
        truth = dict(quality)
        for arm, value in truth.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ConfigurationError(f"true quality of {arm!r} must be a finite number")
        self._truth = truth

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        truth, self._truth = self._truth, None
        if truth is None:
            raise ConfigurationError("the oracle needs the true outcomes: it runs only in replay")
        arms = self.arms
        missing = [arms[i] for i in idx if arms[i] not in truth]
        if missing:
            self._truth = truth
            raise ConfigurationError(f"reveal() gave no true quality for {missing}")
        return Estimate(np.array([truth[arms[i]] for i in idx], dtype=np.float64))

    def _utility(
        self,
        idx: NDArray[np.intp],
        estimate: Estimate,
        penalty: FloatArray,
        quality_weight: float,
        cost_share: FloatArray | None,
    ) -> FloatArray:
        return estimate.mean - 1e-6 * _known_share(cost_share, estimate.mean.size)
