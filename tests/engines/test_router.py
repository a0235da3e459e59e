"""The Router: bad input refused without side effects, feedback learned once, preferences,
constraints, model changes, persistence and the async API."""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from conduit import (
    ConduitError,
    ConfigurationError,
    Constraints,
    DuplicateModelError,
    InvalidFeedbackError,
    InvalidQueryError,
    NoModelAvailableError,
    Preferences,
    Query,
    Router,
    StateError,
    UnknownDecisionError,
    UnknownModelError,
)

MakeRouter = Callable[..., Router]
PRICES = {"cheap": (1e-7, 1e-7), "strong": (5e-6, 5e-6)}  # strong costs 50x as much


def force(router: Router, model: str, text: str = "a question?") -> str:
    """Route ``text`` to ``model`` (through an allow-list) and return the decision id."""
    decision = router.route_sync(text, constraints=Constraints(allowed_models=frozenset({model})))
    assert decision.selected_model == model
    return decision.decision_id


# -- construction ---------------------------------------------------------------------------

BAD_CONSTRUCTION: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
    ([], {}, ConfigurationError, "empty"),
    ("gpt-4o", {}, ConfigurationError, "list of model names"),
    (["a", "a"], {}, DuplicateModelError, "listed twice"),
    (["a", ""], {}, ConfigurationError, "non-empty str"),
    (["a", "  "], {}, ConfigurationError, "non-empty str"),
    (["a", 3], {}, ConfigurationError, "non-empty str"),
    (["a"], {"bandit_algorithm": "nope"}, ConfigurationError, "unknown bandit_algorithm"),
    (["a"], {"use_hybrid": True, "bandit_algorithm": "ucb1"}, ConfigurationError, "use_hybrid"),
    (["a"], {"prices": {"b": (1e-6, 1e-6)}}, UnknownModelError, "not in models"),
    (["a"], {"prices": {"a": (-1e-6, 1e-6)}}, ConfigurationError, "finite and >= 0"),
    (["a"], {"prices": {"a": (float("nan"), 1e-6)}}, ConfigurationError, "finite and >= 0"),
    (["a"], {"prices": {"a": "free"}}, ConfigurationError, r"\(input, output\)"),
    (["a"], {"bandit_params": {"bogus": 1}}, ConfigurationError, "bogus"),
    (
        ["a"],
        {"bandit_algorithm": "linucb", "bandit_params": {"alpha": -1}},
        ConfigurationError,
        "alpha",
    ),
    (["a"], {"pending_ttl": 0}, ConfigurationError, "pending_ttl"),
    (["a"], {"max_pending": 0}, ConfigurationError, "max_pending"),
    (["a"], {"max_explanations": -1}, ConfigurationError, "max_explanations"),
    (["a"], {"max_explanations": 1.5}, ConfigurationError, "max_explanations"),
]


@pytest.mark.parametrize(("models", "kwargs", "exc", "message"), BAD_CONSTRUCTION)
def test_bad_construction_is_refused(
    make_router: MakeRouter, models: Any, kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match=message) as info:
        make_router(models, **kwargs)
    assert isinstance(info.value, ConduitError)
    if issubclass(exc, ConfigurationError):
        assert isinstance(info.value, ValueError)
    if exc is UnknownModelError:
        assert isinstance(info.value, LookupError)


def test_use_hybrid_selects_the_hybrid_policy(make_router: MakeRouter) -> None:
    router = make_router(["a", "b"], use_hybrid=True, switch_after=2, seed=0)
    assert router.algorithm == "hybrid"
    assert router.stats().phase == "ucb1"
    for _ in range(2):
        d = router.route_sync("What is the capital of France?")
        router.update_sync(d.decision_id, quality=1.0)
    assert router.stats().phase == "linucb"
    assert router.route_sync("And of Spain?").algorithm == "linucb"


# -- bad input leaves the state untouched ---------------------------------------------------

BAD_ROUTES: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
    ("", {}, InvalidQueryError, "empty or only whitespace"),
    ("  \n\t ", {}, InvalidQueryError, "empty or only whitespace"),
    (None, {}, InvalidQueryError, "must be a str"),
    (42, {}, InvalidQueryError, "must be a str"),
    (b"bytes", {}, InvalidQueryError, "must be a str"),
    (["a", "list"], {}, InvalidQueryError, "must be a str"),
    ("hi", {"preferences": "fastest"}, InvalidQueryError, "unknown preference"),
    ("hi", {"preferences": 3}, InvalidQueryError, "unknown preference"),
    (
        "hi",
        {"constraints": Constraints(allowed_models=frozenset({"nope"}))},
        InvalidQueryError,
        "unknown model 'nope'",
    ),
    (
        "hi",
        {"constraints": Constraints(denied_models=frozenset({"nope"}))},
        InvalidQueryError,
        "unknown model 'nope'",
    ),
    (
        "hi",
        {"constraints": Constraints(denied_models=frozenset({"small", "large"}))},
        NoModelAvailableError,
        "in denied_models",
    ),
    (
        "hi",
        {"constraints": Constraints(max_cost=1.0)},
        NoModelAvailableError,
        "cost unknown",
    ),
    (
        "hi",
        {"constraints": Constraints(max_latency=1.0)},
        NoModelAvailableError,
        "latency unknown",
    ),
]


