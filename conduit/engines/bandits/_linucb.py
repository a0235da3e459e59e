"""LinUCB: ridge regression per model plus an upper-confidence bonus."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit.engines.bandits._base import Estimate, FloatArray
from conduit.engines.bandits._linear import DEFAULT_BIAS_RIDGE, DEFAULT_RIDGE, LinearPolicy

__all__ = ["LinUCBBandit"]


class LinUCBBandit(LinearPolicy):
    """Optimism in the face of uncertainty over a linear quality model (Li et al., 2010).

    The index of an arm is ``prior_mean + x . theta + alpha * sqrt(x^T A^-1 x)``.

    >>> import numpy as np
    >>> b = LinUCBBandit(dim=2, seed=0)
    >>> for arm in ("a", "b"):
    ...     b.add_arm(arm)
    >>> x = np.array([1.0, 0.0])
    >>> for _ in range(20):
    ...     b.update("a", x, 1.0)
    ...     b.update("b", x, 0.0)
    >>> b.arms[b.choose(x, [0, 1], np.zeros(2)).index]
    'a'
    """

    name = "linucb"

    def __init__(
        self,
        *,
        dim: int,
        alpha: float = 0.2,
        ridge: float = DEFAULT_RIDGE,
        bias_ridge: float = DEFAULT_BIAS_RIDGE,
        prior_mean: float = 0.5,
        refactor_every: int = 1000,
        seed: int | None = None,
    ) -> None:
        self.alpha = _validate.positive("alpha", alpha)
        super().__init__(
            dim=dim,
            ridge=ridge,
            bias_ridge=bias_ridge,
            prior_mean=prior_mean,
            refactor_every=refactor_every,
            seed=seed,
        )

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha}

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        mean, width = self._mean_and_width(x, idx)
        return Estimate(mean, exploration=self.alpha * width)
