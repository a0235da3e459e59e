"""ConduitRoutingStrategy against the real litellm.Router, with mock_response deployments."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import contextlib
import copy
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litellm
import pytest

from conduit import ConfigurationError, InvalidFeedbackError, Router, UnknownDecisionError
from conduit_litellm import ConduitRoutingStrategy, _compat
from conduit_litellm.feedback import DECISION_KEY, ConduitFeedbackLogger

from ..stores.conftest import REDIS_URL, free_port, service_missing

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


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def deployment(
    group: str, model: str, id: str, reply: str = "Paris.", **info: Any
) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "mock_response": reply},
        "model_info": {"id": id, **info},
    }


THREE = [
    deployment("fast", "gpt-4o-mini", "mini"),
    deployment("fast", "gpt-3.5-turbo", "turbo"),
    deployment("smart", "gpt-4o", "4o"),
]


def matched(feedback: Any) -> float:
    """Events that taught this router something (or, for a 429, deliberately nothing).

    A late event of an earlier test is unmatched, and an event LiteLLM delivers twice
    is a duplicate: neither counts, so neither can stand in for a lost event."""
    stats = feedback.stats()
    return stats["learned"] + stats["rate_limited"]


def logging_worker() -> Any:
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # LiteLLM before the logging worker: callbacks are plain tasks
        return None
    return GLOBAL_LOGGING_WORKER


async def settle(strategy: ConduitRoutingStrategy, events: int, timeout: float = 30.0) -> None:
    """Wait until the feedback logger has handled ``events`` events (async ones are queued)."""
    worker = logging_worker()
    deadline = time.monotonic() + timeout
    while matched(strategy.feedback) < events and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        if worker is not None:
            await worker.flush()
    assert matched(strategy.feedback) == events, strategy.feedback.stats()


def settle_sync(strategy: ConduitRoutingStrategy, events: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while matched(strategy.feedback) < events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert matched(strategy.feedback) == events, strategy.feedback.stats()


def outcome_counts(router: Router) -> dict[str, float]:
    """Decisions and learned cost/latency/quality parts, summed over models."""
    state = router.state_dict()["outcomes"]
    keys, sums = state["keys"], state["sums"]
    return {key: float(sum(row[i] for row in sums)) for i, key in enumerate(keys)}


def make(model_list: list[dict[str, Any]], **router_kwargs: Any) -> litellm.Router:
    router_kwargs.setdefault("num_retries", 0)
    return litellm.Router(model_list=[dict(d) for d in model_list], **router_kwargs)


@pytest.fixture(autouse=True)
def restore_cost_map() -> Iterator[None]:
    """LiteLLM writes deployments' model_info into the global cost map; undo it after each test."""
    saved = copy.deepcopy(litellm.model_cost)
    yield
    litellm.model_cost.clear()
    litellm.model_cost.update(saved)


@pytest.fixture
def attach() -> Iterator[Any]:
    """attach(router, **strategy_kwargs) -> a set-up strategy, cleaned up after the test."""
    made: list[ConduitRoutingStrategy] = []

    def _attach(router: Any, **kwargs: Any) -> ConduitRoutingStrategy:
        kwargs.setdefault("embedding_backend", "hashing")
        kwargs.setdefault("seed", 0)
        if "bandit_algorithm" in kwargs:
            kwargs.setdefault("use_hybrid", None)
        strategy = ConduitRoutingStrategy(**kwargs)
        ConduitRoutingStrategy.setup_strategy(router, strategy)
        made.append(strategy)
        return strategy

    yield _attach
    for strategy in made:
        strategy.cleanup()


def registered(callback: object) -> list[str]:
    return [
        name for name in CALLBACK_LISTS if any(c is callback for c in getattr(litellm, name, []))
    ]


