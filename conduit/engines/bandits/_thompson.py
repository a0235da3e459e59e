"""Thompson sampling with a Beta posterior per model (quality in [0, 1])."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit._errors import ConfigurationError
from conduit.engines.bandits._base import Estimate, FloatArray, Policy

__all__ = ["ThompsonBandit"]


class ThompsonBandit(Policy):
    """Beta-Bernoulli Thompson sampling; a fractional quality q counts as q successes.

    The prior is ``Beta(s * prior_mean, s * (1 - prior_mean))`` with strength
    ``s = prior_strength``. The propensity of each decision is estimated from
    ``propensity_samples`` further posterior draws.

    >>> import numpy as np
    >>> b = ThompsonBandit(seed=0)
    >>> b.add_arm("a")
    >>> b.update("a", np.ones(1), 1.0)
    >>> b.posterior("a")
    (2.0, 1.0)
    """

    name = "thompson"

    def __init__(
        self,
        *,
        prior_mean: float = 0.5,
        prior_strength: float = 2.0,
        propensity_samples: int = 256,
        seed: int | None = None,
        dim: int = 1,
    ) -> None:
        self.prior_strength = _validate.positive("prior_strength", prior_strength)
        self.propensity_samples = _validate.integer("propensity_samples", propensity_samples, low=1)
        super().__init__(dim=dim, prior_mean=prior_mean, seed=seed)
        if not 0.0 < self.prior_mean < 1.0:  # Beta(0, b) and Beta(a, 0) cannot be sampled
            raise ConfigurationError(
                f"thompson needs prior_mean strictly between 0 and 1, got {prior_mean!r}"
            )

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "prior_strength": self.prior_strength,
            "propensity_samples": self.propensity_samples,
        }

    def _rows(self) -> dict[str, tuple[int, ...]]:
        return {"n": (), "successes": (), "failures": ()}

    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        self._stats["n"][i] += 1.0
        self._stats["successes"][i] += reward
        self._stats["failures"][i] += 1.0 - reward

    def _beta(self, idx: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        a0 = self.prior_strength * self.prior_mean
        b0 = self.prior_strength * (1.0 - self.prior_mean)
        return self._stats["successes"][idx] + a0, self._stats["failures"][idx] + b0

    def posterior(self, arm: str) -> tuple[float, float]:
        """The Beta posterior's two parameters for one arm."""
        a, b = self._beta(np.array([self.arm_index(arm)]))
        return float(a[0]), float(b[0])

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        a, b = self._beta(idx)
        # +1 draw: column 0 decides, the rest estimate the propensity of that decision.
        draws = self._rng.beta(a[:, None], b[:, None], size=(idx.size, self.propensity_samples + 1))
        return Estimate(a / (a + b), draws=draws)
