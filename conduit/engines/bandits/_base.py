"""The protocol every routing policy implements, and the base of single-learner policies.

A policy learns, per model ("arm"), an estimate of *quality* only. Cost and
latency are learned by the router and reach the policy as a ``penalty`` per
candidate, so one learned state serves every preference; the utility that
combines them is :mod:`conduit._reward`'s.

:class:`Bandit` is what the router and the stores use. :class:`Policy` is one
learner over :class:`~conduit.engines.bandits._stats.ArmStats`; a policy file
declares its statistics (``_rows``, ``_learn``) and implements one hook,
``_estimate``: the mean quality of each candidate for a context, with an
exploration bonus (index policies) or posterior draws (sampling policies).
Policies whose decision rule is not "best utility" override ``_pick``
(randomised rules) or ``_utility`` (baselines that ignore part of it).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from conduit import _reward as reward
from conduit import _validate
from conduit._errors import ConfigurationError, InvalidFeedbackError, StateError
from conduit.engines.bandits._stats import ArmStats, Delta, FloatArray

__all__ = ["Bandit", "Choice", "Estimate", "FloatArray", "Policy"]


@dataclass(frozen=True, slots=True)
class Choice:
    """One decision: which candidate, with what probability, and the numbers behind it."""

    index: int
    """Position of the chosen arm in the candidate list given to :meth:`Bandit.choose`."""
    propensity: float
    """Probability with which this policy picks this arm for this context (for off-policy
    evaluation)."""
    utility: FloatArray
    mean: FloatArray
    exploration: FloatArray
    """Optimism added to the mean (UCB1, LinUCB; zero for other policies)."""
    noise: FloatArray
    """Sampled deviation of the quality used from its mean (Thompson; zero otherwise)."""

    @property
    def deviation(self) -> FloatArray:
        """What the utility adds to the mean quality: exploration or sampled noise."""
        return self.exploration + self.noise


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a policy believes of each candidate's quality for one context."""

    mean: FloatArray
    exploration: FloatArray | None = None
    """An optimism bonus per candidate (index policies)."""
    draws: FloatArray | None = None
    """``(K, 1 + S)`` posterior draws of quality (sampling policies): column 0 decides,
    the other ``S`` estimate the propensity."""


class Bandit(ABC):
    """What the router and the stores use of a policy: arms, choose, update, state."""

    name: ClassVar[str]
    contextual: ClassVar[bool] = False
    dim: int
    prior_mean: float
    seed: int | None

    @property
    @abstractmethod
    def arms(self) -> tuple[str, ...]: ...

    @abstractmethod
    def add_arm(self, arm: str) -> None:
        """Add a model with no learning yet; the other arms keep theirs."""

    @abstractmethod
    def remove_arm(self, arm: str) -> None:
        """Forget one model; the other arms keep what they learned."""

    @abstractmethod
    def arm_index(self, arm: str) -> int: ...

    @abstractmethod
    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        """Pick one of ``candidates`` (arm indices) for context ``x``.

        ``penalty`` is the router's cost and latency term per candidate, already
        weighted by the query's preferences; ``cost_share`` is the unweighted
        predicted cost share, for baselines that look at price alone.
        """

    @abstractmethod
    def update(self, arm: str, x: FloatArray, reward: float) -> None:
        """Learn that ``arm`` earned quality ``reward`` (0..1) in context ``x``."""

    @abstractmethod
    def feedback_counts(self) -> FloatArray:
        """Quality feedbacks learned per arm, in arm order."""

    @abstractmethod
    def stats(self) -> dict[str, dict[str, FloatArray]]:
        """A copy of the additive statistics, per arm."""

    @abstractmethod
    def check_delta(self, delta: Mapping[str, Mapping[str, Any]]) -> Any:
        """``delta`` checked and converted for :meth:`merge_checked`, or :class:`StateError`."""

    @abstractmethod
    def merge_checked(self, checked: Any) -> None:
        """Add a delta that :meth:`check_delta` accepted."""

    def merge(self, delta: Mapping[str, Mapping[str, FloatArray]]) -> None:
        """Add other learners' statistics (deltas) arm by arm; unknown arms are added.

        The whole delta is checked first, so a bad one raises :class:`StateError`
        and changes nothing.
        """
        self.merge_checked(self.check_delta(delta))

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor arguments, under their own names, as saved with the state."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore this policy: plain JSON values and arrays."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, or refuse with :class:`StateError`."""

    def _check_header(self, state: Mapping[str, Any]) -> list[str]:
        """The state's arm names, after checking it is a state of this algorithm."""
        if not isinstance(state, Mapping):
            raise StateError(f"a policy state is a mapping, got {type(state).__name__}")
        if state.get("algorithm") != self.name:
            raise StateError(f"state is for {state.get('algorithm')!r}, not {self.name!r}")
        arms = state.get("arms", [])
        if not isinstance(arms, (list, tuple)) or not all(isinstance(a, str) and a for a in arms):
            raise StateError(f"state's arms must be a list of model names, got {arms!r}")
        if len(set(arms)) != len(arms):
            raise StateError(f"state lists an arm twice: {arms}")
        return list(arms)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(arms={len(self.arms)}, {self.params()})"


def _check_arm_name(arm: object) -> str:
    if not isinstance(arm, str) or not arm:
        raise ConfigurationError(f"model names must be non-empty str, got {arm!r}")
    return arm


