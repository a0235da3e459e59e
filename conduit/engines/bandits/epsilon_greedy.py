"""Epsilon-greedy: exploit the best mean, explore uniformly with probability epsilon."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from conduit.engines.bandits.base import Choice, FloatArray
from conduit.engines.bandits.ucb1 import UCB1Bandit
from conduit.errors import ConfigurationError

__all__ = ["EpsilonGreedyBandit"]


class EpsilonGreedyBandit(UCB1Bandit):
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
        if not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon <= 1.0:
            raise ConfigurationError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)
        super().__init__(c=1.0, prior_mean=prior_mean, seed=seed, dim=dim)

    def params(self) -> dict[str, Any]:
        params = super().params()
        del params["c"]
        return {**params, "epsilon": self.epsilon}

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
        utility = quality_weight * mean - penalty
        best = np.flatnonzero(utility >= utility.max() - 1e-12)
        k = idx.size
        if self._rng.random() < self.epsilon:
            index = int(self._rng.integers(k))
        else:
            index = int(self._rng.choice(best))
        propensity = self.epsilon / k + ((1.0 - self.epsilon) / best.size if index in best else 0.0)
        return Choice(index, propensity, utility, mean, np.zeros(k))
