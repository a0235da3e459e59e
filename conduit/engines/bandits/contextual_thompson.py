"""Contextual Thompson sampling: Bayesian linear regression per model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from conduit.engines.bandits.base import Choice, FloatArray, check_positive
from conduit.engines.bandits.linear import DEFAULT_BIAS_RIDGE, DEFAULT_RIDGE, LinearBandit

__all__ = ["ContextualThompsonBandit"]


class ContextualThompsonBandit(LinearBandit):
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
        self.v = check_positive("v", v)
        self.propensity_samples = int(check_positive("propensity_samples", propensity_samples))
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
        mean, width = self._mean_and_width(x, idx)
        z = self._rng.standard_normal((idx.size, self.propensity_samples + 1))
        draws = mean[:, None] + self.v * width[:, None] * z
        utilities = quality_weight * draws - penalty[:, None]
        index = int(np.argmax(utilities[:, 0]))
        propensity = float(np.mean(np.argmax(utilities, axis=0) == index))
        return Choice(index, propensity, utilities[:, 0], mean, draws[:, 0] - mean)
