"""Routing policies, one file each, behind :class:`~conduit.engines.bandits._base.Bandit`.

A single-learner policy (:class:`Policy`) implements one hook, its estimate of each
candidate's quality; the hybrid composes two of them with a switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conduit._errors import ConfigurationError
from conduit.engines.bandits._base import Bandit, Choice, Estimate, Policy
from conduit.engines.bandits._baselines import (
    AlwaysBestBandit,
    AlwaysCheapestBandit,
    OracleBandit,
    RandomBandit,
)
from conduit.engines.bandits._cluster_thompson import ClusterThompsonBandit
from conduit.engines.bandits._contextual_thompson import ContextualThompsonBandit
from conduit.engines.bandits._epsilon_greedy import EpsilonGreedyBandit
from conduit.engines.bandits._hybrid import HybridBandit
from conduit.engines.bandits._linucb import LinUCBBandit
from conduit.engines.bandits._thompson import ThompsonBandit
from conduit.engines.bandits._ucb1 import UCB1Bandit

__all__ = [
    "ALGORITHMS",
    "AlwaysBestBandit",
    "AlwaysCheapestBandit",
    "Bandit",
    "Choice",
    "ClusterThompsonBandit",
    "ContextualThompsonBandit",
    "EpsilonGreedyBandit",
    "Estimate",
    "HybridBandit",
    "LinUCBBandit",
    "OracleBandit",
    "Policy",
    "RandomBandit",
    "ThompsonBandit",
    "UCB1Bandit",
    "make_bandit",
]

#: Every algorithm by the name ``Router(bandit_algorithm=...)`` takes.
ALGORITHMS: dict[str, type[Bandit]] = {
    cls.name: cls
    for cls in (
        HybridBandit,
        LinUCBBandit,
        ClusterThompsonBandit,
        ContextualThompsonBandit,
        ThompsonBandit,
        UCB1Bandit,
        EpsilonGreedyBandit,
        RandomBandit,
        AlwaysBestBandit,
        AlwaysCheapestBandit,
        OracleBandit,
    )
}


def make_bandit(name: str, *, dim: int, seed: int | None = None, **params: Any) -> Bandit:
    """A policy by name; ``params`` are that policy's constructor arguments."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown bandit_algorithm {name!r}; choose one of {sorted(ALGORITHMS)}"
        ) from None
    factory: Callable[..., Bandit] = cls  # each policy has its own keyword arguments
    try:
        return factory(dim=dim, seed=seed, **params)
    except TypeError as exc:
        raise ConfigurationError(f"{name}: {exc}") from exc
