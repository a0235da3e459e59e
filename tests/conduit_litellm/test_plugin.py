"""ConduitRoutingPlugin in a real litellm.Router(plugins=[...]), as the proxy builds it."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import copy
import inspect
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest

import conduit_litellm.plugin as plugin_module
from conduit import ConfigurationError
from conduit._state import read_state
from conduit.judge import Judge
from conduit_litellm import ConduitRoutingPlugin, _compat, utils
from conduit_litellm.plugin import from_env

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")


@pytest.fixture(autouse=True)
def restore_callbacks() -> Iterator[None]:
    """Routers of LiteLLM < 1.110 add callbacks per instance and never remove them; past 30,
    LiteLLM refuses more. Put every callback list back as it was after each test."""
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries


MODEL_LIST = [
    {"model_name": "chat", "litellm_params": {"model": "gpt-4o-mini", "mock_response": "Paris."}},
    {"model_name": "chat", "litellm_params": {"model": "gpt-4o", "mock_response": "Paris."}},
    {
        "model_name": "other",
        "litellm_params": {"model": "gpt-3.5-turbo", "mock_response": "Paris."},
    },
]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOKEN = "proxy-feedback-token-0123"


def plugins_supported() -> bool:
    return _compat.has_registry(litellm.Router(model_list=copy.deepcopy(MODEL_LIST[:1])))


pytestmark = [
    pytestmark,
    pytest.mark.skipif(not plugins_supported(), reason="this LiteLLM has no routing plugins"),
]


@pytest.fixture
def plugin() -> Iterator[ConduitRoutingPlugin]:
    made = ConduitRoutingPlugin(embedding_backend="hashing", seed=0, bandit_algorithm="random")
    yield made
    made.cleanup()


def matched(feedback: Any) -> float:
    """Events that taught this router something (or, for a 429, deliberately nothing).

    A late event of an earlier test is unmatched, and an event LiteLLM delivers twice
    is a duplicate: neither counts, so neither can stand in for a lost event."""
    stats = feedback.stats()
    return stats["learned"] + stats["rate_limited"]


async def settle(plugin: ConduitRoutingPlugin, events: int, timeout: float = 30.0) -> None:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    deadline = time.monotonic() + timeout
    while matched(plugin.feedback) < events and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        await GLOBAL_LOGGING_WORKER.flush()
    assert matched(plugin.feedback) == events, plugin.feedback.stats()


def counts(plugin: ConduitRoutingPlugin) -> dict[str, float]:
    assert plugin.conduit_router is not None
    state = plugin.conduit_router.state_dict()["outcomes"]
    return {key: float(state["sums"][:, i].sum()) for i, key in enumerate(state["keys"])}


def test_passes_the_proxys_plugin_check(plugin: ConduitRoutingPlugin) -> None:
    from litellm.types.router import RoutingPlugin

    assert isinstance(plugin, RoutingPlugin)
    assert inspect.iscoroutinefunction(plugin.run)


async def test_routes_within_the_group_and_learns(plugin: ConduitRoutingPlugin) -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), plugins=[plugin])
    served = set()
    for i in range(20):
        response = await router.acompletion(
            model="chat", messages=[{"role": "user", "content": f"q{i}"}]
        )
        served.add(response.model)
    assert served == {"gpt-4o-mini", "gpt-4o"}
    assert plugin.conduit_router is not None
    assert set(plugin.conduit_router.models) == {"gpt-4o-mini", "gpt-4o"}
    await settle(plugin, 20)
    assert plugin.conduit_router.stats().total_decisions == 20
    learned = counts(plugin)
    assert (learned["cost_n"], learned["latency_n"], learned["quality_n"]) == (20, 20, 0)
    await router.acompletion(model="other", messages=MESSAGES)  # a new model name: a new arm
    assert "gpt-3.5-turbo" in plugin.conduit_router.models


async def test_explicit_feedback_over_http() -> None:
    plugin = ConduitRoutingPlugin(
        embedding_backend="hashing", seed=0, feedback_port=0, feedback_token=TOKEN
    )
    try:
        router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), plugins=[plugin])
        response = await router.acompletion(model="chat", messages=MESSAGES)
        await settle(plugin, 1)
        assert plugin.server is not None
        request = urllib.request.Request(
            plugin.server.url,
            data=json.dumps({"response_id": response.id, "rating": 5}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}"},
            method="POST",
        )
        answer = await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        assert json.loads(answer.read()) == {"learned": ["quality"]}
        assert plugin.record_feedback(response, thumbs=False) == frozenset()  # already learned
        assert counts(plugin)["quality_n"] == 1
    finally:
        plugin.cleanup()
    assert plugin.server is None
    assert not any(plugin.feedback in getattr(litellm, name) for name in _compat._CALLBACK_LISTS)


def test_default_instance_loads_like_the_proxy_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.proxy.types_utils.utils import get_instance_fn

    monkeypatch.setenv("CONDUIT_EMBEDDING_BACKEND", "hashing")
    monkeypatch.setenv("CONDUIT_PREFERENCES", "cost")
    monkeypatch.setattr(plugin_module, "_default", None)
    loaded = get_instance_fn("conduit_litellm.plugin.default")
    assert isinstance(loaded, ConduitRoutingPlugin)
    assert loaded is plugin_module.default
    assert loaded.preferences.cost == 2.0
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        plugin_module.missing  # noqa: B018


@pytest.mark.parametrize(
    ("environ", "pattern"),
    [
        ({"CONDUIT_FEEDBACK_PORT": "9000"}, "feedback_port needs feedback_token"),
        ({"CONDUIT_FEEDBACK_PORT": "nine"}, "feedback_port: Input should be a valid integer"),
        ({"CONDUIT_PREFERENCES": "cheapest"}, "preferences: unknown preference 'cheapest'"),
        ({"CONDUIT_SEED": "x"}, "seed: Input should be a valid integer"),
        ({"CONDUIT_SAVE_INTERVAL": "soon"}, "save_interval: Input should be a valid number"),
        ({"CONDUIT_SAVE_INTERVAL": "0"}, "save_interval: Input should be greater than 0"),
        ({"CONDUIT_BANDIT_ALGORITHM": "linucbb"}, r"bandit_algorithm must be one of \["),
        ({"CONDUIT_STATE_URL": "sqlit:///x.db"}, "state_store: unknown scheme 'sqlit'"),
        ({"CONDUIT_JUDGE_SAMPLE_RATE": "1.5"}, "judge_sample_rate: Input should be less than"),
        ({"CONDUIT_JUDGE_MAX_COST_PER_DAY": "-1"}, "judge_max_cost_per_day: Input should be"),
        ({"CONDUIT_JUDGE_MODEL": ""}, "judge_model: String should have at least 1 character"),
        ({"CONDUIT_JUDGE_MAX_QUEUE": "0"}, "judge_max_queue: Input should be greater than"),
    ],
)
def test_from_env_rejects(
    environ: dict[str, str], pattern: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=pattern):
        from_env()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"conduit_router": "gpt-4o"}, r"must be a conduit\.Router"),
        ({"save_interval": 0}, r"save_interval: Input should be greater than 0"),
        ({"save_interval": float("inf")}, r"save_interval: Input should be a finite number"),
        ({"save_interval": True}, r"save_interval must be a number"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        ConduitRoutingPlugin(embedding_backend="hashing", **kwargs)


def test_logger_is_registered_when_built() -> None:
    """The proxy fixes a call's callbacks before routing it: registering on the first pick
    would lose the first call's outcome (seen with the real proxy)."""
    plugin = ConduitRoutingPlugin(embedding_backend="hashing")
    try:
        assert any(entry is plugin.feedback for entry in litellm.callbacks)
    finally:
        plugin.cleanup()
    assert not any(entry is plugin.feedback for entry in litellm.callbacks)