@pytest.mark.parametrize("algorithm", ["thompson", "linucb"])
@pytest.mark.parametrize(("text", "kwargs", "exc", "message"), BAD_ROUTES)
def test_bad_route_raises_and_changes_nothing(
    make_router: MakeRouter,
    assert_same_state: Any,
    algorithm: str,
    text: Any,
    kwargs: dict[str, Any],
    exc: type[Exception],
    message: str,
) -> None:
    router = make_router(bandit_algorithm=algorithm, seed=0)
    d = router.route_sync("warm up")
    router.update_sync(d.decision_id, quality=0.7)
    before, stats_before = router.state_dict(), router.stats()
    with pytest.raises(exc, match=message) as info:
        router.route_sync(text, **kwargs)
    if exc is InvalidQueryError:
        assert isinstance(info.value, ValueError)
    assert_same_state(router.state_dict(), before)
    assert router.stats() == stats_before


NAN, INF = float("nan"), float("inf")
BAD_UPDATES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"quality": NAN}, InvalidFeedbackError, "quality must be finite"),
    ({"quality": INF}, InvalidFeedbackError, "quality must be finite"),
    ({"quality": -INF}, InvalidFeedbackError, "quality must be finite"),
    ({"quality": -0.1}, InvalidFeedbackError, r"quality must be \[0, 1\]"),
    ({"quality": 1.5}, InvalidFeedbackError, r"quality must be \[0, 1\]"),
    ({"quality": True}, InvalidFeedbackError, "quality must be a number"),
    ({"quality": "0.9"}, InvalidFeedbackError, "quality must be a number"),
    ({"cost": -0.01}, InvalidFeedbackError, "cost must be >= 0"),
    ({"cost": NAN}, InvalidFeedbackError, "cost must be finite"),
    ({"cost": INF}, InvalidFeedbackError, "cost must be finite"),
    ({"cost": False}, InvalidFeedbackError, "cost must be a number"),
    ({"latency": -1.0}, InvalidFeedbackError, "latency must be >= 0"),
    ({"latency": NAN}, InvalidFeedbackError, "latency must be finite"),
    ({"latency": True}, InvalidFeedbackError, "latency must be a number"),
    ({"quality": 0.9, "cost": -1.0}, InvalidFeedbackError, "cost"),  # one bad part: none learned
    ({"quality": NAN, "cost": 0.001}, InvalidFeedbackError, "quality"),
    ({}, InvalidFeedbackError, "at least one"),
    (
        {"decision_id": "no-such-decision", "quality": 0.5},
        UnknownDecisionError,
        "no pending decision",
    ),
    ({"decision_id": "", "quality": 0.5}, InvalidFeedbackError, "non-empty str"),
    ({"decision_id": 17, "quality": 0.5}, InvalidFeedbackError, "non-empty str"),
]


@pytest.mark.parametrize("algorithm", ["thompson", "linucb"])
@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_UPDATES)
def test_bad_update_raises_and_changes_nothing(
    make_router: MakeRouter,
    assert_same_state: Any,
    algorithm: str,
    kwargs: dict[str, Any],
    exc: type[Exception],
    message: str,
) -> None:
    router = make_router(bandit_algorithm=algorithm, seed=0)
    d = router.route_sync("a question?")
    kwargs = dict(kwargs)
    decision_id = kwargs.pop("decision_id", d.decision_id)
    before, stats_before = router.state_dict(), router.stats()
    with pytest.raises(exc, match=message) as info:
        router.update_sync(decision_id, **kwargs)
    expected_base = LookupError if exc is UnknownDecisionError else ValueError
    assert isinstance(info.value, expected_base)
    assert_same_state(router.state_dict(), before)
    assert router.stats() == stats_before
    # Nothing was claimed either: the valid outcome is still learned in full.
    assert router.update_sync(d.decision_id, quality=0.5, cost=0.001, latency=0.2) == {
        "quality",
        "cost",
        "latency",
    }


def megabyte_prompt(filler: str) -> str:
    paragraph = filler.ljust(80) * 4
    body = "\n\n".join(itertools.repeat(paragraph, 3200))
    question = (
        "Now the real question, after all those examples: what is the derivative of "
        "x^2 + 3x with respect to x, and how does the power rule give it? Show each step, "
        "name the rule used at each step, and check the result by integrating it back. "
        "Finally, say where the tangent line of the curve at x = 1 crosses the y axis?"
    )
    assert len(question) > 256  # the focus takes this last paragraph alone
    return body + "\n\n" + question


