"""The arithmetic of statistics and the snapshot format, independent of any backend."""

from __future__ import annotations

import numpy as np
import pytest

from conduit._errors import StateError
from conduit.engines.bandits import make_bandit
from conduit.stores import Meta, Snapshot
from conduit.stores._base import add_sums, as_sums, is_zero, prompt_hash, subtract_sums

from .test_contract import META, delta


def test_add_then_subtract_gives_back_the_original() -> None:
    a, b = delta(2.0, arm="x"), add_sums(delta(3.0, arm="x"), delta(1.0, arm="y"))
    both = add_sums(a, b)
    back = subtract_sums(both, b)
    np.testing.assert_allclose(back["bandit"]["x"]["A"], a["bandit"]["x"]["A"])
    assert is_zero({p: {"y": arms["y"]} for p, arms in back.items() if arms})


def test_arms_missing_on_one_side_count_as_zero_and_can_be_filtered() -> None:
    result = subtract_sums(delta(1.0, arm="x"), delta(1.0, arm="y"))
    np.testing.assert_allclose(result["bandit"]["y"]["A"], -np.eye(2))
    assert sorted(
        subtract_sums(delta(1.0, arm="x"), delta(1.0, arm="y"), arms=["x"])["bandit"]
    ) == ["x"]


@pytest.mark.parametrize(
    ("other", "pattern"),
    [
        ({"bandit": {"openai/gpt-4o": {"A": np.eye(2)}}, "outcomes": {}}, "have keys"),
        (
            {
                "bandit": {"openai/gpt-4o": {"A": np.eye(3), "b": np.zeros(2), "n": np.array(0.0)}},
                "outcomes": {},
            },
            "has shape",
        ),
    ],
)
def test_mismatched_statistics_are_refused(other: dict, pattern: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(StateError, match=pattern):
        add_sums(delta(1.0), other)


def test_a_snapshot_round_trips_exactly() -> None:
    sums = add_sums(delta(1.0 / 3.0), delta(np.pi, arm="z"))
    snap = Snapshot(META, sums, revision=7, updated=12.5, replicas={"r": (3, 11.0)})
    back = Snapshot.decode(snap.encode(), "test")
    assert (back.meta, back.revision, back.updated, back.replicas) == (
        META,
        7,
        12.5,
        {"r": (3, 11.0)},
    )
    for arm, stats in sums["bandit"].items():
        for key, value in stats.items():
            assert back.sums["bandit"][arm][key].shape == np.shape(value)
            np.testing.assert_array_equal(back.sums["bandit"][arm][key], value)  # exact


def test_router_statistics_convert_for_every_policy() -> None:
    for name in ("linucb", "hybrid", "thompson", "ucb1"):
        bandit = make_bandit(name, dim=3, seed=0)
        bandit.add_arm("m")
        bandit.update("m", np.ones(3), 1.0)
        sums = as_sums(bandit.stats(), {"m": {"decisions": 1.0}})
        bandit.merge(sums["bandit"])  # a router accepts what the store holds
        assert float(np.sum(bandit.feedback_counts())) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"algorithm": "ucb1"}, "algorithm='linucb'"),
        ({"features": "none"}, "features='hashing:64'"),
        ({"dim": 1}, "dim=2"),
    ],
)
def test_meta_check_names_what_differs(kwargs: dict[str, object], pattern: str) -> None:
    other = Meta(**{"algorithm": "linucb", "features": "hashing:64", "dim": 2, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(StateError, match=pattern):
        other.check(META, "here")
    META.check(Meta(algorithm="linucb", features="hashing:64", dim=2, params={"alpha": 9}), "here")


def test_prompt_hash_is_sha256() -> None:
    assert prompt_hash("hi") == "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
