"""Contextual Thompson sampling: Bayesian linear regression per model."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit.engines.bandits._base import Estimate, FloatArray
from conduit.engines.bandits._linear import DEFAULT_BIAS_RIDGE, DEFAULT_RIDGE, LinearPolicy

__all__ = ["ContextualThompsonBandit"]


class ContextualThompsonBandit(LinearPolicy):
    """Agrawal & Goyal (2013): ``theta ~ N(theta_hat, v^2 A^-1)`` per arm, pick the best draw.

    Only ``x . theta`` matters for the decision, and for one context it is
    normal with mean ``x . theta_hat`` and standard deviation
    ``v * sqrt(x^T A^-1 x)``, so the draw costs one product per arm rather
    than a ``d``-dimensional sample. Further draws estimate the propensity.
    """

    name = "contextual_thompson"

    def __init__(
        self,
        *,
        dim: int,
        v: float = 0.1,
        ridge: float = DEFAULT_RIDGE,
        bias_ridge: float = DEFAULT_BIAS_RIDGE,
        prior_mean: float = 0.5,
        propensity_samples: int = 256,
        refactor_every: int = 1000,
        seed: int | None = None,
    ) -> None:
        self.v = _validate.positive("v", v)
        self.propensity_samples = _validate.integer("propensity_samples", propensity_samples, low=1)
        super().__init__(
            dim=dim,
            ridge=ridge,
            bias_ridge=bias_ridge,
            prior_mean=prior_mean,
            refactor_every=refactor_every,
            seed=seed,
        )

    def params(self) -> dict[str, Any]:
        return {**super().params(), "v": self.v, "propensity_samples": self.propensity_samples}

    def posterior(self, arm: str, x: FloatArray) -> tuple[float, float]:
        """Mean and standard deviation of the sampled quality of ``arm`` at ``x``."""
        mean, width = self._mean_and_width(x, np.array([self.arm_index(arm)]))
        return float(mean[0]), float(self.v * width[0])

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        mean, width = self._mean_and_width(x, idx)
        z = self._rng.standard_normal((idx.size, self.propensity_samples + 1))
        return Estimate(mean, draws=mean[:, None] + self.v * width[:, None] * z)