def test_a_megabyte_prompt_routes_quickly_on_its_tail(make_router: MakeRouter) -> None:
    router = make_router(bandit_algorithm="linucb", seed=0)
    big = megabyte_prompt("Example: the quick brown fox jumps over the lazy dog, again and again.")
    other = megabyte_prompt("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eius.")
    assert len(big) == len(other) >= 1_000_000
    start = time.perf_counter()
    decision = router.route_sync(big)
    elapsed = time.perf_counter() - start
    assert decision.selected_model in router.models
    assert elapsed < 2.0
    # Features come from the end of the prompt: another megabyte of preamble changes nothing.
    np.testing.assert_array_equal(router.features(big), router.features(other))
    assert not np.array_equal(router.features(big), router.features(big[:20_000]))
    assert router.update_sync(decision.decision_id, quality=1.0) == {"quality"}


# -- feedback -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["thompson", "linucb", "hybrid", "cluster_thompson"])
def test_each_feedback_part_is_learned_once(
    make_router: MakeRouter, assert_same_state: Any, algorithm: str
) -> None:
    router = make_router(bandit_algorithm=algorithm, seed=0)
    d = router.route_sync("How do I sort a list in Python?")
    assert router.update_sync(d.decision_id, cost=0.002, latency=1.5) == {"cost", "latency"}
    after_cost = router.state_dict()
    assert router.update_sync(d.decision_id, cost=0.002) == frozenset()
    assert_same_state(router.state_dict(), after_cost)
    # Quality arriving after cost and latency is still learned, once.
    assert router.update_sync(d.decision_id, quality=0.8, cost=0.002) == {"quality"}
    after_quality = router.state_dict()
    model_stats = router.stats().models[d.selected_model]
    assert model_stats.feedback == 1
    assert model_stats.mean_quality == pytest.approx(0.8)
    assert model_stats.mean_cost == pytest.approx(0.002)
    assert model_stats.mean_latency == pytest.approx(1.5)
    for _ in range(3):
        assert router.update_sync(d.decision_id, quality=0.1, cost=1.0, latency=9.0) == frozenset()
    assert_same_state(router.state_dict(), after_quality)
    assert router.bandit.feedback_counts().sum() == 1


def test_oldest_pending_decision_is_forgotten_beyond_max_pending(make_router: MakeRouter) -> None:
    router = make_router(seed=0, max_pending=2)
    first, second, third = (router.route_sync(f"question {i}?") for i in range(3))
    with pytest.raises(UnknownDecisionError):
        router.update_sync(first.decision_id, quality=1.0)
    assert router.update_sync(second.decision_id, quality=1.0) == {"quality"}
    assert router.update_sync(third.decision_id, quality=1.0) == {"quality"}
    assert router.stats().pending == 2


def test_pending_decisions_do_not_expire_at_once(make_router: MakeRouter) -> None:
    """The TTL counts from the decision, whatever the machine's uptime (monotonic clock)."""
    router = make_router(seed=0, pending_ttl=30.0)
    d = router.route_sync("hello?")
    assert router.update_sync(d.decision_id, quality=1.0) == {"quality"}


# -- preferences and prices -----------------------------------------------------------------


def learned_cheap_and_strong(make_router: MakeRouter, **kwargs: Any) -> Router:
    router = make_router(["cheap", "strong"], seed=0, prices=PRICES, **kwargs)
    for i in range(300):
        text = f"question number {i}?"
        router.update_sync(force(router, "cheap", text), quality=0.3)
        router.update_sync(force(router, "strong", text), quality=0.95)
    return router


@pytest.mark.parametrize("algorithm", ["thompson", "ucb1", "linucb", "cluster_thompson"])
def test_preferences_change_the_choice_without_relearning(
    make_router: MakeRouter, algorithm: str
) -> None:
    router = learned_cheap_and_strong(make_router, bandit_algorithm=algorithm)
    learned = router.bandit.stats()
    picks = {
        pref: Counter(
            router.route_sync(f"question number {i}?", preferences=pref).selected_model
            for i in range(20)
        )
        for pref in ("balanced", "quality", "cost", "balanced")
    }
    assert picks["balanced"] == {"strong": 20}
    assert picks["quality"] == {"strong": 20}
    assert picks["cost"] == {"cheap": 20}
    after = router.bandit.stats()
    for model in ("cheap", "strong"):
        for key, value in learned[model].items():
            np.testing.assert_array_equal(after[model][key], value)


def test_custom_preferences_are_accepted(make_router: MakeRouter) -> None:
    router = learned_cheap_and_strong(make_router)
    stingy = Preferences(quality=1.0, cost=10.0, latency=0.0)
    assert router.route_sync("question number 1?", preferences=stingy).selected_model == "cheap"
    query = Query(text="question number 1?", preferences="quality")  # type: ignore[arg-type]
    assert router.route_sync(query).selected_model == "strong"


