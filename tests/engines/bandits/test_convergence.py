"""The policies learn: seeded synthetic environments, a few thousand steps each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conduit.engines.bandits import Bandit, make_bandit

BERNOULLI = (0.3, 0.5, 0.8)
STEPS = 3000


def bernoulli_run(name: str, params: dict[str, Any], seed: int) -> float:
    """Share of the last third of the steps that picked the best of three Bernoulli arms."""
    d = 4
    bandit = make_bandit(name, dim=d, seed=seed, **params)
    for i in range(len(BERNOULLI)):
        bandit.add_arm(f"m{i}")
    rng = np.random.default_rng(seed + 1000)
    x = np.eye(d)[0]
    best = []
    for _ in range(STEPS):
        c = bandit.choose(x, [0, 1, 2], np.zeros(3))
        best.append(c.index == 2)
        bandit.update(f"m{c.index}", x, float(rng.random() < BERNOULLI[c.index]))
    return float(np.mean(best[-STEPS // 3 :]))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ucb1", {}),
        ("thompson", {}),
        ("epsilon_greedy", {}),
        ("hybrid", {"switch_after": 300}),
        ("linucb", {}),
        ("cluster_thompson", {}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_the_best_bernoulli_arm(name: str, params: dict[str, Any], seed: int) -> None:
    assert bernoulli_run(name, params, seed) > 0.9


def test_random_does_not_find_it() -> None:
    """The same measure on a policy that cannot learn, so the threshold above means something."""
    assert bernoulli_run("random", {}, 0) < 0.45


class LinearEnvironment:
    """Three models whose quality is linear in the context; the best depends on the context."""

    def __init__(self, d: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.d = d
        self.rng = rng
        self.weights = rng.normal(size=(3, d - 1))
        self.weights /= np.linalg.norm(self.weights, axis=1, keepdims=True)

    def context(self) -> np.ndarray:
        v = self.rng.normal(size=self.d - 1)
        return np.append(v / np.linalg.norm(v), 1.0)

    def quality(self, x: np.ndarray) -> np.ndarray:
        q: np.ndarray = np.clip(0.5 + 0.45 * self.weights @ x[:-1], 0.0, 1.0)
        return q


def contextual_run(name: str, params: dict[str, Any], seed: int) -> float:
    """Mean expected quality over the last third of the steps."""
    d = 5
    env = LinearEnvironment(d, seed)
    bandit: Bandit = make_bandit(name, dim=d, seed=seed, **params)
    for i in range(3):
        bandit.add_arm(f"m{i}")
    earned = []
    for _ in range(STEPS):
        x = env.context()
        q = env.quality(x)
        c = bandit.choose(x, [0, 1, 2], np.zeros(3))
        earned.append(q[c.index])
        bandit.update(f"m{c.index}", x, float(env.rng.random() < q[c.index]))
    return float(np.mean(earned[-STEPS // 3 :]))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("linucb", {}),
        ("contextual_thompson", {}),
        ("hybrid", {"switch_after": 300}),
        ("cluster_thompson", {}),
    ],
)
def test_context_beats_the_best_single_model(name: str, params: dict[str, Any]) -> None:
    seed = 3
    env = LinearEnvironment(5, seed)
    xs = np.array([env.context() for _ in range(5000)])
    q = np.array([env.quality(x) for x in xs])
    best_single, best_per_context = q.mean(axis=0).max(), q.max(axis=1).mean()
    assert best_per_context - best_single > 0.15, "the environment must reward using the context"

    contextual = contextual_run(name, params, seed)
    ucb1 = contextual_run("ucb1", {}, seed)
    assert ucb1 < best_single + 0.02
    assert contextual > ucb1 + 0.1
    # Clusters are a piecewise-constant model of this linear world: coarser, so further off.
    assert contextual > best_per_context - (0.1 if name == "cluster_thompson" else 0.05)
