"""Counts and quality sums per model: the statistics of every non-contextual mean learner."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from conduit.engines.bandits._base import Estimate, FloatArray, Policy

__all__ = ["MeanPolicy"]


class MeanPolicy(Policy):
    """Learns ``n`` and ``total`` per arm; the mean starts from ``prior_mean`` as one
    pseudo-observation, so one lucky first reward does not dominate."""

    def _rows(self) -> dict[str, tuple[int, ...]]:
        return {"n": (), "total": ()}

    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        self._stats["n"][i] += 1.0
        self._stats["total"][i] += reward

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        """The mean alone: what a policy that does not explore by an index ranks by."""
        return Estimate(self.means(idx))

    def means(self, idx: NDArray[np.intp]) -> FloatArray:
        n = self._stats["n"][idx]
        return (self._stats["total"][idx] + self.prior_mean) / (n + 1.0)