def test_known_prices_are_used_from_the_first_query(make_router: MakeRouter) -> None:
    router = make_router(["cheap", "strong"], seed=0, prices=PRICES)
    first = router.route_sync("hello?", preferences="cost")
    cheap_cost, strong_cost = first.scores["cheap"].cost, first.scores["strong"].cost
    assert cheap_cost is not None and strong_cost is not None
    assert strong_cost / cheap_cost == pytest.approx(50.0)
    picks = Counter(
        router.route_sync(f"q{i}?", preferences="cost").selected_model for i in range(30)
    )
    assert picks == {"cheap": 30}, "untrained, the price alone decides for a cost-minded query"
    limit = (cheap_cost + strong_cost) / 2
    only_cheap = Constraints(max_cost=limit)
    assert router.route_sync("hello?", constraints=only_cheap).selected_model == "cheap"

    unpriced = make_router(["cheap", "strong"], seed=0)
    picks = Counter(
        unpriced.route_sync(f"q{i}?", preferences="cost").selected_model for i in range(30)
    )
    assert len(picks) == 2, "without prices nothing tells the models apart"


def test_set_price_takes_effect_at_once(make_router: MakeRouter) -> None:
    router = make_router(["cheap", "strong"], seed=0)
    router.set_price("strong", (5e-6, 5e-6))
    router.set_price("cheap", (1e-7, 1e-7))
    picks = Counter(
        router.route_sync(f"q{i}?", preferences="cost").selected_model for i in range(20)
    )
    assert picks == {"cheap": 20}
    with pytest.raises(UnknownModelError):
        router.set_price("nope", (1e-6, 1e-6))
    with pytest.raises(ConfigurationError):
        router.set_price("cheap", (-1.0, 0.0))


# -- constraints ----------------------------------------------------------------------------


def test_constraints_are_never_violated(make_router: MakeRouter) -> None:
    models = ["m0", "m1", "m2", "m3"]
    prices = {m: (1e-7 * 4**i, 1e-7 * 4**i) for i, m in enumerate(models)}
    router = make_router(models, seed=1, prices=prices, bandit_algorithm="linucb")
    latency = {"m0": 0.5, "m1": 2.0, "m2": 1.0, "m3": 4.0}
    for m in models:
        router.update_sync(force(router, m), quality=0.5, latency=latency[m])
    text = "Summarise this paragraph in one sentence, please."
    scores = router.route_sync(text).scores
    cost = {m: scores[m].cost for m in models}
    assert all(c is not None for c in cost.values())

    rng = np.random.default_rng(0)
    cost_limits = [None, *(1.5 * c for c in cost.values() if c is not None)]
    latency_limits = [None, 0.7, 1.5, 3.0]
    refused = 0
    for _ in range(150):
        max_cost = cost_limits[rng.integers(len(cost_limits))]
        max_latency = latency_limits[rng.integers(len(latency_limits))]
        allowed = frozenset(m for m in models if rng.random() < 0.7) if rng.random() < 0.5 else None
        denied = frozenset(m for m in models if rng.random() < 0.25)
        c = Constraints(
            max_cost=max_cost,
            max_latency=max_latency,
            allowed_models=allowed,
            denied_models=denied,
        )
        feasible = {
            m
            for m in models
            if (allowed is None or m in allowed)
            and m not in denied
            and (c.max_cost is None or cost[m] <= c.max_cost)  # type: ignore[operator]
            and (c.max_latency is None or latency[m] <= c.max_latency)
        }
        if not feasible:
            with pytest.raises(NoModelAvailableError) as info:
                router.route_sync(text, constraints=c)
            for m in models:
                assert m in str(info.value), "the message says why each model was removed"
            refused += 1
        else:
            assert router.route_sync(text, constraints=c).selected_model in feasible
    assert 5 < refused < 145


def test_no_model_available_says_why(make_router: MakeRouter) -> None:
    router = make_router(["a", "b", "c"], seed=0, prices={"a": (1e-3, 1e-3)})
    c = Constraints(
        allowed_models=frozenset({"a", "b"}), denied_models=frozenset({"b"}), max_cost=1e-9
    )
    with pytest.raises(NoModelAvailableError) as info:
        router.route_sync("hello?", constraints=c)
    message = str(info.value)
    assert "a: predicted cost $" in message and "> max_cost" in message
    assert "b: in denied_models" in message
    assert "c: not in allowed_models" in message


# -- statistics -----------------------------------------------------------------------------