async def test_prices_come_from_the_deployments(plugin: ConduitRoutingPlugin) -> None:
    """A price set on a deployment (as a proxy config does) beats the cost map's or none."""
    model_list: list[dict[str, Any]] = copy.deepcopy(MODEL_LIST[:2])
    model_list[0]["litellm_params"].update(
        model="openai/simulated-model", input_cost_per_token=2e-7, output_cost_per_token=8e-7
    )
    router = litellm.Router(model_list=model_list, plugins=[plugin])
    plugin.bind(router)
    await router.acompletion(model="chat", messages=MESSAGES)
    assert plugin.conduit_router is not None
    prices = plugin.conduit_router.state_dict()["outcomes"]["prices"]
    assert prices["openai/simulated-model"] == [2e-7, 8e-7]
    assert prices["gpt-4o"] == list(utils.deployment_price(MODEL_LIST[1]) or ())


async def test_learning_is_saved_while_serving(tmp_path: Path) -> None:
    """The proxy never calls cleanup and on SIGTERM exits without exit handlers, so the
    plugin saves on its own, every ``save_interval`` seconds."""
    path = tmp_path / "state.json"
    plugin = ConduitRoutingPlugin(
        embedding_backend="hashing",
        seed=0,
        bandit_algorithm="random",
        state_path=path,
        save_interval=0.05,
    )
    try:
        router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), plugins=[plugin])
        for i in range(3):
            await router.acompletion(model="chat", messages=[{"role": "user", "content": f"{i}"}])
        deadline = time.monotonic() + 10
        decisions = 0.0
        while decisions < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if path.exists():
                outcomes = read_state(path)["router"]["outcomes"]
                column = outcomes["keys"].index("decisions")
                decisions = float(outcomes["sums"][:, column].sum())
        assert decisions == 3
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        plugin.cleanup()
    assert plugin._saver is None


