"""Each policy's numbers checked against a direct computation from its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conduit.engines.bandits import (
    ContextualThompsonBandit,
    EpsilonGreedyBandit,
    HybridBandit,
    LinUCBBandit,
    ThompsonBandit,
    UCB1Bandit,
)

# Non-default hyper-parameters, so a formula that ignores one of them fails.
RIDGE, BIAS_RIDGE, ALPHA, PRIOR, V = 0.7, 1.9, 0.3, 0.4, 0.6


def prior_precision(d: int) -> np.ndarray:
    """``Lambda``: ``ridge`` on each context feature, ``bias_ridge`` on the last (the bias)."""
    return np.diag([RIDGE] * (d - 1) + [BIAS_RIDGE])


def ridge_data(seed: int, n: int = 30, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    r = np.clip(0.5 + 0.2 * X @ rng.normal(size=d) + 0.05 * rng.normal(size=n), 0.0, 1.0)
    return X, r


def ridge_solution(X: np.ndarray, r: np.ndarray, prior: float) -> np.ndarray:
    """theta of ``min |X theta - (r - prior)|^2 + theta^T Lambda theta`` (augmented lstsq)."""
    d = X.shape[1]
    design = np.vstack([X, np.sqrt(prior_precision(d))])
    target = np.concatenate([r - prior, np.zeros(d)])
    theta: np.ndarray = np.linalg.lstsq(design, target, rcond=None)[0]
    return theta


def test_linucb_prediction_and_bonus_are_ridge_regression() -> None:
    d = 4
    bandit = LinUCBBandit(
        dim=d, alpha=ALPHA, ridge=RIDGE, bias_ridge=BIAS_RIDGE, prior_mean=PRIOR, seed=0
    )
    bandit.add_arm("a")
    bandit.add_arm("b")
    X, r = ridge_data(1)
    for x, reward in zip(X, r, strict=True):
        bandit.update("a", x, float(reward))

    theta = ridge_solution(X, r, PRIOR)
    np.testing.assert_allclose(bandit.coefficients("a"), theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bandit.coefficients("b"), np.zeros(d))

    gram = prior_precision(d) + X.T @ X
    for x in np.random.default_rng(2).normal(size=(5, d)):
        c = bandit.choose(x, [0, 1], np.zeros(2))
        expected_bonus_a = ALPHA * math.sqrt(x @ np.linalg.solve(gram, x))
        expected_bonus_b = ALPHA * math.sqrt(x @ np.linalg.solve(prior_precision(d), x))
        np.testing.assert_allclose(c.mean, [PRIOR + x @ theta, PRIOR], rtol=1e-9)
        np.testing.assert_allclose(c.exploration, [expected_bonus_a, expected_bonus_b], rtol=1e-9)
        np.testing.assert_allclose(c.utility, c.mean + c.exploration, rtol=1e-12)


def test_linucb_utility_weights_quality_and_subtracts_penalty() -> None:
    bandit = LinUCBBandit(dim=2, seed=0)
    bandit.add_arm("a")
    bandit.add_arm("b")
    x = np.array([1.0, 0.5])
    penalty = np.array([0.3, 0.1])
    c = bandit.choose(x, [0, 1], penalty, quality_weight=2.0)
    np.testing.assert_allclose(c.utility, 2.0 * (c.mean + c.exploration) - penalty)


def test_contextual_thompson_posterior_mean_and_std() -> None:
    d = 4
    bandit = ContextualThompsonBandit(
        dim=d, v=V, ridge=RIDGE, bias_ridge=BIAS_RIDGE, prior_mean=PRIOR, seed=0
    )
    bandit.add_arm("a")
    X, r = ridge_data(3)
    for x, reward in zip(X, r, strict=True):
        bandit.update("a", x, float(reward))
    theta = ridge_solution(X, r, PRIOR)
    gram = prior_precision(d) + X.T @ X
    x = np.random.default_rng(4).normal(size=d)
    mean, std = bandit.posterior("a", x)
    assert mean == pytest.approx(PRIOR + x @ theta, rel=1e-9)
    assert std == pytest.approx(V * math.sqrt(x @ np.linalg.solve(gram, x)), rel=1e-9)

    # The decisions sample from exactly that normal distribution.
    draws = np.array([bandit.choose(x, [0], np.zeros(1)).noise[0] for _ in range(4000)])
    z = draws / std
    assert abs(z.mean()) < 0.1
    assert abs(z.std() - 1.0) < 0.05


def test_contextual_thompson_propensity_matches_choice_frequency() -> None:
    bandit = ContextualThompsonBandit(dim=2, v=1.0, seed=5)
    for arm in ("a", "b"):
        bandit.add_arm(arm)
    x = np.array([1.0, 0.0])
    for _ in range(3):
        bandit.update("a", x, 1.0)
        bandit.update("b", x, 0.6)
    choices = [bandit.choose(x, [0, 1], np.zeros(2)) for _ in range(3000)]
    freq_a = np.mean([c.index == 0 for c in choices])
    mean_prop_a = np.mean([c.propensity if c.index == 0 else 1 - c.propensity for c in choices])
    assert 0.55 < freq_a < 0.95
    assert mean_prop_a == pytest.approx(freq_a, abs=0.03)


def test_beta_thompson_posterior_parameters() -> None:
    bandit = ThompsonBandit(prior_mean=0.2, prior_strength=3.0, seed=0)
    bandit.add_arm("a")
    bandit.add_arm("b")
    rewards = [1.0, 0.25, 0.0, 0.75, 1.0]
    for q in rewards:
        bandit.update("a", np.ones(1), q)
    a, b = bandit.posterior("a")
    assert a == pytest.approx(3.0 * 0.2 + sum(rewards))
    assert b == pytest.approx(3.0 * 0.8 + sum(1 - q for q in rewards))
    assert bandit.posterior("b") == pytest.approx((0.6, 2.4))
    c = bandit.choose(np.ones(1), [0, 1], np.zeros(2))
    np.testing.assert_allclose(c.mean, [a / (a + b), 0.2])


def test_beta_thompson_samples_the_posterior() -> None:
    bandit = ThompsonBandit(prior_mean=0.5, prior_strength=2.0, seed=1)
    bandit.add_arm("a")
    for q in (1.0, 1.0, 1.0, 0.0):
        bandit.update("a", np.ones(1), q)
    # Beta(4, 2): mean 2/3, variance 4*2 / (6^2 * 7).
    draws = np.array([bandit.choose(np.ones(1), [0], np.zeros(1)).utility[0] for _ in range(4000)])
    assert draws.mean() == pytest.approx(2 / 3, abs=0.01)
    assert draws.var() == pytest.approx(8 / (36 * 7), rel=0.1)


def test_ucb1_bonus_and_mean() -> None:
    c_param = 0.8
    bandit = UCB1Bandit(c=c_param, prior_mean=PRIOR, seed=0)
    for arm in ("a", "b", "c"):
        bandit.add_arm(arm)
    rewards = {"a": [1.0, 0.0, 1.0, 1.0], "b": [0.5, 0.25], "c": [0.0]}
    for arm, values in rewards.items():
        for q in values:
            bandit.update(arm, np.ones(1), q)
    total = sum(len(v) for v in rewards.values())
    c = bandit.choose(np.ones(1), [0, 1, 2], np.zeros(3))
    for j, (arm, values) in enumerate(rewards.items()):
        n = len(values)
        assert c.mean[j] == pytest.approx((sum(values) + PRIOR) / (n + 1))
        assert c.exploration[j] == pytest.approx(c_param * math.sqrt(2 * math.log(total) / n)), arm


def test_ucb1_tries_every_arm_first() -> None:
    bandit = UCB1Bandit(seed=0)
    for arm in ("a", "b", "c", "d"):
        bandit.add_arm(arm)
    for _ in range(20):
        bandit.update("a", np.ones(1), 1.0)
    tried = {"a"}
    while len(tried) < 4:
        c = bandit.choose(np.ones(1), [0, 1, 2, 3], np.zeros(4))
        arm = bandit.arms[c.index]
        assert arm not in tried, "an untried arm goes first, whatever the others' means"
        assert c.propensity == pytest.approx(1 / (4 - len(tried)))
        tried.add(arm)
        bandit.update(arm, np.ones(1), 0.0)


def test_epsilon_greedy_choice_frequencies_match_its_propensity() -> None:
    eps, k = 0.3, 4
    bandit = EpsilonGreedyBandit(epsilon=eps, seed=2)
    for arm in ("a", "b", "c", "d"):
        bandit.add_arm(arm)
    for arm, q in (("a", 0.2), ("b", 0.9), ("c", 0.4), ("d", 0.1)):
        bandit.update(arm, np.ones(1), q)
    rounds = 6000
    choices = [bandit.choose(np.ones(1), [0, 1, 2, 3], np.zeros(k)) for _ in range(rounds)]
    freq = np.bincount([c.index for c in choices], minlength=k) / rounds
    expected = np.full(k, eps / k)
    expected[1] += 1 - eps
    np.testing.assert_allclose(freq, expected, atol=0.02)
    for c in choices:
        assert c.propensity == pytest.approx(expected[c.index])


def test_hybrid_switches_after_switch_after_feedbacks() -> None:
    hybrid = HybridBandit(dim=3, switch_after=10, seed=0)
    hybrid.add_arm("a")
    hybrid.add_arm("b")
    x = np.array([1.0, 0.0, 1.0])
    for i in range(10):
        assert hybrid.phase == "ucb1", i
        hybrid.update("ab"[i % 2], x, 0.5)
    assert hybrid.phase == "linucb"
    assert hybrid.feedback_count == 10


def test_hybrid_first_linucb_decision_uses_phase_one_learning() -> None:
    d = 3
    hybrid = HybridBandit(dim=d, switch_after=40, alpha=0.1, seed=0)
    alone = LinUCBBandit(dim=d, alpha=0.1, seed=0)
    for b in (hybrid, alone):
        b.add_arm("weak")
        b.add_arm("strong")
    rng = np.random.default_rng(6)
    while hybrid.phase == "ucb1":
        x = np.append(rng.normal(size=d - 1), 1.0)
        c = hybrid.choose(x, [0, 1], np.zeros(2))
        arm = hybrid.arms[c.index]
        reward = 0.9 if arm == "strong" else 0.2
        hybrid.update(arm, x, reward)
        alone.update(arm, x, reward)
    assert hybrid.phase == "linucb"
    assert np.abs(hybrid.second.coefficients("strong")).max() > 0.1
    x = np.append(rng.normal(size=d - 1), 1.0)
    first_linucb = hybrid.choose(x, [0, 1], np.zeros(2))
    assert hybrid.arms[first_linucb.index] == "strong"
    # The same numbers as a LinUCB that saw the same feedback from the start.
    reference = alone.choose(x, [0, 1], np.zeros(2))
    np.testing.assert_allclose(first_linucb.mean, reference.mean, rtol=1e-12)
    np.testing.assert_allclose(first_linucb.exploration, reference.exploration, rtol=1e-12)


def test_hybrid_phase_survives_state_round_trip() -> None:
    hybrid = HybridBandit(dim=2, switch_after=3, seed=0)
    hybrid.add_arm("a")
    for _ in range(3):
        hybrid.update("a", np.ones(2), 1.0)
    restored = HybridBandit(**hybrid.params())
    restored.load_state_dict(hybrid.state_dict())
    assert restored.phase == "linucb"
