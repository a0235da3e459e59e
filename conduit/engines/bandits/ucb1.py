"""UCB1: the mean quality of each model plus a logarithmic exploration bonus."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit.engines.bandits.base import Bandit, FloatArray, check_positive

__all__ = ["UCB1Bandit"]


class UCB1Bandit(Bandit):
    """Auer et al. (2002): index ``mean + c * sqrt(2 ln N / n)``; untried arms first.

    The mean starts from ``prior_mean`` as one pseudo-observation, so one lucky
    first reward does not dominate.

    >>> b = UCB1Bandit(seed=0)
    >>> b.add_arm("a"); b.add_arm("b")
    >>> import numpy as np
    >>> b.update("a", np.ones(1), 1.0)
    >>> b.arms[b.choose(np.ones(1), [0, 1], np.zeros(2)).index]  # b is untried
    'b'
    """

    name = "ucb1"

    def __init__(
        self, *, c: float = 0.5, prior_mean: float = 0.5, seed: int | None = None, dim: int = 1
    ) -> None:
        self.c = check_positive("c", c)
        super().__init__(dim=dim, prior_mean=prior_mean, seed=seed)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "c": self.c}

    def _zero_stats(self) -> dict[str, FloatArray]:
        return {"n": np.zeros(()), "total": np.zeros(())}

    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        self._stats["n"][i] += 1.0
        self._stats["total"][i] += reward

    def means(self, idx: NDArray[np.intp]) -> FloatArray:
        n = self._stats["n"][idx]
        return (self._stats["total"][idx] + self.prior_mean) / (n + 1.0)

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        n = self._stats["n"][idx]
        total_pulls = float(self._stats["n"].sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(2.0 * np.log(max(total_pulls, 1.0)) / n)
        bonus = np.where(n == 0, 1e6, bonus)
        return self.means(idx), bonus