# -- registration and cleanup ---------------------------------------------------------------------
async def test_setup_registers_logger_and_logs(
    attach: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = make(THREE)
    with caplog.at_level(logging.INFO, logger="conduit_litellm"):
        strategy = attach(router)
    assert "Feedback logger registered with LiteLLM - bandit learning enabled" in caplog.text
    assert "callbacks" in registered(strategy.feedback)
    await router.acompletion(model="fast", messages=MESSAGES)
    await settle(strategy, 1)
    assert strategy.conduit_router is not None
    assert strategy.conduit_router.stats().total_decisions == 1


async def test_cleanup_leaves_no_callback_and_gives_router_back(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    await router.acompletion(model="fast", messages=MESSAGES)
    router.completion(model="fast", messages=MESSAGES)
    await settle(strategy, 2)
    assert registered(strategy.feedback)  # LiteLLM copied it into its internal lists
    strategy.cleanup()
    strategy.cleanup()  # repeatable
    assert registered(strategy.feedback) == []
    assert not any(
        isinstance(c, ConduitFeedbackLogger)
        for name in CALLBACK_LISTS
        for c in getattr(litellm, name, [])
    )
    conduit = strategy.conduit_router
    assert conduit is not None
    before = conduit.stats().total_decisions
    await router.acompletion(model="fast", messages=MESSAGES)
    router.completion(model="fast", messages=MESSAGES)
    assert conduit.stats().total_decisions == before  # LiteLLM routes by itself again


async def test_context_managers_clean_up() -> None:
    router = make(THREE)
    with ConduitRoutingStrategy(embedding_backend="hashing") as strategy:
        ConduitRoutingStrategy.setup_strategy(router, strategy)
        assert registered(strategy.feedback)
    assert registered(strategy.feedback) == []
    async with ConduitRoutingStrategy(embedding_backend="hashing") as other:
        ConduitRoutingStrategy.setup_strategy(router, other)
        await router.acompletion(model="fast", messages=MESSAGES)
    assert registered(other.feedback) == []


@pytest.mark.parametrize(
    ("kwargs", "exception", "pattern"),
    [
        ({"scope": "team"}, ConfigurationError, "scope must be 'all', 'group' or a non-empty list"),
        ({"preferences": "cheapest"}, ConfigurationError, "unknown preference"),
        ({"cache_ttl": 0}, ConfigurationError, "cache_ttl must be a positive int"),
        ({"conduit_router": "gpt-4o"}, ConfigurationError, "must be a conduit.Router"),
    ],
)
def test_invalid_arguments(
    kwargs: dict[str, Any], exception: type[Exception], pattern: str
) -> None:
    with pytest.raises(exception, match=pattern):
        ConduitRoutingStrategy(**kwargs)


def test_unattached_strategy_says_how_to_attach() -> None:
    with pytest.raises(ConfigurationError, match="setup_strategy"):
        ConduitRoutingStrategy(embedding_backend="hashing").get_available_deployment(
            "fast", MESSAGES
        )


def test_second_router_is_refused(attach: Any) -> None:
    strategy = attach(make(THREE))
    with pytest.raises(ConfigurationError, match=r"another litellm\.Router"):
        ConduitRoutingStrategy.setup_strategy(make(THREE), strategy)


# -- scope ----------------------------------------------------------------------------------------
async def test_scope_all_uses_every_deployment(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router, bandit_algorithm="random")
    picks = Counter()
    for i in range(40):
        response = await router.acompletion(
            model="fast", messages=[{"role": "user", "content": f"q{i}"}]
        )
        picks[response._hidden_params["model_id"]] += 1
    assert set(picks) == {"mini", "turbo", "4o"}
    assert set(strategy.conduit_router.models) == {"mini", "turbo", "4o"}


async def test_scope_group_stays_in_group(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router, scope="group", bandit_algorithm="random")
    picks = Counter()
    for i in range(30):
        response = await router.acompletion(
            model="fast", messages=[{"role": "user", "content": f"q{i}"}]
        )
        picks[response._hidden_params["model_id"]] += 1
    assert set(picks) == {"mini", "turbo"}
    chosen = strategy.get_available_deployment("smart", MESSAGES, request_kwargs={})
    assert chosen["model_info"]["id"] == "4o"


@pytest.mark.parametrize("scope", ["all", "group"])
async def test_unknown_group_raises_litellm_error(attach: Any, scope: str) -> None:
    strategy = attach(make(THREE), scope=scope)
    with pytest.raises(litellm.BadRequestError, match="no deployment serves model group 'nope'"):
        await strategy.async_get_available_deployment("nope", MESSAGES, request_kwargs={})
    with pytest.raises(litellm.BadRequestError, match="groups are \\['fast', 'smart'\\]"):
        strategy.get_available_deployment("nope", MESSAGES, request_kwargs={})


async def test_specific_deployment_is_honoured(attach: Any) -> None:
    strategy = attach(make(THREE), scope="group")
    for name in ("4o", "gpt-4o"):
        kwargs: dict[str, Any] = {}
        chosen = await strategy.async_get_available_deployment(
            name, MESSAGES, specific_deployment=True, request_kwargs=kwargs
        )
        assert chosen["model_info"]["id"] == "4o"
        assert kwargs["metadata"][DECISION_KEY]
    with pytest.raises(litellm.BadRequestError, match="names no deployment"):
        strategy.get_available_deployment("gpt-5", MESSAGES, specific_deployment=True)


# -- learning from failures, cooldowns ------------------------------------------------------------
async def test_failing_deployment_is_avoided(attach: Any) -> None:
    failing = deployment("fast", "gpt-4o-mini", "broken", reply="litellm.InternalServerError")
    router = make([failing, deployment("fast", "gpt-4o-mini", "healthy")], disable_cooldowns=True)
    # quality first: a failure is learned as quality 0, a plain success as cost and latency only
    strategy = attach(router, bandit_algorithm="thompson", preferences="quality")
    picks: list[str] = []
    for i in range(40):
        kwargs: dict[str, Any] = {}
        chosen = await strategy.async_get_available_deployment(
            "fast", MESSAGES, request_kwargs=kwargs
        )
        picks.append(chosen["model_info"]["id"])
        with contextlib.suppress(litellm.InternalServerError):
            await router.acompletion(model="fast", messages=[{"role": "user", "content": f"q{i}"}])
    await settle(strategy, 40)
    assert picks[-15:].count("broken") <= 3
    assert strategy.conduit_router.stats().models["broken"].mean_quality == 0.0


def put_in_cooldown(router: Any, model_id: str) -> None:
    cache = router.health().cooldowns if _compat.has_registry(router) else router.cooldown_cache
    cache.add_deployment_to_cooldown(model_id, Exception("429"), 429, 60)


async def test_cooling_deployment_is_never_picked(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router, bandit_algorithm="random")
    put_in_cooldown(router, "mini")
    async_picks = {
        (await strategy.async_get_available_deployment("fast", MESSAGES, request_kwargs={}))[
            "model_info"
        ]["id"]
        for _ in range(30)
    }
    sync_picks = {
        strategy.get_available_deployment("fast", MESSAGES, request_kwargs={})["model_info"]["id"]
        for _ in range(30)
    }
    assert "mini" not in async_picks | sync_picks
    for other in ("turbo", "4o"):
        put_in_cooldown(router, other)
    every = {
        strategy.get_available_deployment("fast", MESSAGES)["model_info"]["id"] for _ in range(30)
    }
    assert every  # all cooling: still served (LiteLLM waits the cooldown out), not an error


# -- capability filters ---------------------------------------------------------------------------
# Distinct provider models: LiteLLM copies a deployment's model_info flags into its global
# cost map under the provider model's name, so deployments sharing one would share them.
# A model LiteLLM knows (its model_info flags make it known) without a flag lacks it, as
# litellm.supports_*() says: each deployment states every flag.
ABLE = {
    "supports_function_calling": True,
    "supports_vision": True,
    "supports_response_schema": True,
}
CAPABLE = [
    deployment("g", "openai/cap-window", "tiny-window", **ABLE, max_input_tokens=20),
    deployment("g", "openai/cap-tools", "no-tools", **{**ABLE, "supports_function_calling": False}),
    deployment("g", "openai/cap-vision", "no-vision", **{**ABLE, "supports_vision": False}),
    deployment(
        "g", "openai/cap-schema", "no-schema", **{**ABLE, "supports_response_schema": False}
    ),
]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
]
LONG = [{"role": "user", "content": "word " * 200}]


@pytest.mark.parametrize(
    ("messages", "request_kwargs", "excluded"),
    [
        (LONG, {}, {"tiny-window"}),
        (MESSAGES, {"tools": TOOLS}, {"no-tools"}),
        (IMAGE, {}, {"no-vision", "tiny-window"}),  # an image alone is more than 20 tokens
        (MESSAGES, {"response_format": {"type": "json_object"}}, {"no-schema"}),
    ],
)
async def test_unfit_deployments_are_filtered(
    attach: Any, messages: list[dict[str, Any]], request_kwargs: dict[str, Any], excluded: set[str]
) -> None:
    strategy = attach(make(CAPABLE), bandit_algorithm="random")
    picks = {
        (
            await strategy.async_get_available_deployment(
                "g", messages, request_kwargs=dict(request_kwargs)
            )
        )["model_info"]["id"]
        for _ in range(30)
    }
    assert picks == {"tiny-window", "no-tools", "no-vision", "no-schema"} - excluded


@pytest.mark.parametrize(
    ("model_list", "messages", "request_kwargs", "exception", "pattern"),
    [
        (
            [CAPABLE[0]],
            LONG,
            {},
            litellm.ContextWindowExceededError,
            "exceeds its context window of 20",
        ),
        ([CAPABLE[1]], MESSAGES, {"tools": TOOLS}, litellm.BadRequestError, "function calling"),
        ([CAPABLE[2]], IMAGE, {}, litellm.BadRequestError, "does not support images"),
    ],
)
def test_no_capable_deployment_raises(
    attach: Any,
    model_list: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    request_kwargs: dict[str, Any],
    exception: type[Exception],
    pattern: str,
) -> None:
    strategy = attach(make(model_list))
    with pytest.raises(exception, match=pattern):
        strategy.get_available_deployment("g", messages, request_kwargs=request_kwargs)


# -- attribution of retries and fallbacks ---------------------------------------------------------
async def test_each_retry_and_fallback_attempt_is_attributed(attach: Any) -> None:
    router = make(
        [
            deployment("a", "gpt-4o-mini", "bad-1", reply="litellm.InternalServerError"),
            deployment("a", "gpt-4o-mini", "bad-2", reply="litellm.InternalServerError"),
            deployment("b", "gpt-4o", "backup"),
        ],
        num_retries=1,
        retry_after=0,
        fallbacks=[{"a": ["b"]}],
        disable_cooldowns=True,
    )
    strategy = attach(router, scope="group", bandit_algorithm="random")
    picks: dict[str, str] = {}
    finish = strategy._finish

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        chosen = finish(*args, **kwargs)
        picks[args[2].decision_id] = chosen["model_info"]["id"]
        return chosen

    strategy._finish = spy  # type: ignore[method-assign]
    seen: list[tuple[bool, str, str]] = []
    handle = strategy.feedback._handle

    def record(kwargs: Any, response: Any, start: Any, end: Any, *, failed: bool) -> None:
        seen.append(
            (
                failed,
                kwargs["litellm_params"]["metadata"][DECISION_KEY],
                kwargs["litellm_params"]["model_info"]["id"],
            )
        )
        handle(kwargs, response, start, end, failed=failed)

    strategy.feedback._handle = record  # type: ignore[method-assign]
    response = await router.acompletion(model="a", messages=MESSAGES)
    assert response._hidden_params["model_id"] == "backup"
    await settle(strategy, len(picks))
    assert len(picks) >= 3  # two attempts in group a, then the fallback
    assert {decision for _, decision, _ in seen} == set(picks)
    for failed, decision, served in seen:
        assert picks[decision] == served
        assert failed == served.startswith("bad")
    stats = strategy.conduit_router.stats()
    assert stats.total_decisions == len(picks)
    assert stats.models["backup"].mean_cost is not None


# -- explicit feedback ----------------------------------------------------------------------------
async def test_record_feedback_by_object_and_id_learns_once(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    first = await router.acompletion(model="fast", messages=MESSAGES)
    second = await router.acompletion(model="fast", messages=[{"role": "user", "content": "2+2?"}])
    await settle(strategy, 2)
    assert strategy.record_feedback(first, thumbs=True) == frozenset({"quality"})
    assert strategy.record_feedback(first.id, thumbs=False) == frozenset()  # duplicate: ignored
    assert await strategy.arecord_feedback(second.id, rating=2) == frozenset({"quality"})
    stats = strategy.conduit_router.stats()
    assert stats.total_feedback == 2
    learned = sorted(m.mean_quality for m in stats.models.values() if m.mean_quality is not None)
    assert learned in ([0.25, 1.0], [0.625])


async def test_explain_says_why_a_response_went_where_it_went(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router, scope="group")
    with pytest.raises(UnknownDecisionError, match="no explanation for decision 'some-id'"):
        strategy.explain("some-id")
    response = await router.acompletion(model="fast", messages=MESSAGES)
    explanation = strategy.explain(response)
    assert explanation.selected_model == response._hidden_params["model_id"]
    assert set(explanation.scores) == {"mini", "turbo"}
    assert explanation.excluded == {"4o": "not in allowed_models"}
    assert explanation.preset == "balanced"
    assert strategy.explain(response.id) == explanation  # by the response id, too
    with pytest.raises(UnknownDecisionError, match="no explanation"):
        strategy.explain("never-routed")


async def test_late_feedback_after_cost_and_latency(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = await router.acompletion(model="fast", messages=MESSAGES)
    await settle(strategy, 1)
    before = outcome_counts(strategy.conduit_router)
    assert (before["cost_n"], before["latency_n"], before["quality_n"]) == (1, 1, 0)
    await asyncio.sleep(0.05)  # "minutes later"
    assert strategy.record_feedback(response, quality=0.8) == frozenset({"quality"})
    assert outcome_counts(strategy.conduit_router)["quality_n"] == 1


@pytest.mark.parametrize(
    ("target", "kwargs", "exception", "pattern"),
    [
        ("resp", {}, InvalidFeedbackError, "exactly one of"),
        ("resp", {"thumbs": True, "rating": 5}, InvalidFeedbackError, "exactly one of"),
        ("resp", {"rating": 6}, InvalidFeedbackError, "rating must be an int from 1 to 5"),
        ("resp", {"thumbs": 1}, InvalidFeedbackError, "thumbs must be True or False"),
        ("resp", {"quality": 1.5}, InvalidFeedbackError, r"quality must be in \[0, 1\]"),
        (
            "chatcmpl-unknown",
            {"thumbs": True},
            UnknownDecisionError,
            "unknown response or decision id",
        ),
        (42, {"thumbs": True}, InvalidFeedbackError, "expected a LiteLLM response or its id"),
    ],
)
async def test_invalid_feedback(
    attach: Any, target: Any, kwargs: dict[str, Any], exception: type[Exception], pattern: str
) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = await router.acompletion(model="fast", messages=MESSAGES)
    await settle(strategy, 1)
    with pytest.raises(exception, match=pattern):
        strategy.record_feedback(response.id if target == "resp" else target, **kwargs)


# -- concurrency ----------------------------------------------------------------------------------
async def test_thousand_concurrent_requests_lose_no_feedback(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    n = 1000
    responses = await asyncio.gather(
        *(
            router.acompletion(
                model="fast", messages=[{"role": "user", "content": f"question {i % 50}"}]
            )
            for i in range(n)
        )
    )
    assert len(responses) == n
    await settle(strategy, n, timeout=120)
    counts = outcome_counts(strategy.conduit_router)
    assert strategy.conduit_router.stats().total_decisions == n
    assert (counts["cost_n"], counts["latency_n"]) == (n, n)
    assert counts["quality_n"] == 0  # plain success says nothing about quality
    stats = strategy.feedback.stats()
    assert stats["learned"] == n


async def test_sync_completion_inside_running_loop(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = router.completion(model="fast", messages=MESSAGES)  # blocking call in a coroutine
    assert response.choices[0].message.content == "Paris."
    settle_sync(strategy, 1)
    assert outcome_counts(strategy.conduit_router)["cost_n"] == 1


def test_sync_completion_from_many_threads(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    n = 120

    def call(i: int) -> str:
        reply = router.completion(model="fast", messages=[{"role": "user", "content": f"t{i}"}])
        return str(reply.choices[0].message.content)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, range(n))) == ["Paris."] * n
    settle_sync(strategy, n)
    counts = outcome_counts(strategy.conduit_router)
    assert strategy.conduit_router.stats().total_decisions == n
    # identical calls: no change for the detector to see, so nothing is discounted
    assert (counts["cost_n"], counts["latency_n"]) == (n, n), strategy.feedback.stats()
    assert threading.active_count() < 50


# -- deployments changing at run time -------------------------------------------------------------
def add_deployment(router: Any, item: dict[str, Any]) -> None:
    if _compat.has_registry(router):
        from litellm.router_api import ChangeSet
        from litellm.types.router import Deployment

        router.apply(ChangeSet(upsert=[Deployment(**item)]))
    else:
        router.add_deployment(litellm.types.router.Deployment(**item))


def delete_deployment(router: Any, model_id: str) -> None:
    if _compat.has_registry(router):
        from litellm.router_api import ChangeSet

        router.apply(ChangeSet(delete=[model_id]))
    else:
        router.delete_deployment(id=model_id)


async def test_added_and_removed_deployments_are_picked_up(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router, bandit_algorithm="random")
    await router.acompletion(model="fast", messages=MESSAGES)
    add_deployment(router, deployment("fast", "gpt-4o", "new"))
    picks = {
        (
            await router.acompletion(model="fast", messages=[{"role": "user", "content": f"{i}"}])
        )._hidden_params["model_id"]
        for i in range(40)
    }
    assert "new" in picks
    assert "new" in strategy.conduit_router.models
    delete_deployment(router, "mini")
    picks = {
        strategy.get_available_deployment("fast", MESSAGES)["model_info"]["id"] for _ in range(30)
    }
    assert "mini" not in picks
    assert "mini" not in strategy.conduit_router.models


async def test_given_conduit_router_maps_arms_by_id_or_model(
    attach: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conduit = Router(
        ["mini", "gpt-4o"], embedding_backend="hashing", bandit_algorithm="random", seed=1
    )
    router = make(THREE)
    with caplog.at_level(logging.WARNING, logger="conduit_litellm"):
        strategy = attach(router, conduit_router=conduit)
        picks = {
            strategy.get_available_deployment("fast", MESSAGES)["model_info"]["id"]
            for _ in range(30)
        }
    assert picks == {"mini", "4o"}  # "turbo" matches no arm
    assert "Model not in router arms: deployment turbo" in caplog.text


def test_selection_missing_from_model_list_warns(
    attach: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = attach(make(THREE))
    strategy.get_available_deployment("fast", MESSAGES)  # builds the Conduit router
    conduit = strategy.conduit_router
    route = conduit.route_sync

    def ghost(*args: Any, **kwargs: Any) -> Any:
        return route(*args, **kwargs).model_copy(update={"selected_model": "ghost"})

    monkeypatch.setattr(conduit, "route_sync", ghost)
    request: dict[str, Any] = {}
    with caplog.at_level(logging.WARNING, logger="conduit_litellm"):
        chosen = strategy.get_available_deployment("fast", MESSAGES, request_kwargs=request)
    assert "Conduit selected ghost but not found in model_list" in caplog.text
    assert chosen["model_info"]["id"] in {"mini", "turbo", "4o"}
    assert DECISION_KEY not in request.get("metadata", {})  # not learned against the wrong arm


def test_preferences_from_request_metadata(attach: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = attach(make(THREE))
    strategy.get_available_deployment("fast", MESSAGES)
    conduit = strategy.conduit_router
    asked: list[Any] = []
    route = conduit.route_sync

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["preferences"])
        return route(*args, **kwargs)

    monkeypatch.setattr(conduit, "route_sync", spy)
    strategy.get_available_deployment("fast", MESSAGES, request_kwargs={})
    strategy.get_available_deployment(
        "fast", MESSAGES, request_kwargs={"metadata": {"conduit_preferences": "quality"}}
    )
    strategy.get_available_deployment(
        "fast", MESSAGES, request_kwargs={"metadata": {"conduit_preferences": {"cost": 3.0}}}
    )
    assert [p.cost for p in asked] == [0.5, 0.05, 3.0]
    with pytest.raises(litellm.BadRequestError, match="conduit_preferences='cheap' is invalid"):
        strategy.get_available_deployment(
            "fast", MESSAGES, request_kwargs={"metadata": {"conduit_preferences": "cheap"}}
        )


# -- feedback right after the call returns (LiteLLM delivers its event later) ---------------------
@pytest.mark.parametrize("event_first", [False, True])
async def test_record_feedback_right_after_acompletion(attach: Any, event_first: bool) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = await router.acompletion(model="fast", messages=MESSAGES)
    if event_first:
        await settle(strategy, 1)
    else:
        assert matched(strategy.feedback) == 0  # the race: LiteLLM's event is still queued
    assert strategy.record_feedback(response, quality=0.8) == frozenset({"quality"})
    assert strategy.record_feedback(response, quality=0.1) == frozenset()
    await settle(strategy, 1)
    counts = outcome_counts(strategy.conduit_router)
    assert (counts["quality_n"], counts["cost_n"], counts["latency_n"]) == (1, 1, 1)
    assert counts["quality_sum"] == pytest.approx(0.8)


@pytest.mark.parametrize("event_first", [False, True])
def test_record_feedback_right_after_sync_completion(attach: Any, event_first: bool) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = router.completion(model="fast", messages=MESSAGES)
    if event_first:
        settle_sync(strategy, 1)
    assert strategy.record_feedback(response, thumbs=False) == frozenset({"quality"})
    settle_sync(strategy, 1)
    counts = outcome_counts(strategy.conduit_router)
    assert (counts["quality_n"], counts["cost_n"], counts["quality_sum"]) == (1, 1, 0.0)


async def test_response_id_works_right_after_acompletion(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = await router.acompletion(model="fast", messages=MESSAGES)
    assert await strategy.arecord_feedback(response.id, rating=5) == frozenset({"quality"})
    await settle(strategy, 1)
    assert outcome_counts(strategy.conduit_router)["quality_n"] == 1


async def test_callers_own_call_id_is_kept(attach: Any) -> None:
    router = make(THREE)
    strategy = attach(router)
    response = await router.acompletion(model="fast", messages=MESSAGES, litellm_call_id="mine-1")
    assert response._hidden_params["litellm_call_id"] == "mine-1"
    assert strategy.record_feedback(response, quality=0.5) == frozenset({"quality"})


async def test_feedback_after_a_fallback_goes_to_the_deployment_that_answered(attach: Any) -> None:
    router = make(
        [
            deployment("a", "gpt-4o-mini", "bad", reply="litellm.InternalServerError"),
            deployment("b", "gpt-4o", "backup"),
        ],
        num_retries=1,
        retry_after=0,
        fallbacks=[{"a": ["b"]}],
        disable_cooldowns=True,
    )
    strategy = attach(router, scope="group")
    response = await router.acompletion(model="a", messages=MESSAGES)
    assert strategy.record_feedback(response, quality=0.9) == frozenset({"quality"})
    models = strategy.conduit_router.stats().models
    assert models["backup"].mean_quality == pytest.approx(0.9)
    assert models["bad"].feedback == 0 or models["bad"].mean_quality == 0.0  # only its failures


async def test_explicit_feedback_beats_the_automatic_signal(attach: Any) -> None:
    # blank, so automatic 0.0; not "": LiteLLM 1.74.9 ignores a falsy mock_response
    router = make([deployment("g", "gpt-4o-mini", "only", reply=" ")])
    strategy = attach(router)
    response = await router.acompletion(model="g", messages=MESSAGES)
    await settle(strategy, 1)
    assert strategy.conduit_router.stats().models["only"].mean_quality is None  # held
    assert strategy.record_feedback(response, thumbs=True) == frozenset({"quality"})
    strategy.cleanup()  # learns every held signal: none is left for this decision
    assert strategy.conduit_router.stats().models["only"].mean_quality == 1.0


async def test_held_signal_is_learned_at_cleanup(attach: Any) -> None:
    router = make([deployment("g", "gpt-4o-mini", "only", reply=" ")])  # blank, as above
    strategy = attach(router)
    await router.acompletion(model="g", messages=MESSAGES)
    await settle(strategy, 1)
    strategy.cleanup()
    assert strategy.conduit_router.stats().models["only"].mean_quality == 0.0


# -- the algorithm: use_hybrid passed through ---------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "algorithm"),
    [
        ({}, "hybrid"),
        ({"use_hybrid": True}, "hybrid"),
        ({"use_hybrid": False}, "thompson"),
        ({"use_hybrid": None}, "hybrid"),
        ({"use_hybrid": None, "bandit_algorithm": "linucb"}, "linucb"),
        ({"use_hybrid": False, "bandit_algorithm": "ucb1"}, "ucb1"),
    ],
)
def test_use_hybrid_reaches_the_router(
    attach: Any, kwargs: dict[str, Any], algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conduit_litellm._core as module

    given: list[Any] = []
    real = module.Router

    def spy(*args: Any, **router_kwargs: Any) -> Router:
        given.append(router_kwargs["use_hybrid"])
        return real(*args, **router_kwargs)

    monkeypatch.setattr(module, "Router", spy)
    strategy = attach(make(THREE), **kwargs)
    strategy.get_available_deployment("fast", MESSAGES)
    assert strategy.conduit_router.algorithm == algorithm
    assert given == [kwargs.get("use_hybrid")]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"use_hybrid": True, "bandit_algorithm": "linucb"},
            "use_hybrid=True contradicts bandit_algorithm='linucb'",
        ),
        (
            {"use_hybrid": None, "bandit_algorithm": "linucbb"},
            r"bandit_algorithm must be one of \[.*'linucb'",
        ),
        ({"use_hybrid": False, "bandit_algorithm": "hybrid"}, "use_hybrid=False contradicts"),
        ({"use_hybrid": "yes"}, "use_hybrid must be True, False or None"),
        ({"signal_grace": -1.0}, "signal_grace must be"),
    ],
)
def test_invalid_algorithm_arguments(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        ConduitRoutingStrategy(**kwargs)


def test_a_named_algorithm_wins_over_the_default_use_hybrid(attach: Any) -> None:
    strategy = ConduitRoutingStrategy(bandit_algorithm="linucb", embedding_backend="hashing")
    try:
        ConduitRoutingStrategy.setup_strategy(make(THREE), strategy)
        assert strategy.conduit_router is not None
        assert strategy.conduit_router.algorithm == "linucb"
    finally:
        strategy.cleanup()


# -- the usage guide's log lines ------------------------------------------------------------------
async def test_the_guides_log_lines(attach: Any, caplog: pytest.LogCaptureFixture) -> None:
    cheap = deployment("fast", "openai/no-price-model", "unpriced")
    router = make([*THREE, cheap])
    conduit = Router(
        ["mini", "turbo", "unpriced"], embedding_backend="hashing", bandit_algorithm="random"
    )
    with caplog.at_level(logging.DEBUG, logger="conduit_litellm"):
        strategy = attach(router, conduit_router=conduit)
        for i in range(12):
            await router.acompletion(model="fast", messages=[{"role": "user", "content": f"{i}"}])
        await settle(strategy, 12)
    found = {(r.name, r.levelname, r.getMessage().split(":")[0]) for r in caplog.records}
    for line in [
        (
            "conduit_litellm",
            "INFO",
            "Feedback logger registered with LiteLLM - bandit learning enabled",
        ),
        ("conduit_litellm", "WARNING", "Model not in router arms"),
        ("conduit_litellm", "DEBUG", "Bandit updated"),
        ("conduit_litellm.feedback", "DEBUG", "Feedback recorded"),
        (
            "conduit_litellm.feedback",
            "WARNING",
            "Cost unavailable in LiteLLM response (no response_cost, no price for unpriced)",
        ),
    ]:
        assert line in found, line
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Conduit selected ") and "(confidence: " in m for m in messages)
    assert any(
        m.startswith("Feedback recorded: model=mini, cost=$") and ", latency=" in m
        for m in messages
    )
    assert any(m.startswith("Bandit updated: arms=3, total_pulls=") for m in messages)


# -- the Redis feature cache ----------------------------------------------------------------------
@pytest.fixture
def redis_client() -> Iterator[Any]:
    try:
        import redis
    except ImportError as exc:
        service_missing("the redis client library", exc)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    yield client
    client.close()


async def test_redis_feature_cache_is_shared(attach: Any, redis_client: Any) -> None:
    prefix = f"conduit_test_{os.getpid()}_{time.monotonic_ns()}"
    try:
        made = []
        for _ in range(2):
            strategy = attach(make(THREE), cache_enabled=True, redis_url=REDIS_URL, cache_ttl=60)
            assert strategy._feature_cache is not None
            strategy._feature_cache.prefix = prefix  # this test's own keys
            await strategy.async_get_available_deployment("fast", MESSAGES, request_kwargs={})
            made.append(strategy._feature_cache)
        extractor = strategy.conduit_router.extractor
        assert extractor is not None and extractor.second_level is made[1]
        keys = [k.decode() for k in redis_client.scan_iter(match=f"{prefix}:*")]
        assert len(keys) == 1 and keys[0].startswith(f"{prefix}:{extractor.name}:")
        assert 0 < redis_client.ttl(keys[0]) <= 60
        assert (made[0].misses, made[1].hits) == (1, 1)  # the second process embedded nothing
    finally:
        for key in redis_client.scan_iter(match=f"{prefix}:*"):
            redis_client.delete(key)


async def test_redis_outage_leaves_routing_working(
    attach: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = make(THREE)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING):
        strategy = attach(router, cache_enabled=True, redis_url=closed)
        for i in range(5):
            response = await router.acompletion(
                model="fast", messages=[{"role": "user", "content": f"q{i}"}]
            )
            assert response.choices[0].message.content == "Paris."
    warned = [r for r in caplog.records if "Redis feature cache" in r.getMessage()]
    assert [(r.name, r.levelno) for r in warned] == [("conduit.features", logging.WARNING)]
    assert strategy.conduit_router.stats().total_decisions == 5


def test_cache_settings_with_a_given_router_warn(caplog: pytest.LogCaptureFixture) -> None:
    conduit = Router(["mini"], embedding_backend="hashing")
    with caplog.at_level(logging.WARNING, logger="conduit_litellm"):
        strategy = ConduitRoutingStrategy(conduit_router=conduit, cache_enabled=True)
    assert "cache_enabled is ignored with a given conduit_router" in caplog.text
    assert conduit.extractor is not None and conduit.extractor.second_level is None
    assert strategy.redis_url == "redis://localhost:6379"
