"""The strategy and the proxy plugin: one table of cases, the same outcome from both."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import litellm
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
