"""Hybrid routing: a non-contextual learner for the cold start, then LinUCB.

Both learners receive every feedback from the first request on; the phase only
decides which of them makes the decision. So when the switch comes (after
``switch_after`` feedback events), LinUCB starts from everything phase one saw:
its first decision already uses that learning. The phase is derived from the
learned counts, so it survives saving, loading and merging without extra state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from conduit import _validate
from conduit._errors import ConfigurationError, StateError
from conduit.engines.bandits._base import Bandit, Choice, FloatArray
from conduit.engines.bandits._linear import DEFAULT_BIAS_RIDGE, DEFAULT_RIDGE
from conduit.engines.bandits._linucb import LinUCBBandit
from conduit.engines.bandits._stats import Delta
from conduit.engines.bandits._thompson import ThompsonBandit
from conduit.engines.bandits._ucb1 import UCB1Bandit

__all__ = ["HybridBandit"]


class HybridBandit(Bandit):
    """UCB1 (or Thompson) until ``switch_after`` feedback events, then LinUCB.

    A composition: two policies that both learn everything, and a switch on the
    feedback count that says which one decides.

    >>> import numpy as np
    >>> h = HybridBandit(dim=3, switch_after=2, seed=0)
    >>> h.add_arm("a"); h.add_arm("b")
    >>> h.phase
    'ucb1'
    >>> h.update("a", np.ones(3), 1.0); h.update("b", np.ones(3), 0.0)
    >>> h.phase
    'linucb'
    """

    name = "hybrid"
    contextual = True

    def __init__(
        self,
        *,
        dim: int,
        switch_after: int = 100,
        first: Literal["ucb1", "thompson"] = "ucb1",
        alpha: float = 0.2,
        c: float = 0.5,
        ridge: float = DEFAULT_RIDGE,
        bias_ridge: float = DEFAULT_BIAS_RIDGE,
        prior_mean: float = 0.5,
        refactor_every: int = 1000,
        seed: int | None = None,
    ) -> None:
        self.switch_after = _validate.integer("switch_after", switch_after, low=0)
        if first not in ("ucb1", "thompson"):
            raise ConfigurationError(f"first must be 'ucb1' or 'thompson', got {first!r}")
        self.first_name = first
        self.second = LinUCBBandit(
            dim=dim,
            alpha=alpha,
            ridge=ridge,
            bias_ridge=bias_ridge,
            prior_mean=prior_mean,
            refactor_every=refactor_every,
            seed=seed,
        )
        self.first: UCB1Bandit | ThompsonBandit = (
            UCB1Bandit(c=c, prior_mean=prior_mean, seed=seed)
            if first == "ucb1"
            else ThompsonBandit(prior_mean=prior_mean, seed=seed)
        )
        self.dim, self.prior_mean, self.seed = self.second.dim, self.second.prior_mean, seed

    def params(self) -> dict[str, Any]:
        return {
            **self.second.params(),
            "switch_after": self.switch_after,
            "first": self.first_name,
            **({"c": self.first.params()["c"]} if self.first_name == "ucb1" else {}),
        }

    # -- the switch --------------------------------------------------------------------
    @property
    def feedback_count(self) -> int:
        return int(self.second.feedback_counts().sum())

    def _active(self) -> Bandit:
        return self.first if self.feedback_count < self.switch_after else self.second

    @property
    def phase(self) -> str:
        """Which learner decides now: the first until ``switch_after`` feedbacks, then LinUCB."""
        return self._active().name

    def choose(
        self,
        x: FloatArray,
        candidates: Sequence[int],
        penalty: FloatArray,
        *,
        quality_weight: float = 1.0,
        cost_share: FloatArray | None = None,
    ) -> Choice:
        return self._active().choose(
            x, candidates, penalty, quality_weight=quality_weight, cost_share=cost_share
        )

    # -- both learn everything ---------------------------------------------------------
    @property
    def arms(self) -> tuple[str, ...]:
        return self.second.arms

    def arm_index(self, arm: str) -> int:
        return self.second.arm_index(arm)

    def add_arm(self, arm: str) -> None:
        self.second.add_arm(arm)  # validates the name first
        self.first.add_arm(arm)

    def remove_arm(self, arm: str) -> None:
        self.second.remove_arm(arm)
        self.first.remove_arm(arm)

    def update(self, arm: str, x: FloatArray, reward: float) -> None:
        self.second.update(arm, x, reward)  # checks the reward and the context first
        self.first.update(arm, x, reward)

    def feedback_counts(self) -> FloatArray:
        return self.second.feedback_counts()

    def stats(self) -> dict[str, dict[str, FloatArray]]:
        first, second = self.first.stats(), self.second.stats()
        return {
            arm: {
                **{f"first.{k}": v for k, v in first[arm].items()},
                **{f"second.{k}": v for k, v in second[arm].items()},
            }
            for arm in self.arms
        }

    def check_delta(self, delta: Mapping[str, Mapping[str, Any]]) -> tuple[Delta, Delta]:
        if not isinstance(delta, Mapping) or not all(
            isinstance(parts, Mapping) for parts in delta.values()
        ):
            raise StateError("a delta maps arm names to statistics")

        def part(prefix: str) -> dict[str, dict[str, Any]]:
            return {
                arm: {k.removeprefix(prefix): v for k, v in parts.items() if k.startswith(prefix)}
                for arm, parts in delta.items()
            }

        # Both halves are checked before either changes, so a bad delta changes nothing.
        first = self.first.check_delta(part("first."))
        second = self.second.check_delta(part("second."))
        expected = {f"first.{k}" for k in self.first.stats_keys()}
        expected |= {f"second.{k}" for k in self.second.stats_keys()}
        for arm, parts in delta.items():
            if set(parts) != expected:
                raise StateError(
                    f"delta for {arm!r} has keys {sorted(parts)}, expected {sorted(expected)}"
                )
        return first, second

    def merge_checked(self, checked: tuple[Delta, Delta]) -> None:
        first, second = checked
        self.second.merge_checked(second)
        self.first.merge_checked(first)

    def state_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "params": self.params(),
            "arms": list(self.arms),
            "first": self.first.state_dict(),
            "second": self.second.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        arms = self._check_header(state)
        first, second = state.get("first"), state.get("second")
        if not isinstance(first, Mapping) or not isinstance(second, Mapping):
            raise StateError("hybrid state lacks its two learners")
        if list(first.get("arms", [])) != arms or list(second.get("arms", [])) != arms:
            raise StateError("hybrid state's learners disagree on the arms")
        # Load into fresh learners first, so a bad state leaves this one untouched.
        new_first = type(self.first)(**self.first.params())
        new_second = LinUCBBandit(**self.second.params())
        new_first.load_state_dict(first)
        new_second.load_state_dict(second)
        self.first, self.second = new_first, new_second
