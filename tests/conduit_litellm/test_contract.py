"""The strategy and the proxy plugin: one table of cases, the same outcome from both."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import litellm
import numpy as np
import pytest

from conduit import ConfigurationError, Preferences
from conduit._types import PRESETS
from conduit_litellm import ConduitRoutingPlugin, ConduitRoutingStrategy, _compat

pytestmark = [
    pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning"),
    pytest.mark.usefixtures("restore_litellm"),
]

MODEL_LIST = [
    {
        "model_name": "chat",
        "model_info": {"id": "mini"},
        "litellm_params": {"model": "gpt-4o-mini", "mock_response": "Paris."},
    },
    {
        "model_name": "chat",
        "model_info": {"id": "4o"},
        "litellm_params": {"model": "gpt-4o", "mock_response": "Paris."},
    },
]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
BASE = {"embedding_backend": "hashing", "seed": 0}


def plugins_supported() -> bool:
    return _compat.has_registry(litellm.Router(model_list=copy.deepcopy(MODEL_LIST[:1])))


class Driver:
    """One integration behind LiteLLM, as a user calls it."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        if kind == "strategy":
            self.integration: Any = ConduitRoutingStrategy(**BASE, **kwargs)
            self.router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), num_retries=0)
            ConduitRoutingStrategy.setup_strategy(self.router, self.integration)
        else:
            if not plugins_supported():
                pytest.skip("this LiteLLM has no routing plugins")
            self.integration = ConduitRoutingPlugin(**BASE, **kwargs)
            self.router = litellm.Router(
                model_list=copy.deepcopy(MODEL_LIST), num_retries=0, plugins=[self.integration]
            )
            self.integration.bind(self.router)

    async def preferences(self, metadata: dict[str, Any]) -> Preferences:
        """The preferences Conduit routed one request under."""
        response = await self.router.acompletion(model="chat", messages=MESSAGES, metadata=metadata)
        conduit = self.integration.conduit_router
        decision = self.integration.feedback.decision_for(response)
        return conduit.explain(decision).preferences

    async def refused(self, metadata: dict[str, Any]) -> None:
        """Ask Conduit itself to route a request LiteLLM 1.74.9 cannot even log: its router
        formats the request's kwargs into a debug line first, which a value nested a
        thousand levels deep breaks before any strategy is asked."""
        if self.kind == "strategy":
            await self.integration.async_get_available_deployment(
                "chat", MESSAGES, request_kwargs={"metadata": metadata}
            )
        else:
            await self.preferences(metadata)

    async def algorithm(self) -> str:
        await self.router.acompletion(model="chat", messages=MESSAGES)
        return str(self.integration.conduit_router.algorithm)

    def close(self) -> None:
        self.integration.cleanup()


@pytest.fixture(params=["strategy", "plugin"])
def drive(request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Driver] = []

    def make(**kwargs: Any) -> Driver:
        driver = Driver(request.param, **kwargs)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"quality": value}
    return value


WEIGHTS = {"quality": 1.0, "cost": 3.0, "latency": 0.0}
REQUEST_CASES: list[tuple[str, Any, Any]] = [
    # (case, metadata conduit_preferences, the preferences routed under or the error's text)
    ("none: the configured ones", None, PRESETS["balanced"]),
    ("a preset", "cost", PRESETS["cost"]),
    ("a dict of weights", WEIGHTS, Preferences(**WEIGHTS)),
    ("an unknown preset", "cheapest", "unknown preference 'cheapest'"),
    ("a list", [1, 2], "use a preset name"),
    ("a weight that is not a number", {"quality": "x"}, "weights must be numbers"),
    ("nested a thousand levels", nested(1000), "weights must be numbers"),
    ("a budget", {"budget": 0.2}, Preferences(budget=0.2)),
    ("a budget in USD", {"budget_usd": 0.002}, Preferences(budget_usd=0.002)),
    ("a quality floor", {"quality_floor": 0.95}, Preferences(quality_floor=0.95)),
    ("a budget above 1", {"budget": 1.5}, "budget: Input should be less than or equal to 1"),
    ("two targets", {"budget": 0.2, "quality_floor": 0.9}, "at most one target"),
    ("a floor that is not a number", {"quality_floor": "high"}, "weights must be numbers"),
]


@pytest.mark.parametrize(
    ("case", "wanted", "expected"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES]
)
async def test_request_preferences(drive: Any, case: str, wanted: Any, expected: Any) -> None:
    driver = drive(bandit_algorithm="random")
    metadata = {} if wanted is None else {"conduit_preferences": wanted}
    if isinstance(expected, Preferences):
        assert await driver.preferences(metadata) == expected
    else:
        ask = driver.refused if case == "nested a thousand levels" else driver.preferences
        with pytest.raises(litellm.BadRequestError, match=expected) as raised:
            await ask(metadata)
        assert raised.value.status_code == 400


