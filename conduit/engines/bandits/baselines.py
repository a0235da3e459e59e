"""Baseline policies, for benchmarks and comparison rather than production."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conduit.engines.bandits.base import Choice, FloatArray
from conduit.engines.bandits.ucb1 import UCB1Bandit
from conduit.errors import ConfigurationError

__all__ = ["AlwaysBestBandit", "AlwaysCheapestBandit", "OracleBandit", "RandomBandit"]


class RandomBandit(UCB1Bandit):
    """A uniformly random candidate (propensity ``1/K``); learns counts only for ``stats``."""

    name = "random"

    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        idx = self._candidates(candidates)
        index = int(self._rng.integers(idx.size))
        mean = self.means(idx)
        utility = quality_weight * mean - penalty
        return Choice(index, 1.0 / idx.size, utility, mean, np.zeros(idx.size))


class AlwaysBestBandit(UCB1Bandit):
    """Greedy: the best mean quality so far (untried models first), ignoring cost."""

    name = "always_best"

    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        idx = self._candidates(candidates)
        mean = self.means(idx)
        untried = self._stats["n"][idx] == 0
        utility = np.where(untried, np.inf, mean)
        index, propensity = self._argmax(utility)
        return Choice(index, propensity, utility, mean, np.zeros(idx.size))


class AlwaysCheapestBandit(UCB1Bandit):
    """The candidate with the lowest predicted cost, whatever its quality."""

    name = "always_cheapest"

    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        idx = self._candidates(candidates)
        share = cost_share if cost_share is not None else np.zeros(idx.size)
        utility = -share
        index, propensity = self._argmax(utility)
        mean = self.means(idx)
        return Choice(index, propensity, utility, mean, np.zeros(idx.size))


class OracleBandit(UCB1Bandit):
    """Knows every model's true outcome for the current query (replay only).

    The replay calls :meth:`reveal` with each model's logged quality before it
    routes; the oracle then picks the best true quality, the cheapest among ties.
    """

    name = "oracle"

    def __init__(self, *, prior_mean: float = 0.5, seed: int | None = None, dim: int = 1) -> None:
        super().__init__(prior_mean=prior_mean, seed=seed, dim=dim)
        self._truth: dict[str, float] | None = None

    def params(self) -> dict[str, Any]:
        params = super().params()
        del params["c"]  # the oracle does not explore
        return params

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

    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        idx = self._candidates(candidates)
        if self._truth is None:
            raise ConfigurationError("the oracle needs the true outcomes: it runs only in replay")
        missing = [self._arms[i] for i in idx if self._arms[i] not in self._truth]
        if missing:
            raise ConfigurationError(f"reveal() gave no true quality for {missing}")
        truth = np.array([self._truth[self._arms[i]] for i in idx], dtype=np.float64)
        share = cost_share if cost_share is not None else np.zeros(idx.size)
        utility = truth - 1e-6 * share
        index, propensity = self._argmax(utility)
        self._truth = None
        return Choice(index, propensity, utility, truth, np.zeros(idx.size))