def test_stats_count_decisions_feedback_and_cost(make_router: MakeRouter) -> None:
    router = make_router(["a", "b"], seed=0, bandit_algorithm="ucb1")
    ids = {m: [force(router, m, f"q{m}{i}?") for i in range(n)] for m, n in (("a", 3), ("b", 2))}
    router.update_sync(ids["a"][0], quality=1.0, cost=0.01, latency=1.0)
    router.update_sync(ids["a"][1], quality=0.5, cost=0.03)
    router.update_sync(ids["b"][0], latency=3.0)
    stats = router.stats()
    assert (stats.algorithm, stats.phase) == ("ucb1", "ucb1")
    assert stats.total_decisions == 5 and stats.total_feedback == 2
    assert stats.total_cost == pytest.approx(0.04)
    assert stats.pending == 4  # ids["a"][0] has its whole outcome; the others wait for a part
    a, b = stats.models["a"], stats.models["b"]
    assert (a.decisions, a.feedback, b.decisions, b.feedback) == (3, 2, 2, 0)
    assert a.mean_quality == pytest.approx(0.75) and a.mean_cost == pytest.approx(0.02)
    assert a.mean_latency == pytest.approx(1.0) and b.mean_latency == pytest.approx(3.0)
    assert b.mean_quality is None and b.mean_cost is None


# -- models ---------------------------------------------------------------------------------


def test_adding_and_removing_models_keeps_the_others_learning(
    make_router: MakeRouter, assert_same_state: Any
) -> None:
    router = make_router(["a", "b", "c"], seed=0, bandit_algorithm="linucb")
    for i in range(10):
        for m, q in (("a", 0.9), ("b", 0.5), ("c", 0.1)):
            router.update_sync(
                force(router, m, f"question {i}?"), quality=q, cost=0.001, latency=1.0
            )
    stale = force(router, "b")
    policy, outcomes = router.bandit.stats(), router.stats().models

    router.add_model("d", price=(1e-6, 2e-6))
    assert router.models == ("a", "b", "c", "d")
    for m in ("a", "b", "c"):
        assert_same_state(router.bandit.stats()[m], policy[m])
        assert router.stats().models[m] == outcomes[m]
    assert router.stats().models["d"].decisions == 0
    assert (
        router.route_sync("hi?", constraints=Constraints(allowed_models=frozenset({"d"})))
        .scores["d"]
        .cost
    )

    router.remove_model("b")
    assert list(router.models) == ["a", "c", "d"]
    for m in ("a", "c"):
        assert_same_state(router.bandit.stats()[m], policy[m])
        assert router.stats().models[m] == outcomes[m]
    assert all(router.route_sync(f"q{i}?").selected_model != "b" for i in range(20))
    with pytest.raises(UnknownModelError, match="removed"):
        router.update_sync(stale, quality=1.0)


BAD_MODEL_CHANGES: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    ("add_model", ("a",), {}, DuplicateModelError),
    ("add_model", ("",), {}, ConfigurationError),
    ("add_model", (None,), {}, ConfigurationError),
    ("add_model", ("z",), {"price": (-1.0, 0.0)}, ConfigurationError),
    ("remove_model", ("nope",), {}, UnknownModelError),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "exc"), BAD_MODEL_CHANGES)
def test_bad_model_change_changes_nothing(
    make_router: MakeRouter,
    assert_same_state: Any,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: type[Exception],
) -> None:
    router = make_router(["a", "b"], seed=0)
    router.update_sync(force(router, "a"), quality=1.0)
    before = router.state_dict()
    with pytest.raises(exc):
        getattr(router, method)(*args, **kwargs)
    assert_same_state(router.state_dict(), before)
    assert router.models == ("a", "b")


def test_the_last_model_cannot_be_removed(make_router: MakeRouter) -> None:
    router = make_router(["a"], seed=0)
    with pytest.raises(ConfigurationError, match="last model"):
        router.remove_model("a")


