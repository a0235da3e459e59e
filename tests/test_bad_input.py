"""Bad input at every entry point: a clear error or the documented fallback, never a crash,
and learned state unchanged wherever nothing should be learned.

Each section is a table of (case, input, expected, message pattern), in the style of
Open Bandit Pipeline's invalid-input tables. ``expected`` is an exception class, or a
documented outcome: ``ROUTED`` (the strategy chose a deployment with a Conduit decision),
a feedback-logger outcome (``"unmatched"``, ``"learned"``, ...) or an HTTP status.

The documented decisions, case by case:

- Malformed ``messages`` (missing, empty, not a list, items that are not dicts, content
  of unknown shape, lone surrogates, NUL) are routed on whatever text there is (or
  ``"(no text)"``); LiteLLM then accepts or rejects the request itself.
- A prompt beyond every context window of the group, an unknown model group, a
  ``specific_deployment`` that names nothing and invalid ``conduit_preferences`` get
  LiteLLM's own ``BadRequestError`` (``ContextWindowExceededError`` for the first), as
  LiteLLM would raise without Conduit.
- A failure inside Conduit (a crash in the policy or the embedding, a corrupt state file,
  no deployment that is an arm) is served by LiteLLM's default choice: one WARNING per
  kind, counted in ``strategy.stats()["fallbacks.<Type>"]``.
- LiteLLM's logger hooks never raise; an event they cannot use is counted, not learned.
- The feedback endpoint does not check the Content-Type (``curl -d`` sends a form type);
  the body must be one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import base64
import copy
import datetime as dt
import gzip
import hashlib
import http.client
import json
import logging
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.types.router import RoutingContext

from conduit import (
    ConduitError,
    ConfigurationError,
    Constraints,
    InvalidFeedbackError,
    InvalidQueryError,
    LogFormatError,
    Router,
    StateError,
    StoreError,
    UnknownDecisionError,
)
from conduit._state import VERSION, encode
from conduit.cli import main as conduit_main
from conduit.replay.log import read_log
from conduit.simulator import Simulator
from conduit.stores import open_store
from conduit.stores._base import KIND, Meta
from conduit_litellm import ConduitRoutingPlugin, ConduitRoutingStrategy, _compat
from conduit_litellm.feedback import (
    DECISION_KEY,
    DEPLOYMENT_KEY,
    ConduitFeedbackLogger,
    FeedbackServer,
)

from .stores.conftest import create_database, drop_database

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

ROUTED = "routed"
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": QUESTION}]
FIVE_MB = "word " * 1_000_000
TOKEN = "bad-input-feedback-token"


def hashing_router(**kwargs: Any) -> Router:
    kwargs.setdefault("bandit_algorithm", "thompson")
    return Router(["a", "b"], embedding_backend="hashing", seed=0, **kwargs)


def snapshot(router: Router) -> tuple[dict[str, Any], Any]:
    return copy.deepcopy(router.state_dict()), router.stats()


@pytest.fixture
def unchanged(assert_same_state: Any) -> Callable[[Router, tuple[dict[str, Any], Any]], None]:
    """unchanged(router, before): the router learned nothing since ``snapshot(router)``."""

    def check(router: Router, before: tuple[dict[str, Any], Any]) -> None:
        assert_same_state(router.state_dict(), before[0])
        assert router.stats() == before[1]

    return check


@pytest.fixture(scope="module")
def restore_cost_map() -> Iterator[None]:
    """LiteLLM writes deployments' model_info into its global cost map: undo it after the
    module (every test here writes the same entries, so they cannot disturb each other)."""
    cost_map = copy.deepcopy(litellm.model_cost)
    yield
    litellm.model_cost.clear()
    litellm.model_cost.update(cost_map)


@pytest.fixture
def restore_litellm(restore_cost_map: None) -> Iterator[None]:
    """Put LiteLLM's callback lists back as they were after each test."""
    callbacks = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    yield
    for name, entries in callbacks.items():
        getattr(litellm, name)[:] = entries


# -- the strategy's picks (LiteLLM's routing hooks) ------------------------------------------------
def deployment(group: str, model: str, id: str, **info: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "mock_response": "Paris."},
        "model_info": {"id": id, **info},
    }