SETUP_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"bandit_algorithm": "linucbb"}, r"bandit_algorithm must be one of \[.*'linucb'"),
    ({"use_hybrid": True, "bandit_algorithm": "ucb1"}, "use_hybrid=True contradicts"),
    ({"use_hybrid": "yes"}, "use_hybrid must be True, False or None"),
    ({"preferences": "cheapest"}, "preferences: unknown preference 'cheapest'"),
    ({"preferences": {"budget": 0}}, "preferences: Preferences.budget: .*greater than 0"),
    ({"preferences": {"quality_floor": 1.2}}, "quality_floor: .*less than or equal to 1"),
    ({"preferences": {"quality_floor": "high"}}, "quality_floor: Input should be a valid number"),
    ({"preferences": {"budget": 0.2, "budget_usd": 0.01}}, "at most one target"),
    ({"state_store": "sqlit:///x.db"}, "state_store: unknown scheme 'sqlit'"),
    (
        {"router_options": {"state_store": "sqlit:///x.db"}},
        r"router_options\['state_store'\]: unknown scheme 'sqlit'",
    ),
    ({"embedding_backend": "bert"}, "embedding_backend: Input should be 'auto'"),
]


@pytest.mark.parametrize(("kwargs", "pattern"), SETUP_ERRORS)
@pytest.mark.parametrize("cls", [ConduitRoutingStrategy, ConduitRoutingPlugin])
def test_setup_errors(cls: type[Any], kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        cls(**kwargs)


ALGORITHM_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "hybrid"),
    ({"use_hybrid": True}, "hybrid"),
    ({"use_hybrid": False}, "thompson"),
    ({"bandit_algorithm": "linucb"}, "linucb"),  # a named algorithm wins over the default
    ({"use_hybrid": False, "bandit_algorithm": "ucb1"}, "ucb1"),
]


@pytest.mark.parametrize(("kwargs", "algorithm"), ALGORITHM_CASES)
async def test_algorithm(drive: Any, kwargs: dict[str, Any], algorithm: str) -> None:
    assert await drive(**kwargs).algorithm() == algorithm


async def test_settings_from_the_environment(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_PREFERENCES", '{"quality": 1.0, "cost": 3.0, "latency": 0.0}')
    monkeypatch.setenv("CONDUIT_BANDIT_ALGORITHM", "random")
    driver = drive()
    assert await driver.preferences({}) == Preferences(**WEIGHTS)
    assert driver.integration.settings.bandit_algorithm == "random"


# Targets through LiteLLM: the same two deployments, known qualities (the strong one 0.9,
# the mini 0.6, told back per response) and LiteLLM's own costs for the mock answers.
QUALITY = {"mini": 0.6, "4o": 0.9}


async def serve(
    driver: Driver, n: int, metadata: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, float]]:
    """Send ``n`` requests and feed back each answer's quality: the deployments chosen,
    and what one answer of each cost (LiteLLM's price of the mock answer)."""
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER as worker
    except ImportError:  # LiteLLM before the logging worker: callbacks are plain tasks
        worker = None
    chosen, cost = [], {}
    for _ in range(n):
        response = await driver.router.acompletion(
            model="chat", messages=MESSAGES, metadata=dict(metadata or {})
        )
        deployment = response._hidden_params["model_id"]
        cost[deployment] = response._hidden_params["response_cost"]
        driver.integration.record_feedback(response, quality=QUALITY[deployment])
        chosen.append(deployment)
        if worker is not None:
            await worker.flush()  # Conduit learns the cost from LiteLLM's success event
        else:
            await asyncio.sleep(0)
    return chosen, cost


async def test_a_configured_budget_is_met_and_a_per_request_floor_overrides_it(
    drive: Any,
) -> None:
    driver = drive(preferences={"budget": 0.3, "latency": 0.0})
    chosen, cost = await serve(driver, 600)
    assert 0 < cost["mini"] < 0.2 * cost["4o"]
    # The optimum spends the budget exactly: the strong deployment on a share p with
    # p * c4o + (1 - p) * cmini = 0.3 * c4o.
    optimum = (0.3 * cost["4o"] - cost["mini"]) / (cost["4o"] - cost["mini"])
    tail = chosen[150:]
    assert np.mean([d == "4o" for d in tail]) == pytest.approx(optimum, abs=0.08)
    budget = driver.integration.conduit_router.stats().targets["budget=0.3"]
    assert budget.decisions == 600 and budget.met
    assert budget.realised == pytest.approx(0.3 * cost["4o"], rel=0.1)
    # A floor asked for per request routes under its own controller, not the budget's.
    floor = {"conduit_preferences": {"quality_floor": 0.9, "latency": 0.0}}
    chosen, _ = await serve(driver, 400, floor)
    quality = np.mean([QUALITY[d] for d in chosen[100:]])
    assert quality >= 0.9 * 0.9 - 0.01  # the floor: 0.9 of the strong deployment's 0.9
    assert np.mean([d == "mini" for d in chosen[100:]]) > 0.05  # ... not always the strong one
    targets = driver.integration.conduit_router.stats().targets
    assert sorted(targets) == ["budget=0.3", "quality_floor=0.9"]
    assert targets["budget=0.3"].decisions == 600 and targets["quality_floor=0.9"].decisions == 400
