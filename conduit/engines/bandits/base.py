"""The one protocol every routing policy implements.

A policy learns, per model ("arm"), an estimate of *quality* only. Cost and
latency are learned by the router and reach the policy as a ``penalty`` per
candidate, so one learned state serves every preference.

Learned state is a set of additive sufficient statistics per arm (sums of
outer products, reward sums, counts), stacked with the arm as the first axis.
Additivity is what makes the rest simple: adding an arm appends a zero row,
removing one deletes its row and leaves the others untouched, and several
processes can exchange learning as deltas that merge by addition.

Subclasses implement only the decision: ``_zero_stats`` (one arm's statistics
before any feedback), ``_learn`` (fold one reward into arm ``i``) and either
``_estimate`` (mean and exploration bonus, for index policies) or ``_choose``.
Derived caches (inverses, posterior means) are rebuilt by ``_rebuild``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from conduit.errors import (
    ConfigurationError,
    DuplicateModelError,
    InvalidFeedbackError,
    StateError,
    UnknownModelError,
)

__all__ = ["Bandit", "Choice", "FloatArray"]

FloatArray = NDArray[np.float64]


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
    bonus: FloatArray


class Bandit(ABC):
    """Base class of every policy: arms, state, validation and ties; the subclass decides."""

    name: ClassVar[str]
    contextual: ClassVar[bool] = False

    def __init__(self, *, dim: int = 1, prior_mean: float = 0.5, seed: int | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigurationError(f"dim must be a positive int, got {dim!r}")
        if (
            isinstance(prior_mean, bool)
            or not isinstance(prior_mean, (int, float))
            or not 0.0 <= prior_mean <= 1.0
        ):
            raise ConfigurationError(f"prior_mean must be in [0, 1], got {prior_mean!r}")
        self.dim = dim
        self.prior_mean = float(prior_mean)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._arms: list[str] = []
        self._index: dict[str, int] = {}
        self._stats: dict[str, FloatArray] = {
            key: np.zeros((0, *value.shape)) for key, value in self._zero_stats().items()
        }

    # -- what a subclass provides -------------------------------------------------------
    @abstractmethod
    def _zero_stats(self) -> dict[str, FloatArray]:
        """One arm's sufficient statistics before any feedback (all additive)."""

    @abstractmethod
    def _learn(self, i: int, x: FloatArray, reward: float) -> None:
        """Fold one quality reward for arm ``i`` in context ``x`` into the statistics."""

    def _estimate(self, x: FloatArray, idx: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """Mean quality and exploration bonus of arms ``idx`` (index policies)."""
        raise NotImplementedError

    def _rebuild(self) -> None:  # noqa: B027 - an optional hook: most policies cache nothing
        """Recompute derived caches from ``self._stats`` (after load, merge or removal)."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments, under their own names, as saved with the state."""
        return {"dim": self.dim, "prior_mean": self.prior_mean, "seed": self.seed}

    # -- arms --------------------------------------------------------------------------
    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self._arms)

    def add_arm(self, arm: str) -> None:
        """Add a model with no learning yet; the other arms keep theirs."""
        if not isinstance(arm, str) or not arm:
            raise ConfigurationError(f"model names must be non-empty str, got {arm!r}")
        if arm in self._index:
            raise DuplicateModelError(f"model {arm!r} is already an arm")
        zero = self._zero_stats()
        for key, value in zero.items():
            self._stats[key] = np.concatenate([self._stats[key], value[None]], axis=0)
        self._index[arm] = len(self._arms)
        self._arms.append(arm)
        self._rebuild()

    def remove_arm(self, arm: str) -> None:
        """Forget one model; the other arms keep what they learned."""
        i = self.arm_index(arm)
        for key, value in self._stats.items():
            self._stats[key] = np.delete(value, i, axis=0)
        del self._arms[i]
        self._index = {a: j for j, a in enumerate(self._arms)}
        self._rebuild()

    def arm_index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except KeyError:
            raise UnknownModelError(f"unknown model {arm!r}; arms are {self._arms}") from None

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
        """Pick one of ``candidates`` (arm indices) for context ``x``.

        ``penalty`` is the router's cost and latency term per candidate, already
        weighted by the query's preferences; ``cost_share`` is the unweighted
        predicted cost share, for policies that look at price alone.
        """
        idx = self._candidates(candidates)
        mean, bonus = self._estimate(x, idx)
        utility = quality_weight * (mean + bonus) - penalty
        index, propensity = self._argmax(utility)
        return Choice(index, propensity, utility, mean, bonus)

    def _candidates(self, candidates: Sequence[int]) -> NDArray[np.intp]:
        """Candidate arm indices as an array; refuses an empty, repeated or out-of-range list."""
        idx = np.asarray(candidates, dtype=np.intp)
        if idx.ndim != 1 or idx.size == 0:
            raise ConfigurationError("no candidate arms to choose from")
        if idx.min() < 0 or idx.max() >= len(self._arms) or np.unique(idx).size != idx.size:
            raise ConfigurationError(
                f"candidates {idx.tolist()} must be distinct arm indices below {len(self._arms)}"
            )
        return idx

    def _argmax(self, utility: FloatArray) -> tuple[int, float]:
        """Best utility, ties broken uniformly at random so list order never matters."""
        best = np.flatnonzero(utility >= utility.max() - 1e-12)
        if best.size == 1:
            return int(best[0]), 1.0
        return int(self._rng.choice(best)), 1.0 / best.size

    def update(self, arm: str, x: FloatArray, reward: float) -> None:
        """Learn that ``arm`` earned quality ``reward`` (0..1) in context ``x``."""
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

    def pulls(self) -> FloatArray:
        """Feedback count per arm, in arm order."""
        return self._stats["n"].copy()

    # -- state -------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, FloatArray]]:
        """A copy of the sufficient statistics, per arm."""
        return {
            arm: {key: value[i].copy() for key, value in self._stats.items()}
            for i, arm in enumerate(self._arms)
        }

    def merge(self, delta: Mapping[str, Mapping[str, FloatArray]]) -> None:
        """Add other learners' statistics (deltas) arm by arm; unknown arms are added.

        The whole delta is checked first, so a bad one raises :class:`StateError`
        and changes nothing.
        """
        self._apply_delta(self._check_delta(delta))

    def _check_delta(
        self, delta: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[str, dict[str, FloatArray]]]:
        """The delta as float arrays, or :class:`StateError` if any part of it is malformed."""
        if not isinstance(delta, Mapping):
            raise StateError(f"a delta maps arm names to statistics, got {type(delta).__name__}")
        checked: list[tuple[str, dict[str, FloatArray]]] = []
        zero = self._zero_stats()
        for arm, parts in delta.items():
            if not isinstance(arm, str) or not arm:
                raise StateError(f"delta names an invalid arm {arm!r}")
            if not isinstance(parts, Mapping) or set(parts) != set(zero):
                keys = sorted(parts) if isinstance(parts, Mapping) else parts
                raise StateError(f"delta for {arm!r} has keys {keys}, expected {sorted(zero)}")
            try:
                arrays = {k: np.asarray(v, dtype=np.float64) for k, v in parts.items()}
            except (TypeError, ValueError) as exc:
                raise StateError(f"delta for {arm!r} is not numeric: {exc}") from exc
            for key, value in arrays.items():
                if value.shape != zero[key].shape or not np.all(np.isfinite(value)):
                    raise StateError(
                        f"delta {arm!r}.{key} has shape {value.shape} or non-finite values"
                    )
            checked.append((arm, arrays))
        return checked

    def _apply_delta(self, checked: list[tuple[str, dict[str, FloatArray]]]) -> None:
        for arm, arrays in checked:
            if arm not in self._index:
                self.add_arm(arm)
            i = self._index[arm]
            for key, value in arrays.items():
                self._stats[key][i] += value
        self._rebuild()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore this policy: plain JSON values and arrays."""
        return {
            "algorithm": self.name,
            "params": self.params(),
            "arms": list(self._arms),
            "stats": {key: value.copy() for key, value in self._stats.items()},
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, or refuse with :class:`StateError`."""
        arms = self._check_header(state)
        stats = state.get("stats", {})
        zero = self._zero_stats()
        if not isinstance(stats, Mapping) or set(stats) != set(zero):
            found = sorted(stats) if isinstance(stats, Mapping) else stats
            raise StateError(f"state has statistics {found}, expected {sorted(zero)}")
        loaded: dict[str, FloatArray] = {}
        for key, proto in zero.items():
            try:
                value = np.asarray(stats[key], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise StateError(f"state statistic {key!r} is not numeric: {exc}") from exc
            if value.shape != (len(arms), *proto.shape) or not np.all(np.isfinite(value)):
                raise StateError(
                    f"state statistic {key!r} has shape {value.shape} or non-finite values"
                )
            loaded[key] = value.copy()
        rng = self._check_rng(state)
        self._arms = arms
        self._index = {a: i for i, a in enumerate(arms)}
        self._stats = loaded
        if rng is not None:
            self._rng = rng
        self._rebuild()

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

    @staticmethod
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(arms={len(self._arms)}, {self.params()})"


def check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item in out:
            raise DuplicateModelError(f"model {item!r} is listed twice")
        out.append(item)
    return out