# -- persistence ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["thompson", "linucb", "hybrid", "epsilon_greedy", "cluster_thompson"]
)
def test_save_and_load_round_trip(
    make_router: MakeRouter, assert_same_state: Any, tmp_path: Any, algorithm: str
) -> None:
    kwargs: dict[str, Any] = {"bandit_algorithm": algorithm, "seed": 3, "prices": PRICES}
    if algorithm == "hybrid":
        kwargs["switch_after"] = 10
    router = make_router(["cheap", "strong"], **kwargs)
    for i in range(25):
        d = router.route_sync(f"question {i}?")
        router.update_sync(
            d.decision_id, quality=0.9 if d.selected_model == "strong" else 0.4, cost=0.001
        )
    path = router.save(tmp_path / "state" / "router.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["router.json"], "no temp file is left"

    restored = make_router(["cheap", "strong"], **{**kwargs, "seed": 99})
    restored.load(path)
    assert_same_state(restored.state_dict(), router.state_dict())
    assert restored.stats().models == router.stats().models
    for i in range(15):
        a, b = router.route_sync(f"next {i}?"), restored.route_sync(f"next {i}?")
        assert (a.selected_model, a.propensity) == (b.selected_model, b.propensity)


def test_state_path_loads_at_start_and_saves_on_close(
    make_router: MakeRouter, tmp_path: Any
) -> None:
    path = tmp_path / "router.json"
    with make_router(["a", "b"], seed=0, state_path=path, autosave_every=1000) as router:
        router.update_sync(force(router, "a"), quality=1.0)
    assert path.exists()
    again = make_router(["a", "b"], seed=0, state_path=path)
    assert again.stats().models["a"].feedback == 1


BAD_LOADS: list[tuple[Callable[[dict[str, Any]], Any], str]] = [
    (lambda s: {**s, "algorithm": "ucb1"}, "learned by 'ucb1'"),
    (lambda s: {**s, "features": "other"}, "features"),
    (lambda s: {**s, "bandit": {**s["bandit"], "params": {"alpha": -1.0}}}, "parameters"),
    (lambda s: {**s, "bandit": None}, "policy state"),
    (lambda s: {**s, "outcomes": {**s["outcomes"], "models": ["cheap"]}}, "shape"),
    (lambda s: {**s, "outcomes": {**s["outcomes"], "prices": {"cheap": "free"}}}, "price"),
    (lambda s: {**s, "outcomes": {**s["outcomes"], "models": ["strong", "cheap"]}}, "disagree"),
]


@pytest.mark.parametrize(("corrupt", "message"), BAD_LOADS)
def test_a_mismatched_state_is_refused_and_changes_nothing(
    make_router: MakeRouter,
    assert_same_state: Any,
    corrupt: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    donor = make_router(["cheap", "strong"], seed=1, bandit_algorithm="linucb", prices=PRICES)
    donor.update_sync(force(donor, "strong"), quality=1.0)
    router = make_router(["cheap", "strong"], seed=0, bandit_algorithm="linucb")
    router.update_sync(force(router, "cheap"), quality=0.2)
    before = router.state_dict()
    with pytest.raises(StateError, match=message):
        router.load_state_dict(corrupt(donor.state_dict()))
    assert_same_state(router.state_dict(), before)


def test_a_tampered_file_is_refused(make_router: MakeRouter, tmp_path: Any) -> None:
    router = make_router(["a", "b"], seed=0)
    path = router.save(tmp_path / "router.json")
    path.write_text(path.read_text().replace('"a"', '"x"'))
    with pytest.raises(StateError, match="checksum"):
        make_router(["a", "b"], seed=0).load(path)


# -- async and decisions --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["thompson", "hybrid"])
async def test_async_twins_match_the_sync_ones(
    make_router: MakeRouter, assert_same_state: Any, algorithm: str
) -> None:
    sync = make_router(["a", "b", "c"], seed=4, bandit_algorithm=algorithm, switch_after=5)
    asyn = make_router(["a", "b", "c"], seed=4, bandit_algorithm=algorithm, switch_after=5)
    quality = {"a": 0.2, "b": 0.9, "c": 0.5}
    for i in range(20):
        text = f"question {i % 7}?"
        d1 = sync.route_sync(text, preferences="quality")
        d2 = await asyn.route(text, preferences="quality")
        assert (d1.selected_model, d1.propensity, d1.algorithm) == (
            d2.selected_model,
            d2.propensity,
            d2.algorithm,
        )
        assert d1.scores == d2.scores
        q = quality[d1.selected_model]
        assert sync.update_sync(d1.decision_id, quality=q) == await asyn.update(
            d2.decision_id, quality=q
        )
    assert_same_state(sync.state_dict(), asyn.state_dict())
    with pytest.raises(UnknownDecisionError):
        await asyn.update("nope", quality=1.0)
    with pytest.raises(InvalidQueryError):
        await asyn.route("   ")


@pytest.mark.parametrize(
    "algorithm", ["thompson", "linucb", "hybrid", "ucb1", "epsilon_greedy", "random"]
)
def test_decision_explains_itself(make_router: MakeRouter, algorithm: str) -> None:
    router = make_router(["a", "b", "c"], seed=0, bandit_algorithm=algorithm)
    for i in range(10):
        d = router.route_sync(f"question {i}?")
        assert 0.0 < d.propensity <= 1.0
        assert 0.0 <= d.confidence <= 1.0
        assert set(d.scores) == {"a", "b", "c"}
        assert d.selected_model in d.scores
        assert d.reason.startswith(f"{router.stats().phase}: best score")
        assert d.algorithm == router.stats().phase
        assert len(d.decision_id) >= 16
        router.update_sync(d.decision_id, quality=0.5)
    ids = {router.route_sync("same text?").decision_id for _ in range(5)}
    assert len(ids) == 5, "every decision has its own id"


def test_constraints_that_remove_models_are_in_the_decision(make_router: MakeRouter) -> None:
    router = make_router(["cheap", "strong", "other"], seed=0, prices=PRICES)
    decision = router.route_sync(
        "a question?",
        constraints=Constraints(denied_models=frozenset({"other"}), max_cost=1e-4),
    )
    assert decision.selected_model == "cheap"
    assert decision.excluded["other"] == "in denied_models"
    assert decision.excluded["strong"].startswith("predicted cost $")
    assert set(decision.scores) == {"cheap"}
    assert decision.reason.endswith("; 2 excluded by constraints")
    free = router.route_sync("a question?")
    assert free.excluded == {} and "excluded" not in free.reason


@pytest.mark.parametrize("algorithm", ["ucb1", "linucb", "thompson", "epsilon_greedy"])
def test_explain_gives_the_numbers_behind_each_recent_decision(
    make_router: MakeRouter, algorithm: str
) -> None:
    router = make_router(["a", "b", "c"], seed=1, bandit_algorithm=algorithm)
    explored = 0
    for i in range(40):
        d = router.route_sync(f"question {i}?", preferences="quality")
        e = router.explain(d.decision_id)
        assert (e.selected_model, e.scores, e.reason, e.propensity) == (
            d.selected_model,
            d.scores,
            d.reason,
            d.propensity,
        )
        assert e.preset == "quality" and e.exploring == d.exploring
        # Exploring: not the best by utility without its exploration (or sampled noise).
        greedy = {m: s.utility - s.exploration - s.noise for m, s in d.scores.items()}
        assert d.exploring == (greedy[d.selected_model] < max(greedy.values()) - 1e-12)
        assert d.exploit_model is not None
        assert d.exploit_model == d.selected_model or greedy[d.exploit_model] == max(
            greedy.values()
        )
        assert ("exploring" in d.reason) == d.exploring
        explored += d.exploring
        router.update_sync(d.decision_id, quality=1.0 if d.selected_model == "b" else 0.0)
    if algorithm != "linucb":  # (LinUCB's optimism can keep the greedy choice on top)
        assert explored > 0, "40 decisions with feedback explore at least once"


@pytest.mark.parametrize("algorithm", ["ucb1", "thompson", "hybrid"])
def test_reason_and_confidence_are_computed_only_when_read(
    make_router: MakeRouter, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conduit import _reward as reward

    router = make_router(["a", "b", "c"], seed=3, bandit_algorithm=algorithm)
    calls: list[int] = []
    real = reward.confidence

    def counting(*args: Any, **kwargs: Any) -> float:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reward, "confidence", counting)
    decisions = [router.route_sync(f"question {i}?") for i in range(20)]
    assert calls == [], "route() computed a confidence nobody read"
    d = decisions[7]
    confidence, reason = d.confidence, d.reason
    assert len(calls) == 1
    assert 0.0 <= confidence <= 1.0 and reason.startswith(f"{d.algorithm}: best score")
    # Read again, through explain(), or as JSON: the same values, computed once.
    e = router.explain(d.decision_id)
    assert (d.confidence, e.confidence, e.reason) == (confidence, confidence, reason)
    assert d.model_dump()["confidence"] == confidence and d.model_dump()["reason"] == reason
    assert len(calls) == 1
    # Unread decisions still serialise and compare with every field.
    other = decisions[3]
    dumped = type(other).model_validate_json(other.model_dump_json())
    assert dumped == other and dumped.reason == other.reason
    # The confidence depends on the decision, not on when (or whether) others were read.
    twin = make_router(["a", "b", "c"], seed=3, bandit_algorithm=algorithm)
    twins = [twin.route_sync(f"question {i}?") for i in range(20)]
    assert twins[7].confidence == confidence and twins[7].reason == reason


def test_sampled_noise_is_not_called_exploration(make_router: MakeRouter) -> None:
    router = make_router(["a", "b", "c"], seed=0, bandit_algorithm="thompson")
    d = router.route_sync("question?")
    assert all(s.exploration == 0.0 for s in d.scores.values())
    assert any(s.noise != 0.0 for s in d.scores.values())
    assert "exploration" not in d.reason
    text = router.explain(d.decision_id).format()
    assert "sampled noise" in text and "exploration" not in text
    ucb = make_router(["a", "b"], seed=0, bandit_algorithm="ucb1").route_sync("question?")
    assert all(s.noise == 0.0 for s in ucb.scores.values())
    assert "exploration" in ucb.reason


def test_explanations_are_bounded_and_unknown_ids_refused(make_router: MakeRouter) -> None:
    router = make_router(max_explanations=2)
    first, second, third = (router.route_sync(f"q{i}") for i in range(3))
    assert router.explain(third.decision_id).decision_id == third.decision_id
    assert router.explain(second.decision_id).decision_id == second.decision_id
    with pytest.raises(UnknownDecisionError, match="last 2 decisions"):
        router.explain(first.decision_id)
    with pytest.raises(UnknownDecisionError, match="non-empty str"):
        router.explain("")
    off = make_router(max_explanations=0)
    with pytest.raises(UnknownDecisionError):
        off.explain(off.route_sync("q").decision_id)


# -- reliability: arguments refused at the boundary, construction without I/O ---------------


@pytest.mark.parametrize(
    ("models", "kwargs", "pattern"),
    [
        (["a"], {"seed": -1}, "seed must be an int >= 0"),
        (["a"], {"seed": 1.5}, "seed must be an int >= 0"),
        (["a"], {"sync_interval": float("inf")}, "sync_interval"),
        (["a"], {"sync_interval": 1e-9}, "sync_interval"),
        (["a"], {"sync_interval": float("nan")}, "sync_interval"),
        (["a", "b\ud800"], {}, "lone surrogate"),
        (["a"], {"state_store": "ftp://x"}, "unknown state store scheme"),
        (["a"], {"state_store": "memory://?history_max=-1"}, "history_max"),
    ],
)
def test_bad_arguments_are_configuration_errors(
    models: list[str], kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        Router(models, bandit_algorithm="ucb1", **kwargs)


def test_a_surrogate_model_name_is_refused_when_added() -> None:
    router = Router(["a"], bandit_algorithm="ucb1")
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        router.add_model("b\udfff")
    assert router.models == ("a",)


@pytest.mark.parametrize(
    "kwargs",
    [{"quality": 2**1024}, {"cost": 2**2000}, {"latency": 2**1100}, {"cost": -(2**1100)}],
)
def test_an_outcome_beyond_floats_range_is_invalid_feedback(kwargs: dict[str, Any]) -> None:
    router = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    decision = router.route_sync("hi")
    with pytest.raises(InvalidFeedbackError):
        router.update_sync(decision.decision_id, **kwargs)
    assert router.stats().total_feedback == 0
    assert router.update_sync(decision.decision_id, quality=1.0) == {"quality"}  # nothing spent


def test_construction_does_no_io_and_start_loads(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not a state", encoding="utf-8")
    router = Router(["a", "b"], bandit_algorithm="ucb1", state_path=path)  # reads nothing
    with pytest.raises(StateError):
        router.start()
    good = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    good.update_sync(force(good, "a"), quality=1.0)
    good.save(path)
    with Router(["a", "b"], bandit_algorithm="ucb1", state_path=path) as loaded:
        assert loaded.stats().models["a"].feedback == 1


def test_route_starts_a_router_that_was_not_started(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    saved = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    saved.update_sync(force(saved, "a"), quality=1.0)
    saved.save(path)
    router = Router(["a", "b"], bandit_algorithm="ucb1", state_path=path)
    router.route_sync("hello")
    assert router.stats().models["a"].feedback == 1


async def test_async_with_starts_and_closes(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    async with Router(["a", "b"], bandit_algorithm="ucb1", state_path=path, seed=0) as router:
        decision = await router.route("hi")
        await router.update(decision.decision_id, quality=1.0)
    assert path.exists()  # close() saved


def test_the_models_given_win_over_a_saved_state(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    saved = Router(["m-a", "m-b"], bandit_algorithm="ucb1", seed=0)
    for _ in range(3):
        saved.update_sync(force(saved, "m-a"), quality=1.0)
        saved.update_sync(force(saved, "m-b"), quality=0.0)
    saved.save(path)
    caplog.set_level("INFO", logger="conduit.router")
    router = Router(["m-a", "gpt-new"], bandit_algorithm="ucb1", state_path=path).start()
    assert set(router.models) == {"m-a", "gpt-new"}
    stats = router.stats().models
    assert stats["m-a"].feedback == 3 and stats["gpt-new"].feedback == 0
    assert "m-b" not in stats
    said = [r.getMessage() for r in caplog.records if "restored state" in r.getMessage()]
    assert len(said) == 1 and "gpt-new" in said[0] and "m-b" in said[0]
    # The new model is tried: an untried arm is chosen before the known one.
    assert router.route_sync("hello").selected_model == "gpt-new"


def test_closing_a_router_never_started_leaves_its_state_file(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    saved = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    saved.update_sync(force(saved, "a"), quality=1.0)
    saved.save(path)
    Router(["a", "b"], bandit_algorithm="ucb1", state_path=path).close()
    with Router(["a", "b"], bandit_algorithm="ucb1", state_path=path) as again:
        assert again.stats().models["a"].feedback == 1


def test_saving_a_router_never_started_keeps_what_its_file_held(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    saved = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    saved.update_sync(force(saved, "a"), quality=1.0)
    saved.save(path)
    Router(["a", "b"], bandit_algorithm="ucb1", state_path=path).save()
    with Router(["a", "b"], bandit_algorithm="ucb1", state_path=path) as again:
        assert again.stats().models["a"].feedback == 1