async def test_preferences_from_request_metadata(
    plugin: ConduitRoutingPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), plugins=[plugin])
    await router.acompletion(model="chat", messages=MESSAGES)
    conduit = plugin.conduit_router
    assert conduit is not None
    asked: list[Any] = []
    route = conduit.route

    async def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["preferences"])
        return await route(*args, **kwargs)

    monkeypatch.setattr(conduit, "route", spy)
    for wanted in ("cost", {"quality": 1.0, "cost": 3.0, "latency": 0.0}):
        await router.acompletion(
            model="chat", messages=MESSAGES, metadata={"conduit_preferences": wanted}
        )
    assert [p.cost for p in asked] == [2.0, 3.0]
    with pytest.raises(litellm.BadRequestError, match="unknown preference 'no-such-preset'"):
        await router.acompletion(
            model="chat", messages=MESSAGES, metadata={"conduit_preferences": "no-such-preset"}
        )


async def test_models_in_cooldown_are_skipped(plugin: ConduitRoutingPlugin) -> None:
    model_list = copy.deepcopy(MODEL_LIST)
    model_list[0]["model_info"] = {"id": "mini"}
    router = litellm.Router(model_list=model_list, plugins=[plugin])
    plugin.bind(router)
    router.health().cooldowns.add_deployment_to_cooldown("mini", Exception("429"), 429, 60)
    served = {
        (
            await router.acompletion(model="chat", messages=[{"role": "user", "content": f"{i}"}])
        ).model
        for i in range(20)
    }
    assert served == {"gpt-4o"}


def test_sync_calls_are_refused_by_litellm(plugin: ConduitRoutingPlugin) -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST), plugins=[plugin])
    with pytest.raises(ValueError, match="synchronous deployment-selection path"):
        router.completion(model="chat", messages=MESSAGES)


async def test_example_proxy_config_resolves_like_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """examples/proxy_config.yaml: its plugins resolve and pass the proxy's check, and route."""
    import yaml
    from litellm.proxy.types_utils.utils import get_instance_fn
    from litellm.types.router import RoutingPlugin

    path = Path(__file__).parents[2] / "examples" / "proxy_config.yaml"
    config = yaml.safe_load(path.read_text())
    monkeypatch.setenv("CONDUIT_EMBEDDING_BACKEND", "hashing")
    monkeypatch.delenv("CONDUIT_FEEDBACK_PORT", raising=False)
    monkeypatch.setattr(plugin_module, "_default", None)
    plugins = [
        get_instance_fn(entry, config_file_path=str(path))
        for entry in config["router_settings"]["plugins"]
    ]
    assert all(isinstance(p, RoutingPlugin) and inspect.iscoroutinefunction(p.run) for p in plugins)
    model_list = copy.deepcopy(config["model_list"])
    for item in model_list:
        item["litellm_params"] = {
            "model": item["litellm_params"]["model"],
            "mock_response": "Paris.",
        }
    router = litellm.Router(model_list=model_list, plugins=plugins)
    try:
        response = await router.acompletion(model="chat", messages=MESSAGES)
        assert response.choices[0].message.content == "Paris."
        assert plugins[0].conduit_router.stats().total_decisions == 1
    finally:
        plugins[0].cleanup()


def test_the_judge_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_EMBEDDING_BACKEND", "hashing")
    monkeypatch.setenv("CONDUIT_JUDGE_SHADOW_RATE", "0.5")
    monkeypatch.setenv("CONDUIT_JUDGE_REFERENCE_MODEL", "gpt-4o")
    monkeypatch.setenv("CONDUIT_JUDGE_STRUCTURED", "false")
    monkeypatch.setenv("CONDUIT_REGENERATIONS", "0")
    plugin = ConduitRoutingPlugin(judge_model="judge", judge_sample_rate=0.2)
    try:
        judge = plugin.judge.judge
        assert judge is not None and (judge.model, judge.sample_rate) == ("judge", 0.2)
        assert (judge.shadow_rate, judge.reference_model) == (0.5, "gpt-4o")
        assert judge.structured is False and plugin.judge.regenerations is None
    finally:
        plugin.cleanup()
    monkeypatch.delenv("CONDUIT_REGENERATIONS")
    plugin = ConduitRoutingPlugin()  # no judge_model anywhere: no judge
    try:
        assert plugin.judge.judge is None and plugin.judge.regenerations is not None
    finally:
        plugin.cleanup()
    with pytest.raises(ConfigurationError, match="judge or judge_model, not both"):
        ConduitRoutingPlugin(judge=Judge("judge"), judge_model="judge")
