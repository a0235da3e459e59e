"""UCB1: the mean quality of each model plus a logarithmic exploration bonus."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit.engines.bandits._base import Estimate, FloatArray
from conduit.engines.bandits._mean import MeanPolicy

__all__ = ["UCB1Bandit"]


class UCB1Bandit(MeanPolicy):
    """Auer et al. (2002): index ``mean + c * sqrt(2 ln N / n)``; untried arms first.

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
        self.c = _validate.positive("c", c)
        super().__init__(dim=dim, prior_mean=prior_mean, seed=seed)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "c": self.c}

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        n = self._stats["n"][idx]
        total_pulls = float(self._stats["n"].sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(2.0 * np.log(max(total_pulls, 1.0)) / n)
        return Estimate(self.means(idx), exploration=np.where(n == 0, 1e6, bonus))
