"""Thompson sampling on per-cluster quality, shrunk to each model's mean (empirical Bayes).

Queries of the same kind are pooled: features are grouped online into at most
``clusters`` clusters (a query joins the nearest centroid by cosine similarity,
or opens a free cluster when none is within ``threshold``). Per model and
cluster the policy keeps a count and a reward sum, so a model's quality on a
kind of query is learned from every query of that kind, not fitted per query.

The estimate of model ``a`` in cluster ``c`` is shrunk towards a prior that
shares what other models saw:

* ``mu_a``: the model's mean over all clusters (``prior_strength`` pseudo-counts
  at ``prior_mean``);
* ``delta_c``: how much harder or easier cluster ``c`` is than average, pooled
  over *every* model (a query kind that one model fails is hard for all);
* ``tau_c``: how many of its own observations the cluster needs before it
  outweighs ``mu_a + delta_c``; estimated from the data (method of moments on
  how far models' cluster means spread around their priors, beyond sampling
  noise). Where models rank alike in a cluster it is large (the cluster follows
  the global ranking and costs no extra exploration); where they do not (one
  model good at code, another bad) it is small, and the cluster learns its own
  best model from a few dozen queries.

The decision ranks Gaussian draws around the posterior means, their spread
scaled by ``scale`` (below 1: less exploration among near-equal models, which
a log of a few thousand 0/1 outcomes cannot tell apart anyway). For the first
``warmup`` feedbacks it decides by UCB1 on the models' overall means instead (as
the hybrid's first phase does): every model is tried and none is dropped on a few
unlucky answers before the clusters have anything to say. The phase is derived
from the learned counts, so it needs no state of its own.

Measured (``benchmarks/bench_model7.py``, ``bench_replay.py --variants --algorithm``): on
model7-mixed it beats ``hybrid`` on most variants (pooling spends less exploration on
near-equal models), on RouterBench it is level, and on RouteLLM MMLU, where the signal
is per query rather than per kind of query, its cost-quality sweep is worse (APGR 0.53
against 0.58). So it is an option, not the default.

Statistics per arm are additive (counts, reward sums and the sums of the
queries' unit feature vectors per cluster): merging replicas adds them. A
cluster's centroid is the sum over arms, so replicas that opened different
clusters in the same slot merge them into one; the policy stays valid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit import _validate
from conduit._errors import ConfigurationError
from conduit.engines.bandits._base import Estimate, FloatArray, Policy

__all__ = ["ClusterThompsonBandit"]

#: Pseudo-count of the pooled cluster offset ``delta_c`` (towards no offset).
OFFSET_STRENGTH = 10.0
#: Prior of the between-model spread of cluster effects (variance), and its weight
#: in observations: a cluster departs from the global ranking only on evidence.
SPREAD_PRIOR = 5e-4
SPREAD_STRENGTH = 20.0
#: Bounds of the shrinkage strength ``tau_c`` (observations).
MIN_SPREAD = 1e-4
MAX_TAU = 1000.0
_CLIP = 0.01


class ClusterThompsonBandit(Policy):
    """Per-cluster Thompson sampling with empirical-Bayes shrinkage to each model's mean.

    >>> import numpy as np
    >>> b = ClusterThompsonBandit(dim=3, seed=0)
    >>> b.add_arm("coder"); b.add_arm("writer")
    >>> code, prose = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])
    >>> for _ in range(60):
    ...     b.update("coder", code, 1.0); b.update("writer", code, 0.0)
    ...     b.update("coder", prose, 0.0); b.update("writer", prose, 1.0)
    >>> [b.arms[b.choose(x, [0, 1], np.zeros(2)).index] for x in (code, prose)]
    ['coder', 'writer']
    """

    name = "cluster_thompson"
    contextual = True

    def __init__(
        self,
        *,
        dim: int,
        clusters: int = 16,
        threshold: float = 0.7,
        scale: float = 0.5,
        warmup: int = 100,
        c: float = 0.5,
        prior_mean: float = 0.5,
        prior_strength: float = 1.0,
        propensity_samples: int = 256,
        seed: int | None = None,
    ) -> None:
        self.clusters = _validate.integer("clusters", clusters, low=1)
        self.threshold = _validate.number("threshold", threshold, low=-1.0, high=1.0)
        self.scale = _validate.positive("scale", scale)
        self.warmup = _validate.integer("warmup", warmup, low=0)
        self.c = _validate.positive("c", c)
        self.prior_strength = _validate.positive("prior_strength", prior_strength)
        self.propensity_samples = _validate.integer("propensity_samples", propensity_samples, low=1)
        super().__init__(dim=dim, prior_mean=prior_mean, seed=seed)
        if not 0.0 < self.prior_mean < 1.0:
            raise ConfigurationError(
                f"cluster_thompson needs prior_mean strictly between 0 and 1, got {prior_mean!r}"
            )
        self._width = max(self.dim - 1, 1)  # the features without the bias
        self._rebuild()

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "clusters": self.clusters,
            "threshold": self.threshold,
            "scale": self.scale,
            "warmup": self.warmup,
            "c": self.c,
            "prior_strength": self.prior_strength,
            "propensity_samples": self.propensity_samples,
        }

    def _rows(self) -> dict[str, tuple[int, ...]]:
        k = self.clusters
        return {"n": (), "counts": (k,), "sums": (k,), "centres": (k, max(self.dim - 1, 1))}

    # -- clusters ----------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Centroid directions and occupancy, summed over arms (derived, never saved)."""
        self._centre = self._stats["centres"].sum(axis=0)
        self._occupied = self._stats["counts"].sum(axis=0) > 0

    def _unit(self, x: FloatArray) -> FloatArray:
        z = np.asarray(x, dtype=np.float64)[: self._width] if self.dim > 1 else np.ones(1)
        norm = float(np.linalg.norm(z))
        return z / norm if norm > 0.0 else z

    def cluster_of(self, x: FloatArray) -> int:
        """The cluster a query with features ``x`` belongs to (a free one if none is near)."""
        return self._assign(self._unit(x))

    def _assign(self, u: FloatArray) -> int:
        occupied = np.flatnonzero(self._occupied)
        if occupied.size:
            centres = self._centre[occupied]
            norms = np.linalg.norm(centres, axis=1)
            sims = centres @ u / np.where(norms > 0.0, norms, 1.0)
            best = int(np.argmax(sims))
            if sims[best] >= self.threshold or occupied.size == self.clusters:
                return int(occupied[best])
        return int(np.flatnonzero(~self._occupied)[0])

    # -- learning and estimating -------------------------------------------------------
    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        u = self._unit(x)
        c = self._assign(u)
        stats = self._stats
        stats["n"][i] += 1.0
        stats["counts"][i, c] += 1.0
        stats["sums"][i, c] += reward
        stats["centres"][i, c] += u
        self._centre[c] += u
        self._occupied[c] = True

    def posterior(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and variance of every arm's quality for a query like ``x``."""
        return self._posterior(self.cluster_of(x))

    def _posterior(self, c: int) -> tuple[FloatArray, FloatArray]:
        stats = self._stats
        counts, sums = stats["counts"], stats["sums"]
        total_n, total_s = counts.sum(axis=1), sums.sum(axis=1)
        a0 = self.prior_strength
        mu = (total_s + a0 * self.prior_mean) / (total_n + a0)
        mu_var = mu * (1.0 - mu) / (total_n + a0)
        n, s = counts[:, c], sums[:, c]
        delta = float((s - n * mu).sum() / (n.sum() + OFFSET_STRENGTH))
        prior = np.clip(mu + delta, _CLIP, 1.0 - _CLIP)
        # Method of moments: spread of the arms' cluster means around their priors,
        # less the sampling noise of each, with a prior of SPREAD_STRENGTH observations.
        seen = n > 0
        safe_n = np.where(seen, n, 1.0)
        excess = (s / safe_n - prior) ** 2 - prior * (1.0 - prior) / safe_n
        spread = (float((n * excess)[seen].sum()) + SPREAD_STRENGTH * SPREAD_PRIOR) / (
            float(n.sum()) + SPREAD_STRENGTH
        )
        # The sampling variance of one outcome in this cluster, from the pooled mean
        # (so an arm with nothing learned changes no other arm's estimate).
        pooled = (float(total_s.sum()) + a0 * self.prior_mean) / (float(total_n.sum()) + a0)
        level = min(max(pooled + delta, _CLIP), 1.0 - _CLIP)
        noise = level * (1.0 - level)
        tau = min(noise / max(spread, MIN_SPREAD), MAX_TAU)
        mean = (s + tau * prior) / (n + tau)
        var = mean * (1.0 - mean) / (n + tau) + (tau / (n + tau)) ** 2 * mu_var
        return mean, var

    @property
    def phase(self) -> str:
        """The rule deciding now: ``ucb1`` until ``warmup`` feedbacks, then ``cluster_thompson``."""
        return "ucb1" if float(self._stats["n"].sum()) < self.warmup else self.name

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        if self.phase == "ucb1":
            return self._ucb1(idx)
        mean, var = self._posterior(self.cluster_of(x))
        mean, sd = mean[idx], self.scale * np.sqrt(var[idx])
        z = self._rng.standard_normal((idx.size, self.propensity_samples + 1))
        return Estimate(mean, draws=mean[:, None] + sd[:, None] * z)

    def _ucb1(self, idx: NDArray[np.intp]) -> Estimate:
        """UCB1 on the overall means (:class:`~conduit.engines.bandits._ucb1.UCB1Bandit`'s rule)."""
        n = self._stats["n"][idx]
        mean = (self._stats["sums"][idx].sum(axis=1) + self.prior_mean) / (n + 1.0)
        total = max(float(self._stats["n"].sum()), 1.0)
        bonus = self.c * np.sqrt(2.0 * np.log(total) / np.maximum(n, 1.0))
        return Estimate(mean, exploration=np.where(n == 0, 1e6, bonus))