class Policy(Bandit):
    """One learner: additive statistics per arm, and the decision from its estimate."""

    def __init__(self, *, dim: int = 1, prior_mean: float = 0.5, seed: int | None = None) -> None:
        self.dim = _validate.integer("dim", dim, low=1)
        self.prior_mean = _validate.number("prior_mean", prior_mean, low=0.0, high=1.0)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._stats = ArmStats(self._rows())

    # -- what a policy provides ---------------------------------------------------------
    @abstractmethod
    def _rows(self) -> dict[str, tuple[int, ...]]:
        """The shape of each additive statistic of one arm."""

    @abstractmethod
    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        """Fold one quality reward for arm ``i`` in context ``x`` into the statistics."""

    @abstractmethod
    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> Estimate:
        """Mean quality of arms ``idx`` at ``x``, with an exploration bonus or draws."""

    def _utility(
        self,
        idx: NDArray[np.intp],
        estimate: Estimate,
        penalty: FloatArray,
        quality_weight: float,
        cost_share: FloatArray | None,
    ) -> FloatArray:
        """The score each candidate is ranked by (:func:`conduit._reward.utility`)."""
        quality = estimate.mean
        if estimate.exploration is not None:
            quality = quality + estimate.exploration
        return reward.utility(quality, penalty, quality_weight=quality_weight)

    def _pick(self, utility: FloatArray) -> tuple[int, float]:
        """Which candidate, and its propensity: the best utility, ties at random."""
        return reward.argmax(utility, self._rng)

    def _arm_added(self) -> None:
        """Extend derived caches by the arm just appended (the last row)."""

    def _rebuild(self) -> None:
        """Recompute derived caches from the statistics (after load, merge or removal)."""

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "prior_mean": self.prior_mean, "seed": self.seed}

    # -- arms --------------------------------------------------------------------------
    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self._stats.arms)

    def add_arm(self, arm: str) -> None:
        self._stats.add(_check_arm_name(arm))
        self._arm_added()

    def remove_arm(self, arm: str) -> None:
        self._stats.remove(arm)
        self._rebuild()

    def arm_index(self, arm: str) -> int:
        return self._stats.index(arm)

    # -- deciding and learning ---------------------------------------------------------
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
        estimate = self._estimate(x, idx)
        zeros = np.zeros(idx.size)
        if estimate.draws is not None:
            draws = estimate.draws
            utilities = reward.utility(draws, penalty[:, None], quality_weight=quality_weight)
            index, propensity = reward.sampled_argmax(utilities)
            noise = draws[:, 0] - estimate.mean
            return Choice(index, propensity, utilities[:, 0], estimate.mean, zeros, noise)
        utility = self._utility(idx, estimate, penalty, quality_weight, cost_share)
        index, propensity = self._pick(utility)
        exploration = zeros if estimate.exploration is None else estimate.exploration
        return Choice(index, propensity, utility, estimate.mean, exploration, zeros)

    def _candidates(self, candidates: Sequence[int]) -> NDArray[np.intp]:
        """Candidate arm indices as an array; refuses an empty, repeated or out-of-range list."""
        idx = np.asarray(candidates, dtype=np.intp)
        k = len(self._stats)
        if idx.ndim != 1 or idx.size == 0:
            raise ConfigurationError("no candidate arms to choose from")
        if idx.min() < 0 or idx.max() >= k or len(set(idx.tolist())) != idx.size:
            raise ConfigurationError(
                f"candidates {idx.tolist()} must be distinct arm indices below {k}"
            )
        return idx

    def update(self, arm: str, x: FloatArray, reward: float) -> None:
        i = self.arm_index(arm)
        if (
            isinstance(reward, bool)
            or not isinstance(reward, (int, float, np.integer, np.floating))
            or not math.isfinite(reward)
        ):
            raise InvalidFeedbackError(f"reward must be a finite number, got {reward!r}")
        if not 0.0 <= reward <= 1.0:
            raise InvalidFeedbackError(f"reward must be in [0, 1], got {reward}")
        if self.contextual:
            x = np.asarray(x, dtype=np.float64)
            if x.shape != (self.dim,):
                raise InvalidFeedbackError(f"context has shape {x.shape}, expected ({self.dim},)")
            if not np.all(np.isfinite(x)):
                raise InvalidFeedbackError("context has NaN or infinite values")
        self._learn(i, x, float(reward))

    def feedback_counts(self) -> FloatArray:
        return self._stats["n"].copy()

    # -- state -------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, FloatArray]]:
        return self._stats.per_arm()

    def stats_keys(self) -> tuple[str, ...]:
        """The names of one arm's statistics."""
        return tuple(self._stats.keys())

    def check_delta(self, delta: Mapping[str, Mapping[str, Any]]) -> Delta:
        return self._stats.check(delta)

    def merge_checked(self, checked: Delta) -> None:
        self._stats.merge(checked)
        self._rebuild()

    def state_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "params": self.params(),
            "arms": list(self._stats.arms),
            "stats": self._stats.state(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        arms = self._check_header(state)
        loaded = ArmStats(self._rows())
        loaded.load(arms, state.get("stats", {}))
        rng = _check_rng(state)
        self._stats = loaded
        if rng is not None:
            self._rng = rng
        self._rebuild()


def _check_rng(state: Mapping[str, Any]) -> np.random.Generator | None:
    """A generator in the saved RNG state (``None`` if none was saved), or StateError."""
    if "rng" not in state:
        return None
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError) as exc:
        raise StateError(f"state's random generator state is invalid: {exc}") from exc
    return rng
