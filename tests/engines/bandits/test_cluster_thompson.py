"""ClusterThompsonBandit: its clusters, its shrinkage and its draws, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from conduit._errors import ConfigurationError
from conduit.engines.bandits import ClusterThompsonBandit, UCB1Bandit
from conduit.engines.bandits._cluster_thompson import (
    MAX_TAU,
    MIN_SPREAD,
    OFFSET_STRENGTH,
    SPREAD_PRIOR,
    SPREAD_STRENGTH,
)

CODE, PROSE, CHAT = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), np.array([0.7, 0.7, 1.0])


def bandit(**params: object) -> ClusterThompsonBandit:
    params.setdefault("warmup", 0)
    b = ClusterThompsonBandit(dim=3, seed=0, **params)  # type: ignore[arg-type]
    for arm in ("a", "b"):
        b.add_arm(arm)
    return b


def test_queries_join_the_nearest_cluster_or_open_one() -> None:
    b = bandit(threshold=0.9)
    assert b.cluster_of(CODE) == 0  # nothing learned: the first free cluster
    b.update("a", CODE, 1.0)
    assert b.cluster_of(2 * CODE) == 0  # the bias (last feature) is ignored, scale too
    assert b.cluster_of(PROSE) == 1  # cosine 0 < 0.9: a new cluster
    b.update("b", PROSE, 0.0)
    assert b.stats()["a"]["counts"].tolist()[:2] == [1.0, 0.0]
    assert b.cluster_of(CHAT) == 2  # cosine 0.71 to each: below 0.9
    b.threshold = 0.7
    assert b.cluster_of(CHAT) == 0  # within 0.7 of both: the nearest (the first of a tie)
    full = bandit(clusters=1)
    full.update("a", CODE, 1.0)
    assert full.cluster_of(PROSE) == 0  # no free cluster left: the nearest


def test_posterior_is_shrinkage_to_the_models_mean_plus_the_clusters_offset() -> None:
    b = bandit(prior_strength=2.0, prior_mean=0.4)
    data = [
        ("a", CODE, 1.0),
        ("a", CODE, 1.0),
        ("a", PROSE, 0.0),
        ("b", CODE, 0.0),
        ("b", PROSE, 1.0),
    ]
    for arm, x, r in data:
        b.update(arm, x, r)
    mean, var = b.posterior(CODE)
    # By hand, cluster 0 (CODE): a has 2 of 2, b 0 of 1; overall a 2 of 3, b 1 of 2.
    mu = np.array([(2 + 2 * 0.4) / (3 + 2), (1 + 2 * 0.4) / (2 + 2)])
    n, s = np.array([2.0, 1.0]), np.array([2.0, 0.0])
    delta = (s - n * mu).sum() / (n.sum() + OFFSET_STRENGTH)
    prior = mu + delta
    excess = (s / n - prior) ** 2 - prior * (1 - prior) / n
    spread = ((n * excess).sum() + SPREAD_STRENGTH * SPREAD_PRIOR) / (n.sum() + SPREAD_STRENGTH)
    level = (3 + 2 * 0.4) / (5 + 2) + delta
    tau = min(level * (1 - level) / max(spread, MIN_SPREAD), MAX_TAU)
    expected = (s + tau * prior) / (n + tau)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    mu_var = mu * (1 - mu) / (np.array([3.0, 2.0]) + 2)
    expected_var = expected * (1 - expected) / (n + tau) + (tau / (n + tau)) ** 2 * mu_var
    np.testing.assert_allclose(var, expected_var, rtol=1e-12)


def test_a_cluster_where_models_rank_alike_follows_the_global_ranking() -> None:
    b = bandit()
    rng = np.random.default_rng(1)
    for _ in range(400):  # a slightly better than b, everywhere
        for x in (CODE, PROSE):
            b.update("a", x, float(rng.random() < 0.6))
            b.update("b", x, float(rng.random() < 0.5))
    mean, _ = b.posterior(CODE)
    assert mean[0] > mean[1]


def test_a_cluster_with_its_own_best_model_learns_it() -> None:
    b = bandit()
    rng = np.random.default_rng(2)
    for _ in range(300):  # a is good at code, b at prose
        b.update("a", CODE, float(rng.random() < 0.8))
        b.update("b", CODE, float(rng.random() < 0.2))
        b.update("a", PROSE, float(rng.random() < 0.3))
        b.update("b", PROSE, float(rng.random() < 0.7))
    picks = [b.arms[b.choose(x, [0, 1], np.zeros(2)).index] for x in (CODE, PROSE)]
    assert picks == ["a", "b"]


def test_draws_are_normal_around_the_mean_scaled_by_scale() -> None:
    b = bandit(scale=0.5)
    for r in (1.0, 0.0, 1.0):
        b.update("a", CODE, r)
    _, var = b.posterior(CODE)
    noise = np.array([b.choose(CODE, [0], np.zeros(1)).noise[0] for _ in range(4000)])
    z = noise / (0.5 * np.sqrt(var[0]))
    assert abs(z.mean()) < 0.1
    assert abs(z.std() - 1.0) < 0.05


def test_the_first_feedbacks_decide_by_ucb1_on_the_overall_means() -> None:
    b, ucb1 = bandit(warmup=6, c=0.7), UCB1Bandit(c=0.7, seed=0)
    ucb1.add_arm("a")
    ucb1.add_arm("b")
    for arm, x, r in [("a", CODE, 1.0), ("b", PROSE, 0.0), ("a", PROSE, 0.5)]:
        b.update(arm, x, r)
        ucb1.update(arm, x, r)
    assert b.phase == "ucb1"
    ours, theirs = b.choose(CODE, [0, 1], np.zeros(2)), ucb1.choose(CODE, [0, 1], np.zeros(2))
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.exploration, theirs.exploration, rtol=1e-12)
    for _ in range(3):
        b.update("b", CODE, 1.0)
    assert b.phase == "cluster_thompson"
    assert np.all(b.choose(CODE, [0, 1], np.zeros(2)).exploration == 0.0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"clusters": 0}, "clusters must be an int >= 1"),
        ({"threshold": 1.5}, "threshold"),
        ({"scale": 0.0}, "scale must be a positive number"),
        ({"warmup": -1}, "warmup must be an int >= 0"),
        ({"c": 0.0}, "c must be a positive number"),
        ({"prior_mean": 1.0}, "strictly between 0 and 1"),
        ({"prior_strength": -1.0}, "prior_strength must be a positive number"),
    ],
)
def test_bad_params_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClusterThompsonBandit(dim=3, **params)  # type: ignore[arg-type]
