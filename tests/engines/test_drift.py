"""Change over time: a model that changes under its name is noticed and re-routed around."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conduit._errors import ConfigurationError, StateError
from conduit.engines._drift import KEEP, DriftDetector, keep_factor
from conduit.engines.router import Router

N = 3000


def _stream(drift: bool, *, seed: int, change: bool, n: int = N) -> tuple[list[str], Router]:
    """Two models with 0/1 quality: ``a`` 0.8 and ``b`` 0.7; with ``change``, ``a`` drops
    to 0.5 at halfway."""
    router = Router(
        models=["a", "b"],
        bandit_algorithm="hybrid",
        embedding_backend="hashing",
        seed=seed,
        preferences="quality",
        drift_detection=drift,
    )
    rng = np.random.default_rng(seed)
    chosen = []
    for t in range(n):
        d = router.route_sync(f"query {rng.integers(1000)}")
        p = {"a": 0.5 if change and t >= n // 2 else 0.8, "b": 0.7}[d.selected_model]
        router.update_sync(d.decision_id, quality=float(rng.random() < p), cost=0.001)
        chosen.append(d.selected_model)
    return chosen, router


def _recovered(chosen: list[str]) -> int | None:
    """Queries after halfway until fewer than half of the last 100 went to ``a``."""
    half = len(chosen) // 2
    a = np.array([m == "a" for m in chosen], dtype=float)
    for t in range(half + 10, len(chosen) + 1):
        if a[max(half, t - 100) : t].mean() < 0.5:
            return t - half
    return None


@pytest.mark.parametrize("seed", [0, 1])
def test_a_quality_drop_is_rerouted_within_a_few_hundred_queries(seed: int) -> None:
    chosen, router = _stream(True, seed=seed, change=True)
    assert np.mean([m == "a" for m in chosen[N // 2 - 500 : N // 2]]) > 0.9
    steps = _recovered(chosen)
    assert steps is not None and steps <= 300
    assert router.drift is not None and router.drift.alarms()["a"]["quality"] >= 1
    # without detection the router takes far longer (the old mean weighs 1,500 outcomes)
    off, _ = _stream(False, seed=seed, change=True)
    slow = _recovered(off)
    assert slow is None or slow > 2 * steps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stationary_stream_raises_no_false_alarm(seed: int) -> None:
    _, router = _stream(True, seed=seed, change=False)
    assert router.drift is not None
    assert all(v == 0 for a in router.drift.alarms().values() for v in a.values())


def test_a_price_change_is_noticed_and_the_cost_estimate_follows() -> None:
    router = Router(models=["a"], bandit_algorithm="ucb1", seed=0, embedding_backend="hashing")
    for t in range(1200):
        d = router.route_sync("same prompt")
        router.update_sync(d.decision_id, quality=1.0, cost=0.001 if t < 600 else 0.003)
    assert router.drift is not None and 1 <= router.drift.alarms()["a"]["cost"] <= 3
    assert router.stats().models["a"].mean_cost == pytest.approx(0.003, rel=0.05)


def test_a_forget_keeps_a_weak_prior() -> None:
    assert keep_factor(1000.0, KEEP["quality"]) == pytest.approx(KEEP["quality"] / 1000.0)
    assert keep_factor(1.0, KEEP["quality"]) == 1.0


def test_detector_state_round_trips_through_the_router_state(tmp_path: Path) -> None:
    _, router = _stream(True, seed=0, change=True, n=1200)
    saved = router.save(tmp_path / "state.json")
    json.loads(saved.read_text())  # plain JSON
    restored = Router(
        models=["a", "b"],
        bandit_algorithm="hybrid",
        embedding_backend="hashing",
        state_path=saved,
    ).start()
    assert restored.drift is not None and router.drift is not None
    assert restored.drift.alarms() == router.drift.alarms()
    np.testing.assert_array_equal(
        restored.drift.state_dict()["state"], router.drift.state_dict()["state"]
    )


def test_a_router_without_detection_saves_none_and_loads_an_old_state(tmp_path: Path) -> None:
    off = Router(models=["a", "b"], bandit_algorithm="ucb1", drift_detection=False)
    assert off.drift is None and "drift" not in off.state_dict()
    on = Router(models=["a", "b"], bandit_algorithm="ucb1")
    on.load_state_dict(off.state_dict())  # saved before detection existed: starts fresh
    assert on.drift is not None and on.drift.models == ("a", "b")


def test_models_added_and_removed_are_watched_or_dropped() -> None:
    router = Router(models=["a", "b"], bandit_algorithm="ucb1")
    router.add_model("c")
    router.remove_model("a")
    assert router.drift is not None and router.drift.models == ("b", "c")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"threshold": 0}, "threshold"),
        ({"slack": -1.0}, "slack"),
        ({"warmup": 0}, "warmup"),
        ({"memory": "x"}, "memory"),
    ],
)
def test_bad_detector_settings_are_refused(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        DriftDetector(**kwargs)


def test_drift_detection_must_be_a_bool_or_a_detector() -> None:
    with pytest.raises(ConfigurationError, match="drift_detection"):
        Router(models=["a"], drift_detection="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(version=2),
        lambda s: s.update(state=[[[math.nan] * 6] * 2]),
        lambda s: s.update(state=[[[-1.0] * 6] * 2]),
        lambda s: s.update(models="a"),
        lambda s: s.update(state=[[1.0]]),
    ],
)
def test_a_malformed_detector_state_is_refused(mutate: Any) -> None:
    d = DriftDetector()
    d.add_model("a")
    state = d.state_dict()
    state["state"] = state["state"].tolist()
    mutate(state)
    with pytest.raises(StateError):
        d.load_state_dict(state)