DEPLOYMENTS = [
    deployment("fast", "gpt-4o-mini", "mini"),
    deployment("fast", "gpt-3.5-turbo", "turbo"),
    deployment("blind", "openai/blind-model", "blind", supports_vision=False),
    deployment("local", "openai/local-model", "local"),  # no known context window
]
GROUPS = {"fast": {"mini", "turbo"}, "blind": {"blind"}, "local": {"local"}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOL_TURN = [
    {"role": "user", "content": "What is 6 * 7? Use the calculator."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
]


def make_litellm() -> litellm.Router:
    return litellm.Router(model_list=copy.deepcopy(DEPLOYMENTS), num_retries=0)


@pytest.fixture
def strategies(restore_litellm: None) -> Iterator[Callable[..., ConduitRoutingStrategy]]:
    """strategies(**kwargs) -> a strategy set up on a fresh litellm.Router, cleaned up after."""
    made: list[ConduitRoutingStrategy] = []

    def make(**kwargs: Any) -> ConduitRoutingStrategy:
        kwargs.setdefault("embedding_backend", "hashing")
        kwargs.setdefault("seed", 0)
        kwargs.setdefault("scope", "group")
        strategy = ConduitRoutingStrategy(**kwargs)
        ConduitRoutingStrategy.setup_strategy(make_litellm(), strategy)
        made.append(strategy)
        return strategy

    yield make
    for strategy in made:
        strategy.cleanup()


def meta(**fields: Any) -> dict[str, Any]:
    return {"metadata": fields}


PICK_CASES: list[tuple[str, str, Any, dict[str, Any], Any, str | None]] = [
    # (case, model group, messages, request_kwargs, expected, message pattern)
    ("messages missing", "fast", None, {}, ROUTED, None),
    ("messages empty", "fast", [], {}, ROUTED, None),
    ("messages a str, not a list", "fast", "What is 2 + 2?", {}, ROUTED, None),
    ("messages an int", "fast", 5, {}, ROUTED, None),
    ("messages a dict", "fast", {"role": "user", "content": "hi"}, {}, ROUTED, None),
    ("items not dicts", "fast", ["hi", 3, None, ["x"]], {}, ROUTED, None),
    ("message without content", "fast", [{"role": "user"}], {}, ROUTED, None),
    ("content an int", "fast", [{"role": "user", "content": 5}], {}, ROUTED, None),
    (
        "content parts of unknown shape",
        "fast",
        [{"role": "user", "content": [1, {}]}],
        {},
        ROUTED,
        None,
    ),
    (
        "multimodal text and image",
        "fast",
        [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
        {},
        ROUTED,
        None,
    ),
    ("image only, no text", "fast", [{"role": "user", "content": [IMAGE]}], {}, ROUTED, None),
    (
        "image to a group without vision",
        "blind",
        [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
        {},
        litellm.BadRequestError,
        "does not support images",
    ),
    ("tool-call-only assistant turn", "fast", TOOL_TURN, {}, ROUTED, None),
    ("lone surrogate", "fast", [{"role": "user", "content": "caf\ud800 ?"}], {}, ROUTED, None),
    ("NUL characters", "fast", [{"role": "user", "content": "a\x00b\x00"}], {}, ROUTED, None),
    (
        "5 MB prompt beyond every context window",
        "fast",
        [{"role": "user", "content": FIVE_MB}],
        {},
        litellm.ContextWindowExceededError,
        "exceeds its context window",
    ),
    (
        "5 MB prompt, window unknown",
        "local",
        [{"role": "user", "content": FIVE_MB}],
        {},
        ROUTED,
        None,
    ),
    ("unknown model group", "nope", MESSAGES, {}, litellm.BadRequestError, "no deployment serves"),
    (
        "conduit_preferences unknown",
        "fast",
        MESSAGES,
        meta(conduit_preferences="cheap"),
        litellm.BadRequestError,
        "conduit_preferences='cheap' is invalid",
    ),
    (
        "conduit_preferences of the wrong type",
        "fast",
        MESSAGES,
        meta(conduit_preferences=[1, 2]),
        litellm.BadRequestError,
        "is invalid",
    ),
    (
        "conduit_preferences with NaN weight",
        "fast",
        MESSAGES,
        meta(conduit_preferences={"quality": float("nan")}),
        litellm.BadRequestError,
        "is invalid",
    ),
    ("metadata not a dict", "fast", MESSAGES, {"metadata": "oops"}, ROUTED, None),
    (
        "earlier attempt's decision id in metadata",
        "fast",
        MESSAGES,
        meta(conduit_decision_id="0" * 32),
        ROUTED,
        None,
    ),
]


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize(
    ("case", "group", "messages", "request_kwargs", "expected", "pattern"),
    PICK_CASES,
    ids=[c[0] for c in PICK_CASES],
)
async def test_strategy_pick(
    strategies: Callable[..., ConduitRoutingStrategy],
    unchanged: Any,
    path: str,
    case: str,
    group: str,
    messages: Any,
    request_kwargs: dict[str, Any],
    expected: Any,
    pattern: str | None,
) -> None:
    strategy = strategies()
    strategy.get_available_deployment("fast", MESSAGES)  # builds the Conduit router
    conduit = strategy.conduit_router
    assert conduit is not None
    before = snapshot(conduit)
    request_kwargs = copy.deepcopy(request_kwargs)

    async def pick() -> dict[str, Any]:
        args = (group, messages, None, False, request_kwargs)
        if path == "sync":
            return strategy.get_available_deployment(*args)
        return await strategy.async_get_available_deployment(*args)

    if expected is ROUTED:
        chosen = await pick()
        assert chosen["model_info"]["id"] in GROUPS[group]
        stamped = request_kwargs[_compat.metadata_key(request_kwargs)]
        assert stamped[DEPLOYMENT_KEY] == chosen["model_info"]["id"]
        assert stamped[DECISION_KEY] != "0" * 32  # this attempt's own decision
        after = conduit.stats()
        assert after.total_decisions == before[1].total_decisions + 1
        assert after.total_feedback == before[1].total_feedback  # a pick learns nothing
        assert strategy.stats()["fallbacks"] == 0
    else:
        with pytest.raises(expected, match=pattern):
            await pick()
        unchanged(conduit, before)


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure inside Conduit")


async def aboom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure inside Conduit")


def policy_crashes(strategy: ConduitRoutingStrategy, monkeypatch: pytest.MonkeyPatch) -> None:
    conduit = strategy.conduit_router
    assert conduit is not None
    monkeypatch.setattr(conduit, "route_sync", boom)
    monkeypatch.setattr(conduit, "route", aboom)


def embedding_crashes(strategy: ConduitRoutingStrategy, monkeypatch: pytest.MonkeyPatch) -> None:
    conduit = strategy.conduit_router
    assert conduit is not None and conduit.extractor is not None
    monkeypatch.setattr(conduit.extractor, "compute", boom)


FAILURE_CASES: list[tuple[str, Callable[[Path], dict[str, Any]], Any, str]] = [
    # (case, strategy kwargs, what breaks after the first pick, warned kind)
    ("policy crashes", lambda tmp: {}, policy_crashes, "RuntimeError"),
    ("embedding crashes", lambda tmp: {}, embedding_crashes, "RuntimeError"),
    # a corrupt state file fails setup_strategy (tests/conduit_litellm/test_setup_errors.py)
    (
        "no deployment is an arm",
        lambda tmp: {"conduit_router": Router(["elsewhere"], embedding_backend="hashing")},
        None,
        "ConfigurationError",
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "breaks", "kind"), FAILURE_CASES, ids=[c[0] for c in FAILURE_CASES]
)
async def test_a_failure_inside_conduit_falls_back_to_litellms_choice(
    strategies: Callable[..., ConduitRoutingStrategy],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    case: str,
    kwargs: Callable[[Path], dict[str, Any]],
    breaks: Any,
    kind: str,
) -> None:
    (tmp_path / "corrupt.json").write_text('{"format": "conduit-state", "vers', encoding="utf-8")
    strategy = strategies(**kwargs(tmp_path))
    router = strategy._litellm_router
    if breaks is not None:
        strategy.get_available_deployment("fast", MESSAGES)
        breaks(strategy, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="conduit_litellm"):
        for i in range(3):
            asked = [{"role": "user", "content": f"question {i}"}]
            answer = await router.acompletion(model="fast", messages=asked)
            assert answer.choices[0].message.content == "Paris."
            answer = router.completion(model="fast", messages=asked)
            assert answer.choices[0].message.content == "Paris."
    assert strategy.stats()["fallbacks"] == 6
    assert strategy.stats()[f"fallbacks.{kind}"] == 6
    warned = [r for r in caplog.records if "Conduit failed on a request" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in warned]  # once per kind, not per request
    assert kind in warned[0].getMessage() and "LiteLLM's default choice" in warned[0].getMessage()


async def test_fallback_spreads_over_the_group_and_skips_cooldowns(
    strategies: Callable[..., ConduitRoutingStrategy], monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = strategies()
    strategy.get_available_deployment("fast", MESSAGES)
    policy_crashes(strategy, monkeypatch)
    picks = {
        strategy.get_available_deployment("fast", MESSAGES)["model_info"]["id"] for _ in range(40)
    }
    assert picks == {"mini", "turbo"}  # random over the group, as simple-shuffle
    monkeypatch.setattr(_compat, "active_cooldowns", lambda router, ids: {"mini"})
    picks = {
        strategy.get_available_deployment("fast", MESSAGES)["model_info"]["id"] for _ in range(20)
    }
    assert picks == {"turbo"}


async def test_a_retry_that_falls_back_drops_the_earlier_decision(
    strategies: Callable[..., ConduitRoutingStrategy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcome of an attempt Conduit did not route is not learned against the previous
    attempt's decision."""
    strategy = strategies()
    request_kwargs: dict[str, Any] = {"metadata": {"user": "kept"}}
    strategy.get_available_deployment("fast", MESSAGES, request_kwargs=request_kwargs)
    first = request_kwargs["metadata"][DECISION_KEY]
    assert request_kwargs["litellm_call_id"] == f"conduit-{first}"
    policy_crashes(strategy, monkeypatch)
    strategy.get_available_deployment("fast", MESSAGES, request_kwargs=request_kwargs)
    assert request_kwargs["metadata"] == {"user": "kept"}
    assert not request_kwargs["litellm_call_id"].startswith("conduit-")


# -- the engine: Router.route_sync and Router.update_sync ----------------------------------------
ENGINE_CASES: list[tuple[str, Callable[[Router, str], object], Any, str]] = [
    # (case, call given a router and one of its decision ids, error, message pattern)
    ("query None", lambda r, d: r.route_sync(None), InvalidQueryError, "must be a str"),
    ("query empty", lambda r, d: r.route_sync(""), InvalidQueryError, "empty or only whitespace"),
    ("query whitespace", lambda r, d: r.route_sync(" \n\t\u3000"), InvalidQueryError, "empty"),
    ("query bytes", lambda r, d: r.route_sync(b"hi"), InvalidQueryError, "must be a str"),
    (
        "preferences unknown",
        lambda r, d: r.route_sync("hi", preferences="cheap"),
        InvalidQueryError,
        "unknown preference",
    ),
    ("cost NaN", lambda r, d: r.update_sync(d, cost=float("nan")), InvalidFeedbackError, "finite"),
    ("cost negative", lambda r, d: r.update_sync(d, cost=-0.01), InvalidFeedbackError, ">= 0"),
    (
        "cost huge",
        lambda r, d: r.update_sync(d, cost=1e300),
        InvalidFeedbackError,
        "at most 1e\\+06",
    ),
    (
        "latency infinite",
        lambda r, d: r.update_sync(d, latency=float("inf")),
        InvalidFeedbackError,
        "finite",
    ),
    ("latency huge", lambda r, d: r.update_sync(d, latency=1e12), InvalidFeedbackError, "at most"),
    (
        "one bad part refuses all",
        lambda r, d: r.update_sync(d, quality=1.0, cost=-1.0),
        InvalidFeedbackError,
        "cost",
    ),
    ("nothing given", lambda r, d: r.update_sync(d), InvalidFeedbackError, "at least one of"),
    (
        "decision id empty",
        lambda r, d: r.update_sync("", quality=1.0),
        InvalidFeedbackError,
        "non-empty str",
    ),
    (
        "decision id an int",
        lambda r, d: r.update_sync(7, quality=1.0),
        InvalidFeedbackError,
        "non-empty str",
    ),
    (
        "decision id unknown",
        lambda r, d: r.update_sync("f" * 32, quality=1.0),
        UnknownDecisionError,
        "no pending",
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "error", "pattern"), ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES]
)
def test_engine(
    unchanged: Any, case: str, call: Callable[[Router, str], object], error: Any, pattern: str
) -> None:
    router = hashing_router()
    decision = router.route_sync(QUESTION).decision_id
    before = snapshot(router)
    with pytest.raises(error, match=pattern):
        call(router, decision)
    unchanged(router, before)
    assert router.update_sync(decision, quality=1.0, cost=0.01) == {"quality", "cost"}  # still fine


# -- the feedback logger's hooks (LiteLLM calls them with whatever it has) -------------------------
START = dt.datetime(2026, 1, 1, 12, 0, 0)
END = START + dt.timedelta(seconds=1.5)


def good_event(decision_id: str, **override: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "litellm_params": {
            "metadata": {DECISION_KEY: decision_id, DEPLOYMENT_KEY: "a"},
            "model_info": {"id": "a"},
        },
        "response_cost": 0.002,
        "standard_logging_object": {"response_time": 1.5},
    }
    event.update(override)
    return event


def reply(content: str = "Paris.") -> litellm.ModelResponse:
    return litellm.ModelResponse(
        id="chatcmpl-bad-input",
        choices=[
            {
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "index": 0,
            }
        ],
        usage={"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    )


ONLY_A = Constraints(allowed_models=frozenset({"a"}))


def learned(router: Router) -> dict[str, int]:
    state = router.state_dict()["outcomes"]
    sums = {key: float(state["sums"][:, i].sum()) for i, key in enumerate(state["keys"])}
    return {part: int(sums[f"{part}_n"]) for part in ("quality", "cost", "latency")}


Args = tuple[Any, Any, Any, Any]
LOGGER_CASES: list[tuple[str, str, Callable[[str], Args], str, set[str]]] = [
    # (case, hook, (kwargs, response, start, end) for a decision, outcome, parts learned).
    # A plain successful answer says nothing about quality; a failure is quality 0.
    ("kwargs None", "success", lambda d: (None, reply(), START, END), "unmatched", set()),
    ("kwargs a list", "success", lambda d: ([d], reply(), START, END), "unmatched", set()),
    (
        "litellm_params a str",
        "success",
        lambda d: ({"litellm_params": "x"}, reply(), START, END),
        "unmatched",
        set(),
    ),
    (
        "metadata a str",
        "success",
        lambda d: ({"litellm_params": {"metadata": "x"}}, reply(), START, END),
        "unmatched",
        set(),
    ),
    (
        "plugin signals a list",
        "success",
        lambda d: (
            {"litellm_params": {"metadata": {"routing_plugin_signals": [d]}}},
            reply(),
            START,
            END,
        ),
        "unmatched",
        set(),
    ),
    (
        "decision id an int",
        "success",
        lambda d: (
            good_event(d, litellm_params={"metadata": {DECISION_KEY: 7}}),
            reply(),
            START,
            END,
        ),
        "unmatched",
        set(),
    ),
    (
        "unknown decision id",
        "success",
        lambda d: (good_event("f" * 32), reply(), START, END),
        "unmatched",
        set(),
    ),
    (
        "served by another deployment",
        "success",
        lambda d: (
            good_event(
                d,
                litellm_params={
                    "metadata": {DECISION_KEY: d, DEPLOYMENT_KEY: "a"},
                    "model_info": {"id": "b"},
                },
            ),
            reply(),
            START,
            END,
        ),
        "unmatched",
        set(),
    ),
    (
        "response None",
        "success",
        lambda d: (good_event(d), None, START, END),
        "learned",
        {"cost", "latency"},
    ),
    (
        "response garbage",
        "success",
        lambda d: (good_event(d), 42, START, END),
        "learned",
        {"cost", "latency"},
    ),
    (
        "times are strings",
        "success",
        lambda d: (good_event(d, standard_logging_object={}), reply(), "noon", "later"),
        "learned",
        {"cost"},
    ),
    (
        "aware start, naive end",
        "success",
        lambda d: (
            good_event(d, standard_logging_object={}),
            reply(),
            START.replace(tzinfo=dt.UTC),
            END,
        ),
        "learned",
        {"cost"},
    ),
    (
        "response_time NaN",
        "success",
        lambda d: (
            good_event(d, standard_logging_object={"response_time": float("nan")}),
            reply(),
            None,
            None,
        ),
        "learned",
        {"cost"},
    ),
    (
        "response_time huge",
        "success",
        lambda d: (
            good_event(d, standard_logging_object={"response_time": 1e300}),
            reply(),
            None,
            None,
        ),
        "learned",
        {"cost"},
    ),
    (
        "response_cost NaN",
        "success",
        lambda d: (good_event(d, response_cost=float("nan")), reply(), START, END),
        "learned",
        {"latency"},
    ),
    (
        "response_cost negative",
        "success",
        lambda d: (good_event(d, response_cost=-1.0), reply(), START, END),
        "learned",
        {"latency"},
    ),
    (
        "response_cost huge",
        "success",
        lambda d: (good_event(d, response_cost=1e300), reply(), START, END),
        "learned",
        {"latency"},
    ),
    (
        "response_cost a str",
        "success",
        lambda d: (good_event(d, response_cost="0.002"), reply(), START, END),
        "learned",
        {"latency"},
    ),
    (
        "failure with a str for an exception",
        "failure",
        lambda d: (good_event(d, exception="boom", response_cost=None), None, START, END),
        "learned",
        {"quality"},
    ),
    (
        "failure billed NaN",
        "failure",
        lambda d: (
            good_event(d, exception=ValueError("x"), response_cost=float("nan")),
            None,
            START,
            END,
        ),
        "learned",
        {"quality"},
    ),
]


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("case", "hook", "make", "outcome", "parts"), LOGGER_CASES, ids=[c[0] for c in LOGGER_CASES]
)
async def test_logger_hook(
    sync: bool,
    case: str,
    hook: str,
    make: Callable[[str], Args],
    outcome: str,
    parts: set[str],
) -> None:
    conduit = hashing_router()
    feedback = ConduitFeedbackLogger(router=lambda: conduit, signal_grace=0)
    decision = conduit.route_sync(QUESTION, constraints=ONLY_A).decision_id
    before = learned(conduit)
    args = make(decision)
    name = f"log_{hook}_event" if sync else f"async_log_{hook}_event"
    result = getattr(feedback, name)(*args)
    if not sync:
        result = await result
    assert result is None  # a hook returns nothing and raises nothing
    assert feedback.stats()[outcome] == 1, feedback.stats()
    after = learned(conduit)
    assert {p for p in after if after[p] != before[p]} == parts


async def test_logger_hooks_learn_a_replayed_event_once(unchanged: Any) -> None:
    conduit = hashing_router()
    feedback = ConduitFeedbackLogger(router=lambda: conduit, signal_grace=0)
    decision = conduit.route_sync(QUESTION, constraints=ONLY_A).decision_id
    feedback.log_success_event(good_event(decision), reply(""), START, END)
    before = snapshot(conduit)
    feedback.log_success_event(good_event(decision), reply(""), START, END)
    await feedback.async_log_failure_event(good_event(decision), None, START, END)
    assert feedback.stats()["duplicates"] == 2
    unchanged(conduit, before)


# -- explicit feedback (record_feedback) -----------------------------------------------------------
FEEDBACK_CASES: list[tuple[str, dict[str, Any], Any, str]] = [
    # (case, arguments, error, message pattern); the id is a real decision unless given
    (
        "quality NaN",
        {"quality": float("nan")},
        InvalidFeedbackError,
        r"quality must be in \[0, 1\]",
    ),
    ("quality infinite", {"quality": float("inf")}, InvalidFeedbackError, r"in \[0, 1\]"),
    ("quality negative", {"quality": -0.5}, InvalidFeedbackError, r"in \[0, 1\]"),
    ("quality huge", {"quality": 1e308}, InvalidFeedbackError, r"in \[0, 1\]"),
    ("quality a str", {"quality": "0.5"}, InvalidFeedbackError, "must be a number"),
    ("quality a bool", {"quality": True}, InvalidFeedbackError, "must be a number"),
    ("thumbs a str", {"thumbs": "yes"}, InvalidFeedbackError, "thumbs must be True or False"),
    ("thumbs an int", {"thumbs": 1}, InvalidFeedbackError, "thumbs must be True or False"),
    ("rating 0", {"rating": 0}, InvalidFeedbackError, "rating must be an int from 1 to 5"),
    ("rating 6", {"rating": 6}, InvalidFeedbackError, "from 1 to 5"),
    ("rating a float", {"rating": 2.5}, InvalidFeedbackError, "from 1 to 5"),
    ("rating a bool", {"rating": True}, InvalidFeedbackError, "from 1 to 5"),
    ("rating a str", {"rating": "5"}, InvalidFeedbackError, "from 1 to 5"),
    ("no judgement", {}, InvalidFeedbackError, "give exactly one of"),
    ("two judgements", {"thumbs": True, "rating": 5}, InvalidFeedbackError, "got thumbs, rating"),
    (
        "unknown id",
        {"id": "chatcmpl-never", "thumbs": True},
        UnknownDecisionError,
        "unknown response",
    ),
    ("empty id", {"id": "", "thumbs": True}, InvalidFeedbackError, "expected a LiteLLM response"),
    ("id of 1 MB", {"id": "x" * 1_000_000, "thumbs": True}, InvalidFeedbackError, "at most 256"),
    ("an int for a response", {"id": 42, "thumbs": True}, InvalidFeedbackError, "got int"),
    (
        "a dict without id",
        {"id": {"choices": []}, "thumbs": True},
        InvalidFeedbackError,
        "got dict",
    ),
    ("an object without id", {"id": object(), "thumbs": True}, InvalidFeedbackError, "got object"),
]


@pytest.mark.parametrize(
    ("case", "arguments", "error", "pattern"), FEEDBACK_CASES, ids=[c[0] for c in FEEDBACK_CASES]
)
def test_record_feedback(
    unchanged: Any, case: str, arguments: dict[str, Any], error: Any, pattern: str
) -> None:
    conduit = hashing_router()
    feedback = ConduitFeedbackLogger(router=lambda: conduit, signal_grace=0)
    arguments = dict(arguments)
    target = arguments.pop("id", conduit.route_sync(QUESTION).decision_id)
    before = snapshot(conduit)
    with pytest.raises(error, match=pattern):
        feedback.record_feedback(target, **arguments)
    unchanged(conduit, before)


def test_record_feedback_replayed_is_ignored(unchanged: Any) -> None:
    conduit = hashing_router()
    feedback = ConduitFeedbackLogger(router=lambda: conduit, signal_grace=0)
    decision = conduit.route_sync(QUESTION).decision_id
    assert feedback.record_feedback({"id": decision}, thumbs=True) == {"quality"}
    before = snapshot(conduit)
    assert feedback.record_feedback(decision, rating=1) == frozenset()  # documented: ignored
    unchanged(conduit, before)


# -- the HTTP feedback endpoint -------------------------------------------------------------------
@pytest.fixture(scope="module")
def feedback_server() -> Iterator[tuple[FeedbackServer, dict[str, Router]]]:
    """One endpoint for the module (closing one takes up to half a second); each test gives
    it a fresh router through ``current``."""
    current: dict[str, Router] = {}
    feedback = ConduitFeedbackLogger(router=lambda: current.get("router"), signal_grace=0)
    server = FeedbackServer(feedback, token=TOKEN, timeout=0.5).start()
    yield server, current
    server.close()


@pytest.fixture
def endpoint(
    feedback_server: tuple[FeedbackServer, dict[str, Router]],
) -> tuple[FeedbackServer, Router]:
    server, current = feedback_server
    current["router"] = hashing_router()
    return server, current["router"]


def raw_request(
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str | None = None,
    send: bytes | None = None,
) -> tuple[int, Any]:
    """One request with exactly these headers (no Content-Length unless given); the JSON answer."""
    parts = url.split("/")
    host, port = parts[2].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, path or "/" + "/".join(parts[3:]), skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body if send is None else send)
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None
    finally:
        conn.close()


def auth(body: bytes, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(len(body)), **extra}


GOOD_BODY = b'{"decision_id": "%s", "thumbs": true}'
DEEP = b"[" * 20_000 + b"]" * 20_000
HTTP_CASES: list[tuple[str, Callable[[bytes], dict[str, Any]], int, str]] = [
    # (case, request given a valid body for a real decision, status, error pattern)
    ("no token", lambda b: {"body": b, "headers": {"Content-Length": str(len(b))}}, 401, "token"),
    (
        "wrong token",
        lambda b: {"body": b, "headers": {**auth(b), "Authorization": "Bearer " + "x" * 24}},
        401,
        "token",
    ),
    (
        "token in another scheme",
        lambda b: {"body": b, "headers": {**auth(b), "Authorization": f"Basic {TOKEN}"}},
        401,
        "token",
    ),
    ("wrong path", lambda b: {"body": b, "headers": auth(b), "path": "/admin"}, 404, "not found"),
    (
        "GET",
        lambda b: {"method": "GET", "headers": {"Authorization": f"Bearer {TOKEN}"}},
        405,
        "not allowed",
    ),
    ("DELETE", lambda b: {"method": "DELETE", "headers": auth(b"")}, 405, "not allowed"),
    (
        "huge Content-Length",
        lambda b: {"body": b, "headers": {**auth(b), "Content-Length": str(10**12)}},
        400,
        "body must be 1..",
    ),
    (
        "negative Content-Length",
        lambda b: {"body": b, "headers": {**auth(b), "Content-Length": "-5"}},
        400,
        "body must be 1..",
    ),
    (
        "Content-Length not a number",
        lambda b: {"body": b, "headers": {**auth(b), "Content-Length": "ten"}},
        400,
        "bad Content-Length",
    ),
    (
        "no Content-Length (chunked)",
        lambda b: {
            "send": b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b),
            "headers": {"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"},
        },
        400,
        "body must be 1..",
    ),
    (
        "not JSON",
        lambda b: {"body": b"thumbs up!", "headers": auth(b"thumbs up!")},
        400,
        "not JSON",
    ),
    ("not UTF-8", lambda b: {"body": b"\xff\xfe{", "headers": auth(b"\xff\xfe{")}, 400, "not JSON"),
    (
        "JSON array",
        lambda b: {"body": b"[" + b + b"]", "headers": auth(b"[" + b + b"]")},
        400,
        "JSON object",
    ),
    ("deep nesting", lambda b: {"body": DEEP, "headers": auth(DEEP)}, 400, "not JSON"),
    (
        "form-encoded body",
        lambda b: {
            "body": b"thumbs=true",
            "headers": auth(
                b"thumbs=true", **{"Content-Type": "application/x-www-form-urlencoded"}
            ),
        },
        400,
        "not JSON",
    ),
    (
        "JSON under a wrong Content-Type (accepted: documented)",
        lambda b: {"body": b, "headers": auth(b, **{"Content-Type": "text/plain"})},
        200,
        "",
    ),
    (
        "id not a str",
        lambda b: _json_case(b, decision_id=None, response_id=5),
        400,
        "give response_id",
    ),
    (
        "quality a str",
        lambda b: _json_case(b, quality="high", thumbs=None),
        400,
        "quality must be a number",
    ),
    ("quality NaN", lambda b: _json_case(b, quality=float("nan"), thumbs=None), 400, r"\[0, 1\]"),
    ("rating 9", lambda b: _json_case(b, rating=9, thumbs=None), 400, "from 1 to 5"),
    ("unknown id", lambda b: _json_case(b, decision_id="f" * 32), 404, "unknown response"),
    (
        "body stops short of Content-Length",
        lambda b: {"body": b[:5], "headers": {**auth(b), "Content-Length": str(len(b) + 50)}},
        408,
        "did not arrive",
    ),
]


def _json_case(body: bytes, **fields: Any) -> dict[str, Any]:
    payload = {k: v for k, v in {**json.loads(body), **fields}.items() if v is not None}
    data = json.dumps(payload).encode()  # allow_nan: NaN goes out as the literal NaN
    return {"body": data, "headers": auth(data)}


@pytest.mark.parametrize(
    ("case", "request_of", "status", "pattern"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES]
)
def test_feedback_endpoint(
    endpoint: tuple[FeedbackServer, Router],
    unchanged: Any,
    case: str,
    request_of: Callable[[bytes], dict[str, Any]],
    status: int,
    pattern: str,
) -> None:
    server, conduit = endpoint
    decision = conduit.route_sync(QUESTION).decision_id
    before = snapshot(conduit)
    got, answer = raw_request(server.url, **request_of(GOOD_BODY % decision.encode()))
    assert got == status, answer
    if status == 200:
        assert answer == {"learned": ["quality"]}
        assert conduit.stats().total_feedback == 1
    else:
        assert re.search(pattern, answer["error"]), answer
        unchanged(conduit, before)
    # the endpoint still serves after every hostile request
    body = GOOD_BODY % conduit.route_sync(QUESTION).decision_id.encode()
    assert raw_request(server.url, body, auth(body)) == (200, {"learned": ["quality"]})


def test_feedback_endpoint_replayed_request_learns_once(
    endpoint: tuple[FeedbackServer, Router], unchanged: Any
) -> None:
    server, conduit = endpoint
    body = GOOD_BODY % conduit.route_sync(QUESTION).decision_id.encode()
    assert raw_request(server.url, body, auth(body)) == (200, {"learned": ["quality"]})
    before = snapshot(conduit)
    assert raw_request(server.url, body, auth(body)) == (200, {"learned": []})
    unchanged(conduit, before)


# -- the proxy routing plugin ----------------------------------------------------------------------
def context(**fields: Any) -> RoutingContext:
    values: dict[str, Any] = {
        "raw_messages": MESSAGES,
        "structured_messages": MESSAGES,
        "candidate_models": ["gpt-4o-mini", "gpt-4o"],
        "metadata": {},
        "signals": {},
    }
    values.update(fields)
    return RoutingContext.model_construct(**values)  # as hostile as a caller can make it


PLUGIN_CASES: list[tuple[str, dict[str, Any], Any]] = [
    # (case, context fields, expected: ROUTED or the candidates LiteLLM keeps on a fallback)
    ("messages not a list", {"structured_messages": "hello"}, ROUTED),
    ("message items not dicts", {"structured_messages": ["hi", 5]}, ROUTED),
    ("5 MB prompt", {"structured_messages": [{"role": "user", "content": FIVE_MB}]}, ROUTED),
    # unknown preferences: a 400, as from the strategy (tests/conduit_litellm/test_contract.py)
    ("no candidates", {"candidate_models": []}, []),
    ("metadata not a dict", {"metadata": "oops"}, ROUTED),
    ("candidates not a list", {"candidate_models": 5}, 5),
]


@pytest.mark.parametrize(
    ("case", "fields", "expected"), PLUGIN_CASES, ids=[c[0] for c in PLUGIN_CASES]
)
async def test_plugin_run(case: str, fields: dict[str, Any], expected: Any) -> None:
    plugin = ConduitRoutingPlugin(embedding_backend="hashing", seed=0, bandit_algorithm="random")
    try:
        ctx = await plugin.run(context(**fields))
        if expected is ROUTED:
            assert ctx.candidate_models in (["gpt-4o-mini"], ["gpt-4o"])
            assert DECISION_KEY in ctx.signals["conduit"]
            assert plugin.stats()["fallbacks"] == 0
        else:
            assert ctx.candidate_models == expected  # as it came: LiteLLM chooses
            assert "conduit" not in ctx.signals
    finally:
        plugin.cleanup()


async def test_plugin_falls_back_when_conduit_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = ConduitRoutingPlugin(embedding_backend="hashing", seed=0, bandit_algorithm="random")
    try:
        await plugin.run(context())
        assert plugin.conduit_router is not None
        monkeypatch.setattr(plugin.conduit_router, "route", aboom)
        with caplog.at_level(logging.WARNING, logger="conduit_litellm"):
            for _ in range(3):
                ctx = await plugin.run(context())
                assert ctx.candidate_models == ["gpt-4o-mini", "gpt-4o"]
        assert plugin.stats()["fallbacks.RuntimeError"] == 3
        warned = [r for r in caplog.records if "Conduit failed on a request" in r.getMessage()]
        assert len(warned) == 1
    finally:
        plugin.cleanup()


# -- saved state files -----------------------------------------------------------------------------
def _envelope(payload: Any, **override: Any) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    outer = {
        "format": "conduit-state",
        "version": VERSION,
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
        "payload": payload,
    }
    outer.update(override)
    return json.dumps(outer)


def _array(dtype: str, shape: list[int], data: bytes) -> dict[str, Any]:
    return {
        "__ndarray__": {"dtype": dtype, "shape": shape, "data": base64.b64encode(data).decode()}
    }


def _saved(tmp_path: Path) -> str:
    router = hashing_router()
    decision = router.route_sync(QUESTION)
    router.update_sync(decision.decision_id, quality=1.0, cost=0.01)
    return router.save(tmp_path / "good.json").read_text(encoding="utf-8")


def _edit_payload(text: str, edit: Callable[[dict[str, Any]], None], *, fix_sum: bool) -> str:
    outer = json.loads(text)
    edit(outer["payload"])
    return _envelope(outer["payload"]) if fix_sum else json.dumps(outer)


def _first_array(payload: dict[str, Any]) -> dict[str, Any]:
    stack: list[Any] = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__ndarray__" in item:
                return item["__ndarray__"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError("no array in the state")


STATE_CASES: list[tuple[str, Callable[[str], str | bytes | None], str]] = [
    # (case, good saved text -> the file's content (None: no file), message pattern)
    ("missing file", lambda good: None, "cannot read"),
    ("empty file", lambda good: "", "not valid JSON"),
    ("truncated JSON", lambda good: good[: len(good) // 2], "not valid JSON"),
    ("binary garbage", lambda good: b"\x89PNG\r\n\x1a\n\xff\xfe", "not valid JSON|cannot read"),
    ("a JSON array", lambda good: "[1, 2, 3]", "not a Conduit state"),
    ("another format", lambda good: good.replace("conduit-state", "other-state"), "format"),
    ("wrong version", lambda good: _envelope(json.loads(good)["payload"], version=2), "version 2"),
    (
        "version a str",
        lambda good: _envelope(json.loads(good)["payload"], version="1"),
        "version '1'",
    ),
    (
        "bad checksum",
        lambda good: _edit_payload(
            good, lambda p: p["router"].update(algorithm="x"), fix_sum=False
        ),
        "checksum",
    ),
    (
        "wrong array shape",
        lambda good: _edit_payload(
            good, lambda p: _first_array(p).update(shape=[7, 3]), fix_sum=True
        ),
        "malformed array",
    ),
    (
        "base64 garbage",
        lambda good: _edit_payload(
            good, lambda p: _first_array(p).update(data="!!not base64!!"), fix_sum=True
        ),
        "malformed array",
    ),
    (
        "object dtype",
        lambda good: _edit_payload(
            good, lambda p: _first_array(p).update(dtype="|O"), fix_sum=True
        ),
        "unsupported dtype",
    ),
    (
        "NaN in an array",
        lambda good: _envelope({"router": {"x": _array("<f8", [1], b"\x00" * 6 + b"\xf8\x7f")}}),
        "NaN or infinity",
    ),
    (
        "NaN literal",
        lambda good: good.replace('"payload":{', '"payload":{"x":NaN,'),
        "non-finite numbers",
    ),
    ("nested 100k deep", lambda good: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("no router state", lambda good: _envelope({"something": "else"}), "holds no router state"),
    (
        "another algorithm's state",
        lambda good: _edit_payload(
            good, lambda p: p["router"].update(algorithm="linucb"), fix_sum=True
        ),
        "learned by 'linucb'",
    ),
    (
        "other features",
        lambda good: _edit_payload(
            good, lambda p: p["router"].update(features="onnx/p64"), fix_sum=True
        ),
        "learned on features",
    ),
    (
        "policy state a list",
        lambda good: _edit_payload(good, lambda p: p["router"].update(bandit=[]), fix_sum=True),
        "no policy state",
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "pattern"), STATE_CASES, ids=[c[0] for c in STATE_CASES]
)
def test_state_file(
    tmp_path: Path,
    unchanged: Any,
    case: str,
    content: Callable[[str], str | bytes | None],
    pattern: str,
) -> None:
    path = tmp_path / "state.json"
    text = content(_saved(tmp_path))
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    router = hashing_router()
    router.update_sync(router.route_sync("something learned before").decision_id, quality=0.5)
    before = snapshot(router)
    with pytest.raises(StateError, match=pattern):
        router.load(path)
    unchanged(router, before)
    if text is not None:  # a router built on it refuses it too, rather than start empty
        with pytest.raises(StateError):
            hashing_router(state_path=path).start()


# -- stores: URLs and malformed state blobs --------------------------------------------------------
STORE_URL_CASES: list[tuple[str, Any, dict[str, Any], Any, str]] = [
    # (case, url, keywords, error, message pattern)
    ("not a str", 5, {}, ConfigurationError, "must be a URL"),
    ("no scheme", "state.db", {}, ConfigurationError, "must be a URL"),
    ("unknown scheme", "ftp://host/x", {}, ConfigurationError, "unknown state store scheme 'ftp'"),
    ("sqlite without a path", "sqlite://", {}, ConfigurationError, "needs a path"),
    (
        "store_prompts not a bool",
        "memory://?store_prompts=maybe",
        {},
        ConfigurationError,
        "true or false",
    ),
    ("namespace with a newline", "memory://?namespace=a%0Ab", {}, ConfigurationError, "control"),
    (
        "namespace too long",
        "memory://",
        {"namespace": "n" * 201},
        ConfigurationError,
        "at most 200",
    ),
    (
        "redis port not a number",
        "redis://127.0.0.1:port/0",
        {},
        StoreError,
        "Port could not be cast",
    ),
]


@pytest.mark.parametrize(
    ("case", "url", "keywords", "error", "pattern"),
    STORE_URL_CASES,
    ids=[c[0] for c in STORE_URL_CASES],
)
def test_store_url(case: str, url: Any, keywords: dict[str, Any], error: Any, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        open_store(url, **keywords).pull()


def test_sqlite_store_on_a_directory_or_a_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open"):
        open_store(f"sqlite:///{tmp_path}").pull()
    foreign = tmp_path / "photo.db"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 4096)
    with pytest.raises(StateError, match="not an SQLite database"):
        open_store(f"sqlite:///{foreign}").pull()
    assert foreign.read_bytes().startswith(b"\x89PNG")  # left in place for inspection


def _store_blob(meta: Any, sums: Any, **extra: Any) -> str:
    return encode({"kind": KIND, "meta": meta, "sums": sums, **extra})


META = {"algorithm": "thompson", "features": "none", "dim": 1}
BLOB_CASES: list[tuple[str, str, str]] = [
    # (case, stored blob, message pattern); each is refused and left in place
    ("not JSON", "{{{", "not valid JSON"),
    ("a file state, not a store state", encode({"router": {}}), "not a Conduit store state"),
    ("statistics a list", _store_blob(META, []), "has statistics for list"),
    ("a part missing", _store_blob(META, {"bandit": {}}), r"has statistics for \['bandit'\]"),
    (
        "a part a list",
        _store_blob(META, {"bandit": [], "outcomes": {}}),
        "statistics of bandit are",
    ),
    (
        "an arm's statistics a str",
        _store_blob(META, {"bandit": {"a": "x"}, "outcomes": {}}),
        "bandit/a",
    ),
    (
        "a statistic not a number",
        _store_blob(META, {"bandit": {"a": {"n": "many"}}, "outcomes": {}}),
        "not arrays of numbers",
    ),
    (
        "a ragged array",
        _store_blob(META, {"bandit": {"a": {"A": [[1.0], [1.0, 2.0]]}}, "outcomes": {}}),
        "not arrays of numbers",
    ),
    ("metadata missing", _store_blob(None, {"bandit": {}, "outcomes": {}}), "malformed metadata"),
    (
        "replica table a list",
        _store_blob(META, {"bandit": {}, "outcomes": {}}, replicas=[1]),
        "malformed revision or replica table",
    ),
]


@pytest.mark.parametrize(("case", "blob", "pattern"), BLOB_CASES, ids=[c[0] for c in BLOB_CASES])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_store_refuses_a_malformed_blob(
    tmp_path: Path, backend: str, case: str, blob: str, pattern: str
) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url) as store:
        store._update(store.namespace, lambda current: blob)
        with pytest.raises(StateError, match=pattern):
            store.pull()
        with pytest.raises(StateError, match=pattern):  # a push adds nothing to it either
            store.push({"bandit": {}, "outcomes": {}}, Meta(**META))
        assert store._read(store.namespace) == blob  # left in place for inspection


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
    else:
        url = create_database()
        yield url
        drop_database(url)


def test_history_takes_text_no_backend_can_store(history_url: str) -> None:
    """A NUL (PostgreSQL refuses it) or a lone surrogate (not UTF-8) in a prompt or a model
    name is stored as U+FFFD: one such request must not block every later history write."""
    store = open_store(history_url, store_prompts=True)
    router = Router(["a\x00b", "c"], embedding_backend="hashing", seed=0, state_store=store)
    for prompt in ("caf\ud800 ?", "nul\x00byte", "plain"):
        decision = router.route_sync(
            prompt, constraints=Constraints(allowed_models=frozenset({"a\x00b"}))
        )
        router.update_sync(decision.decision_id, quality=1.0)
    assert router.store_sync is not None
    router.store_sync.sync_now()  # raises if the batch was refused
    records = store.history()
    assert sorted(r.prompt or "" for r in records) == ["caf\ufffd ?", "nul\ufffdbyte", "plain"]
    assert {r.model for r in records} == {"a\ufffdb"}
    assert {r.quality for r in records} == {1.0}
    snapshot = store.pull()
    assert snapshot is not None and "a\x00b" in snapshot.sums["outcomes"]  # state keeps the name
    router.close()
    store.close()


# -- routing logs for replay -----------------------------------------------------------------------
GOOD_LINE = json.dumps(
    {"id": "q", "prompt": "2 + 2?", "outcomes": {"a": {"quality": 1.0, "cost": 0.1}}}
)
LOG_CASES: list[tuple[str, bytes, str]] = [
    # (case, the log's third line, message pattern naming the line)
    ("not JSON", b"{oops", r":3: not valid JSON"),
    ("a JSON array", b"[1, 2]", r":3: each line must be a JSON object"),
    ("prompt missing", b'{"outcomes": {"a": {"quality": 1}}}', r":3: 'prompt' must be a non-empty"),
    ("prompt empty", b'{"prompt": "  ", "outcomes": {"a": {"quality": 1}}}', r":3: 'prompt'"),
    ("outcomes empty", b'{"prompt": "x", "outcomes": {}}', r":3: 'outcomes' must be a non-empty"),
    (
        "quality above 1",
        b'{"prompt": "x", "outcomes": {"a": {"quality": 2}}}',
        r":3: quality of 'a'",
    ),
    ("quality NaN", b'{"prompt": "x", "outcomes": {"a": {"quality": NaN}}}', r":3: quality of 'a'"),
    ("quality a str", b'{"prompt": "x", "outcomes": {"a": {"quality": "1"}}}', r":3: quality"),
    (
        "cost negative",
        b'{"prompt": "x", "outcomes": {"a": {"quality": 1, "cost": -1}}}',
        r":3: cost",
    ),
    ("outcome not an object", b'{"prompt": "x", "outcomes": {"a": 1}}', r":3: outcome of 'a'"),
    (
        "other models",
        b'{"prompt": "x", "outcomes": {"b": {"quality": 1}}}',
        r":3: outcomes name models",
    ),
    (
        "not UTF-8",
        b'{"prompt": "caf\xe9", "outcomes": {"a": {"quality": 1}}}',
        r":3: not UTF-8 text",
    ),
    ("nested deep", b"[" * 100_000 + b"]" * 100_000, r":3: JSON nested too deeply"),
]


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("case", "line", "pattern"), LOG_CASES, ids=[c[0] for c in LOG_CASES])
def test_replay_log_line(
    tmp_path: Path, gzipped: bool, case: str, line: bytes, pattern: str
) -> None:
    data = b"\n".join([GOOD_LINE.encode(), b"", line, GOOD_LINE.encode()]) + b"\n"
    path = tmp_path / ("log.jsonl.gz" if gzipped else "log.jsonl")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    with pytest.raises(LogFormatError, match=re.escape(str(path)) + pattern):
        read_log(path)


# -- the simulator's HTTP endpoints ---------------------------------------------------------------
@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    log = tmp_path_factory.mktemp("sim") / "tiny.jsonl"
    log.write_text(
        json.dumps(
            {"id": "q", "prompt": QUESTION, "outcomes": {"small": {"quality": 1.0, "cost": 1e-4}}}
        )
        + "\n",
        encoding="utf-8",
    )
    with Simulator(log, seed=0, max_body_bytes=64 * 1024) as sim:
        yield sim


CHAT = {"model": "small", "messages": MESSAGES}


def _chat(**change: Any) -> bytes:
    body = {**CHAT, **change}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


SIMULATOR_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    # (case, request, status, error message pattern)
    ("not JSON", {"body": b"hello"}, 400, "could not parse the JSON"),
    ("a JSON array", {"body": b"[]"}, 400, "must be a JSON object"),
    ("nested deep", {"body": DEEP}, 400, "could not parse the JSON"),
    ("not UTF-8", {"body": b'{"model": "\xff"}'}, 400, "could not parse the JSON"),
    (
        "lone surrogate",
        {"body": _chat(messages=[{"role": "user", "content": "\ud800"}])},
        400,
        "invalid Unicode",
    ),
    (
        "huge Content-Length",
        {"body": _chat(), "length": str(10**12)},
        400,
        "exceeds the simulator's limit",
    ),
    (
        "body over the limit",
        {"body": _chat(padding="x" * 70_000)},
        400,
        "exceeds the simulator's limit",
    ),
    ("model missing", {"body": _chat(model=None)}, 400, "provide a model"),
    ("model unknown", {"body": _chat(model="gpt-9")}, 404, "does not exist"),
    ("messages missing", {"body": _chat(messages=None)}, 400, "non-empty array"),
    ("messages a str", {"body": _chat(messages="hi")}, 400, "non-empty array"),
    ("message not an object", {"body": _chat(messages=["hi"])}, 400, r"messages\[0\]"),
    (
        "no user message",
        {"body": _chat(messages=[{"role": "system", "content": "x"}])},
        400,
        "role 'user'",
    ),
    ("stream not a bool", {"body": _chat(stream="yes")}, 400, "'stream' must be a boolean"),
    ("GET the chat endpoint", {"method": "GET"}, 405, "Method Not Allowed"),
    ("unknown path", {"path": "/v1/../../etc/passwd"}, 404, "Not Found"),
    (
        "multimodal content",
        {"body": _chat(messages=[{"role": "user", "content": [IMAGE]}])},
        200,
        "",
    ),
    ("tool-call-only turn", {"body": _chat(messages=TOOL_TURN)}, 200, ""),
    ("JSON under text/plain (accepted)", {"body": _chat(), "type": "text/plain"}, 200, ""),
]


@pytest.mark.parametrize(
    ("case", "request_", "status", "pattern"), SIMULATOR_CASES, ids=[c[0] for c in SIMULATOR_CASES]
)
def test_simulator_endpoint(
    simulator: Simulator, case: str, request_: dict[str, Any], status: int, pattern: str
) -> None:
    body = request_.get("body", b"")
    headers = {
        "Content-Type": request_.get("type", "application/json"),
        "Content-Length": request_.get("length", str(len(body))),
    }
    got, answer = raw_request(
        f"{simulator.base_url}/chat/completions",
        body,
        headers,
        method=request_.get("method", "POST"),
        path=request_.get("path"),
    )
    assert got == status, answer
    if status != 200:
        assert re.search(pattern, answer["error"]["message"]), answer
    # still serving
    assert (
        raw_request(
            f"{simulator.base_url}/chat/completions", _chat(), {"Content-Length": str(len(_chat()))}
        )[0]
        == 200
    )


def test_simulator_refuses_an_oversized_header(simulator: Simulator) -> None:
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * 20_000
            + b"\r\n\r\n"
        )
        assert sock.recv(64).split(b" ")[1] == b"400"


# -- the command line ----------------------------------------------------------------------------
def _state_file(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "in.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


CLI_CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # (case, argv, stderr pattern); every one exits with status 2 and no traceback
    ("no command", lambda tmp: [], "usage: conduit"),
    ("unknown command", lambda tmp: ["fly"], "invalid choice: 'fly'"),
    ("unknown option", lambda tmp: ["replay", "--fast"], "unrecognized arguments: --fast"),
    ("limit 0", lambda tmp: ["replay", "--limit", "0"], "must be at least 1"),
    ("limit not a number", lambda tmp: ["replay", "--limit", "ten"], "expected a positive integer"),
    ("cost weight NaN", lambda tmp: ["replay", "--cost-weight", "nan"], r"must be in \[0, 100\]"),
    ("log missing", lambda tmp: ["replay", "--data", str(tmp / "none.jsonl")], "no such file"),
    (
        "log line malformed",
        lambda tmp: ["replay", "--data", _state_file(tmp, GOOD_LINE + "\n{oops\n")],
        r"in\.json:2: not valid JSON",
    ),
    (
        "JSON output into a missing directory",
        lambda tmp: ["replay", "--json", str(tmp / "no/x.json")],
        "no directory",
    ),
    ("store URL not a URL", lambda tmp: ["state", "show", "--url", "state.db"], "must be a URL"),
    (
        "store history negative",
        lambda tmp: ["state", "show", "--url", "memory://", "--history", "-1"],
        "limit must be",
    ),
    (
        "import of a missing file",
        lambda tmp: ["state", "import", str(tmp / "none.json"), "--url", "memory://"],
        "cannot read",
    ),
    (
        "import of binary garbage",
        lambda tmp: ["state", "import", _state_file(tmp, b"\xff\xfe\x00"), "--url", "memory://"],
        "cannot read",
    ),
    (
        "import of a truncated export",
        lambda tmp: [
            "state",
            "import",
            _state_file(tmp, '{"format": "conduit-st'),
            "--url",
            "memory://",
        ],
        "not valid JSON",
    ),
    (
        "import of a file state",
        lambda tmp: [
            "state",
            "import",
            _state_file(tmp, encode({"router": {}})),
            "--url",
            "memory://",
        ],
        "not a Conduit store state",
    ),
    (
        "export with nothing learned",
        lambda tmp: ["state", "export", str(tmp / "out.json"), "--url", "memory://"],
        "has no learned state",
    ),
    (
        "reset without --yes",
        lambda tmp: ["state", "reset", "--url", "memory://"],
        "add --yes to confirm",
    ),
    (
        "simulator on a public address",
        lambda tmp: ["simulate", "--host", "0.0.0.0", "--data", _state_file(tmp, GOOD_LINE)],
        "loopback only",
    ),
    ("simulator error rate 2", lambda tmp: ["simulate", "--error-rate", "2"], r"in \[0, 1\]"),
]


@pytest.mark.parametrize(("case", "argv", "pattern"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    argv: Callable[[Path], list[str]],
    pattern: str,
) -> None:
    status = conduit_main(argv(tmp_path))
    err = capsys.readouterr().err
    assert status == 2, err
    assert re.search(pattern, err), err
    assert "Traceback" not in err


def test_every_entry_point_error_is_a_conduit_error() -> None:
    """The errors raised above for bad input are all ConduitError (or LiteLLM's own)."""
    for table in (FEEDBACK_CASES, STORE_URL_CASES):
        for row in table:
            error = row[-2]
            assert issubclass(error, ConduitError), row[0]
