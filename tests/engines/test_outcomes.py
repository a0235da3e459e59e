"""Per-model cost, latency and quality sums: predictions, additivity and state."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from conduit._errors import DuplicateModelError, StateError, UnknownModelError
from conduit._state import decode, encode
from conduit.engines._outcomes import DEFAULT_OUTPUT_TOKENS, KEYS, OutcomeStats, Price


def filled(
    events: list[tuple[str, dict[str, float]]], models: tuple[str, ...] = ("a", "b")
) -> OutcomeStats:
    stats = OutcomeStats()
    for m in models:
        stats.add_model(m)
    for model, values in events:
        stats.add(model, **values)
    return stats


EVENTS = [
    (
        "a",
        {
            "decisions": 1,
            "quality_n": 1,
            "quality_sum": 0.8,
            # what record_cost(0.02, tokens=100) adds (tokens in thousands)
            "cost_n": 1,
            "cost_sum": 0.02,
            "cost_tokens": 0.1,
            "cost_tokens2": 0.01,
            "cost_cross": 0.002,
        },
    ),
    (
        "a",
        {
            "decisions": 1,
            "cost_n": 1,
            "cost_sum": 0.06,
            "cost_tokens": 0.3,
            "cost_tokens2": 0.09,
            "cost_cross": 0.018,
        },
    ),
    ("b", {"decisions": 1, "latency_n": 1, "latency_sum": 2.5}),
    ("b", {"quality_n": 1, "quality_sum": 0.4, "latency_n": 1, "latency_sum": 1.5}),
]


def test_means_per_model_and_nan_where_nothing_was_seen() -> None:
    stats = filled(EVENTS)
    np.testing.assert_allclose(stats.mean("quality"), [0.8, 0.4])
    np.testing.assert_allclose(stats.mean("cost"), [0.04, np.nan])
    np.testing.assert_allclose(stats.mean("latency"), [np.nan, 2.0])
    np.testing.assert_array_equal(stats.column("decisions"), [2, 1])


def test_predicted_cost_is_the_least_squares_line_in_prompt_tokens() -> None:
    stats = filled(EVENTS)  # a: $0.02 at 100 tokens, $0.06 at 300: $0.0002 a token
    costs = stats.predicted_costs(50.0)
    assert costs[0] == pytest.approx(50.0 * 0.0002)
    assert np.isnan(costs[1]), "no price and no observed cost: unknown"


def test_record_cost_adds_the_sums_of_the_line() -> None:
    stats = OutcomeStats()
    stats.add_model("a")
    stats.record_cost("a", 0.02, tokens=100.0)
    stats.record_cost("a", 0.06, tokens=300.0)
    assert stats.stats()["a"] == pytest.approx(
        filled(EVENTS).stats()["a"] | {"decisions": 0.0, "quality_n": 0.0, "quality_sum": 0.0}
    )


def test_a_long_answer_is_a_fixed_cost_not_a_rate() -> None:
    stats = OutcomeStats()
    stats.add_model("chat")
    for tokens in (5.0, 20.0, 80.0, 400.0):  # the answer dominates: ~$0.01 whatever the prompt
        stats.record_cost("chat", 0.01 + 1e-7 * tokens, tokens=tokens)
    short, long = stats.predicted_costs(10.0)[0], stats.predicted_costs(2000.0)[0]
    assert short == pytest.approx(0.01 + 1e-6, rel=1e-6)
    assert long == pytest.approx(0.01 + 2e-4, rel=1e-6), "not 200x the short prompt's cost"


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        ([(0.01, 100.0), (0.03, 100.0)], 0.02),  # one prompt length: the mean
        ([(0.05, 10.0), (0.01, 1000.0)], 0.03),  # cost falling with length: the mean
    ],
)
def test_degenerate_fits_fall_back_to_the_mean(
    observations: list[tuple[float, float]], expected: float
) -> None:
    stats = OutcomeStats()
    stats.add_model("a")
    for cost, tokens in observations:
        stats.record_cost("a", cost, tokens=tokens)
    assert stats.predicted_costs(500.0)[0] == pytest.approx(expected)


def test_a_known_price_is_used_first_and_observations_take_over() -> None:
    stats = OutcomeStats()
    price = Price(2e-6, 8e-6)
    stats.add_model("p", price)
    for tokens in (0.0, 100.0, 250.0, 4000.0):
        assert stats.predicted_costs(tokens)[0] == pytest.approx(price.predict(tokens))
    assert price.predict(100.0) == pytest.approx(2e-6 * 100 + 8e-6 * DEFAULT_OUTPUT_TOKENS)
    for _ in range(200):  # the deployment really costs twice its list price
        for tokens in (50.0, 500.0):
            stats.record_cost("p", 2 * price.predict(tokens), tokens=tokens)
    assert stats.predicted_costs(300.0)[0] == pytest.approx(2 * price.predict(300.0), rel=0.01)


def test_models_are_added_and_removed_without_touching_the_others() -> None:
    stats = filled(EVENTS)
    before = stats.stats()
    stats.add_model("c", Price(1e-6, 1e-6))
    assert stats.stats()["a"] == before["a"] and stats.stats()["b"] == before["b"]
    assert stats.stats()["c"] == dict.fromkeys(KEYS, 0.0)
    stats.remove_model("a")
    assert stats.models == ("b", "c")
    assert stats.stats()["b"] == before["b"]
    np.testing.assert_allclose(stats.mean("latency"), [2.0, np.nan])
    with pytest.raises(DuplicateModelError):
        stats.add_model("b")
    with pytest.raises(UnknownModelError):
        stats.remove_model("a")
    with pytest.raises(UnknownModelError):
        stats.add("a", decisions=1)


def test_merged_deltas_equal_one_store_that_saw_everything() -> None:
    everything = filled(EVENTS)
    left, right = filled(EVENTS[::2]), filled(EVENTS[1::2])
    left.merge(decode(encode({"d": right.stats()}))["d"])
    for model, sums in everything.stats().items():
        assert left.stats()[model] == pytest.approx(sums)
    empty = OutcomeStats()
    empty.merge(everything.stats())
    assert empty.models == ("a", "b") and empty.stats() == everything.stats()


@pytest.mark.parametrize(
    "delta",
    [
        {"a": {"decisions": 1.0}},
        {"a": {**dict.fromkeys(KEYS, 0.0), "decisions": float("nan")}},
        {"a": {**dict.fromkeys(KEYS, 0.0), "extra": 1.0}},
        {
            "a": dict.fromkeys(KEYS, 0.0),
            "b": {**dict.fromkeys(KEYS, 0.0), "cost_sum": float("inf")},
        },
    ],
)
def test_bad_delta_changes_nothing(delta: dict[str, Any]) -> None:
    stats = filled(EVENTS)
    before = stats.stats()
    with pytest.raises(StateError):
        stats.merge(delta)
    assert stats.stats() == before


def test_state_round_trip(assert_same_state: Any) -> None:
    stats = filled(EVENTS)
    stats.prices["b"] = Price(1e-6, 3e-6)
    restored = OutcomeStats()
    restored.load_state_dict(decode(encode({"o": stats.state_dict()}))["o"])
    assert_same_state(restored.state_dict(), stats.state_dict())
    np.testing.assert_array_equal(restored.predicted_costs(77.0), stats.predicted_costs(77.0))


def corrupt(change: Any) -> dict[str, Any]:
    state = filled(EVENTS).state_dict()
    state["prices"] = {"a": [1e-6, 2e-6]}
    change(state)
    return state


BAD_STATES = [
    corrupt(lambda s: s.update(keys=["decisions"])),
    corrupt(lambda s: s.update(models=["a"])),
    corrupt(lambda s: s.update(models=["a", "a"])),
    corrupt(lambda s: s.update(models="ab")),
    corrupt(lambda s: s.update(models=["a", 2])),
    corrupt(lambda s: s["sums"].__setitem__((0, 0), np.nan)),
    corrupt(lambda s: s.update(sums="many")),
    corrupt(lambda s: s.update(sums=None)),
    corrupt(lambda s: s.update(prices={"a": "free"})),
    corrupt(lambda s: s.update(prices={"a": [1e-6]})),
    corrupt(lambda s: s.update(prices={"a": [-1.0, 0.0]})),
    corrupt(lambda s: s.update(prices={"zzz": [1e-6, 1e-6]})),
    corrupt(lambda s: s.update(prices=[1, 2])),
    "not a state",
]


@pytest.mark.parametrize("state", BAD_STATES)
def test_bad_state_is_refused_and_changes_nothing(state: Any, assert_same_state: Any) -> None:
    stats = filled(EVENTS[:1], models=("a", "b", "c"))
    stats.prices["c"] = Price(1e-6, 1e-6)
    before = copy.deepcopy(stats.state_dict())
    with pytest.raises(StateError):
        stats.load_state_dict(state)
    assert_same_state(stats.state_dict(), before)
