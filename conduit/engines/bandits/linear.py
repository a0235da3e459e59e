"""Ridge regression per arm, shared by LinUCB and contextual Thompson sampling.

Statistics per arm (all additive): ``A = sum x x^T``, ``b = sum x (r - prior_mean)``
and the count ``n``. The estimate is ``prior_mean + x . theta`` with
``theta = (ridge I + A)^-1 b``: a neutral prior mean, not zero, so a learner that
explores little does not lock onto the first model that happened to do well.

The inverses of all arms are stacked in one ``(K, d, d)`` array, updated by
Sherman-Morrison in O(d^2) per feedback and re-factorised from ``A`` every
``refactor_every`` updates of an arm, so rounding never accumulates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit.engines.bandits.base import Bandit, FloatArray, check_positive

__all__ = ["LinearBandit"]


class LinearBandit(Bandit):
    """Stacked per-arm ridge regression; subclasses add the exploration rule."""

    contextual = True

    def __init__(
        self,
        *,
        dim: int,
        ridge: float = 1.0,
        prior_mean: float = 0.5,
        refactor_every: int = 1000,
        seed: int | None = None,
    ) -> None:
        self.ridge = check_positive("ridge", ridge)
        self.refactor_every = int(check_positive("refactor_every", refactor_every))
        super().__init__(dim=dim, prior_mean=prior_mean, seed=seed)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "ridge": self.ridge, "refactor_every": self.refactor_every}

    def _zero_stats(self) -> dict[str, FloatArray]:
        d = self.dim
        return {"A": np.zeros((d, d)), "b": np.zeros(d), "n": np.zeros(())}

    def _rebuild(self) -> None:
        A = self._stats["A"]
        k, d = A.shape[0], self.dim
        self._since_refactor = np.zeros(k, dtype=np.int64)
        if k == 0:
            self._Ainv = np.zeros((0, d, d))
            self._theta = np.zeros((0, d))
            return
        regularised = A + self.ridge * np.eye(d)
        self._Ainv = np.linalg.inv(regularised)
        self._Ainv = 0.5 * (self._Ainv + np.swapaxes(self._Ainv, 1, 2))
        self._theta = np.einsum("kij,kj->ki", self._Ainv, self._stats["b"])

    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        stats = self._stats
        stats["A"][i] += np.outer(x, x)
        stats["b"][i] += x * (reward - self.prior_mean)
        stats["n"][i] += 1.0
        self._since_refactor[i] += 1
        if self._since_refactor[i] >= self.refactor_every:
            Ainv = np.linalg.inv(stats["A"][i] + self.ridge * np.eye(self.dim))
            self._Ainv[i] = 0.5 * (Ainv + Ainv.T)
            self._since_refactor[i] = 0
        else:
            Ainv = self._Ainv[i]
            v = Ainv @ x
            Ainv -= np.outer(v, v) / (1.0 + x @ v)
        self._theta[i] = self._Ainv[i] @ stats["b"][i]

    def _mean_and_width(
        self, x: FloatArray, idx: NDArray[np.intp]
    ) -> tuple[FloatArray, FloatArray]:
        """Ridge estimate and ``sqrt(x^T A^-1 x)`` for arms ``idx``, in one product each."""
        mean = self.prior_mean + self._theta[idx] @ x
        v = self._Ainv[idx] @ x
        width = np.sqrt(np.maximum(v @ x, 0.0))
        return mean, width

    def coefficients(self, arm: str) -> FloatArray:
        """The ridge solution ``theta`` of one arm (prediction is ``prior_mean + x . theta``)."""
        return self._theta[self.arm_index(arm)].copy()
