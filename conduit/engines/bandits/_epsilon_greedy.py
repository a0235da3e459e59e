"""Epsilon-greedy: exploit the best mean, explore uniformly with probability epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from conduit import _reward as reward
from conduit import _validate
from conduit.engines.bandits._base import FloatArray
from conduit.engines.bandits._mean import MeanPolicy

__all__ = ["EpsilonGreedyBandit"]


class EpsilonGreedyBandit(MeanPolicy):
    """With probability ``epsilon`` a uniformly random candidate, else the best mean utility.

    The propensity is exact: ``(1 - epsilon) / ties + epsilon / K`` for a best
    arm, ``epsilon / K`` for any other.
    """

    name = "epsilon_greedy"

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        prior_mean: float = 0.5,
        seed: int | None = None,
        dim: int = 1,
    ) -> None:
        self.epsilon = _validate.number("epsilon", epsilon, low=0.0, high=1.0)
        super().__init__(prior_mean=prior_mean, seed=seed, dim=dim)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "epsilon": self.epsilon}

    def _pick(self, utility: FloatArray) -> tuple[int, float]:
        best = np.flatnonzero(utility >= utility.max() - reward.TIE_TOLERANCE)
        k = utility.size
        if self._rng.random() < self.epsilon:
            index = int(self._rng.integers(k))
        else:
            index = int(self._rng.choice(best))
        propensity = self.epsilon / k + ((1.0 - self.epsilon) / best.size if index in best else 0.0)
        return index, propensity
