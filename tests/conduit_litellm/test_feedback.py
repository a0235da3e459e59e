"""The feedback logger, the response map and the HTTP feedback endpoint."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import datetime as dt
import inspect
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

from conduit import ConfigurationError, InvalidFeedbackError, Router
from conduit_litellm.feedback import (
    DECISION_KEY,
    DEPLOYMENT_KEY,
    MODEL_KEY,
    SIGNALS_KEY,
    ConduitFeedbackLogger,
    FeedbackServer,
    ResponseMap,
    explicit_quality,
)

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

START = dt.datetime(2026, 1, 1, 12, 0, 0)
END = START + dt.timedelta(seconds=1.23)


@pytest.fixture
def conduit() -> Router:
    return Router(["a", "b"], embedding_backend="hashing", bandit_algorithm="thompson", seed=0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feedback(conduit: Router, clock: Clock) -> ConduitFeedbackLogger:
    prices = {"a": (1e-6, 2e-6)}
    return ConduitFeedbackLogger(router=lambda: conduit, price=prices.get, clock=clock)


def event(
    decision_id: str | None,
    *,
    deployment: str = "a",
    served: str | None = None,
    cost: float | None = 0.00015,
    exception: Exception | None = None,
) -> dict[str, Any]:
    metadata = (
        {} if decision_id is None else {DECISION_KEY: decision_id, DEPLOYMENT_KEY: deployment}
    )
    return {
        "litellm_params": {"metadata": metadata, "model_info": {"id": served or deployment}},
        "response_cost": cost,
        "standard_logging_object": {
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "response_time": 9.0,
        },
        "exception": exception,
    }


def reply(content: str = "Paris.", id: str = "chatcmpl-1") -> litellm.ModelResponse:
    return litellm.ModelResponse(
        id=id,
        choices=[
            {
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "index": 0,
            }
        ],
        usage={"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    )


def counts(router: Router) -> dict[str, float]:
    state = router.state_dict()["outcomes"]
    return {key: float(state["sums"][:, i].sum()) for i, key in enumerate(state["keys"])}


def decide(router: Router, model: str = "a") -> str:
    return router.route_sync("What is the capital of France?", constraints=_only(model)).decision_id


def _only(model: str) -> Any:
    from conduit import Constraints

    return Constraints(allowed_models=frozenset({model}))


# -- the hooks LiteLLM calls ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "hook",
    [
        "log_success_event",
        "async_log_success_event",
        "log_failure_event",
        "async_log_failure_event",
    ],
)
def test_hooks_have_the_names_litellm_calls(hook: str) -> None:
    parameters = list(inspect.signature(getattr(ConduitFeedbackLogger, hook)).parameters)
    assert parameters == ["self", "kwargs", "response_obj", "start_time", "end_time"]


def test_success_learns_cost_and_latency_not_quality(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    decision = decide(conduit)
    with caplog.at_level(logging.DEBUG, logger="conduit_litellm.feedback"):
        feedback.log_success_event(
            kwargs=event(decision), response_obj=reply(), start_time=START, end_time=END
        )
    assert "Feedback recorded: model=a, cost=$0.000150, latency=1.23s" in caplog.text
    learned = counts(conduit)
    assert (learned["cost_n"], learned["latency_n"], learned["quality_n"]) == (1, 1, 0)
    assert learned["cost_sum"] == pytest.approx(0.00015)
    assert learned["latency_sum"] == pytest.approx(1.23)
    assert feedback.decision_for("chatcmpl-1") == decision


async def test_async_hooks_learn_the_same(feedback: ConduitFeedbackLogger, conduit: Router) -> None:
    ok, failed = decide(conduit), decide(conduit)
    await feedback.async_log_success_event(event(ok), reply(), START, END)
    await feedback.async_log_failure_event(
        event(failed, cost=0.0, exception=RuntimeError("x")), None, START, END
    )
    assert counts(conduit)["cost_n"] == 1
    assert conduit.stats().models["a"].mean_quality == 0.0


@pytest.mark.parametrize(
    ("exception", "outcome", "quality_n", "latency_n"),
    [
        (litellm.InternalServerError("boom", "openai", "gpt-4o"), "learned", 1, 0),
        (litellm.Timeout("timed out", "gpt-4o", "openai"), "learned", 1, 1),
        (litellm.RateLimitError("slow down", "openai", "gpt-4o"), "rate_limited", 0, 0),
    ],
)
def test_failures(
    feedback: ConduitFeedbackLogger,
    conduit: Router,
    exception: Exception,
    outcome: str,
    quality_n: int,
    latency_n: int,
) -> None:
    feedback.log_failure_event(
        event(decide(conduit), cost=0.0, exception=exception), None, START, END
    )
    learned = counts(conduit)
    assert (learned["quality_n"], learned["latency_n"], learned["cost_n"]) == (
        quality_n,
        latency_n,
        0,
    )
    assert feedback.stats()[outcome] == 1


@pytest.mark.parametrize(
    ("content", "quality"),
    [("", 0.0), ("I'm sorry, but I can't help with that.", 0.1), ("Paris.", None)],
)
def test_success_signals_give_quality_after_the_grace_period(
    feedback: ConduitFeedbackLogger,
    conduit: Router,
    clock: Clock,
    content: str,
    quality: float | None,
) -> None:
    feedback.log_success_event(event(decide(conduit)), reply(content), START, END)
    assert conduit.stats().models["a"].mean_quality is None  # waiting for explicit feedback
    assert counts(conduit)["cost_n"] == 1  # cost and latency are learned at once
    clock.now += 299.0
    assert feedback.apply_due_signals() == 0
    clock.now += 1.0
    assert feedback.apply_due_signals() == (quality is not None)
    assert conduit.stats().models["a"].mean_quality == quality


def test_explicit_quality_replaces_a_held_signal(
    feedback: ConduitFeedbackLogger, conduit: Router, clock: Clock
) -> None:
    decision = decide(conduit)
    feedback.log_success_event(event(decision), reply(""), START, END)  # empty: automatic 0.0
    assert feedback.record_feedback(decision, quality=0.9) == frozenset({"quality"})
    clock.now += 1000.0
    assert feedback.apply_due_signals(everything=True) == 0
    assert conduit.stats().models["a"].mean_quality == 0.9
    assert counts(conduit)["quality_n"] == 1
    assert (feedback.stats()["signals_held"], feedback.stats()["signals_replaced"]) == (1, 1)


def test_explicit_quality_first_then_signal(
    feedback: ConduitFeedbackLogger, conduit: Router, clock: Clock
) -> None:
    decision = decide(conduit)
    assert feedback.record_feedback(decision, thumbs=True) == frozenset({"quality"})
    feedback.log_success_event(event(decision), reply(""), START, END)
    clock.now += 1000.0
    feedback.apply_due_signals()
    assert conduit.stats().models["a"].mean_quality == 1.0
    assert counts(conduit)["quality_n"] == 1


def test_explicit_quality_after_the_grace_period_is_ignored(
    feedback: ConduitFeedbackLogger, conduit: Router, clock: Clock
) -> None:
    decision = decide(conduit)
    feedback.log_success_event(event(decision), reply(""), START, END)
    clock.now += 301.0
    assert feedback.record_feedback(decision, quality=0.9) == frozenset()
    assert conduit.stats().models["a"].mean_quality == 0.0


def test_failures_and_zero_grace_learn_quality_at_once(conduit: Router) -> None:
    feedback = ConduitFeedbackLogger(router=lambda: conduit, signal_grace=0)
    decision = decide(conduit)
    feedback.log_success_event(event(decision), reply(""), START, END)
    assert conduit.stats().models["a"].mean_quality == 0.0
    assert feedback.record_feedback(decision, quality=1.0) == frozenset()


def test_held_signals_are_bounded(conduit: Router, clock: Clock) -> None:
    feedback = ConduitFeedbackLogger(router=lambda: conduit, max_responses=2, clock=clock)
    for _ in range(3):
        feedback.log_success_event(event(decide(conduit)), reply(""), START, END)
    assert counts(conduit)["quality_n"] == 1  # the oldest is learned, not dropped
    assert feedback.apply_due_signals(everything=True) == 2


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"signal_grace": -1}, "signal_grace must be"),
        ({"signal_grace": float("nan")}, "signal_grace must be"),
        ({"signal_grace": True}, "signal_grace must be"),
        ({"signal_grace": 10, "response_ttl": 10}, "below response_ttl"),
    ],
)
def test_invalid_logger_arguments(conduit: Router, kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        ConduitFeedbackLogger(router=lambda: conduit, **kwargs)


def test_bandit_updated_is_logged_on_the_package_logger(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    decision = decide(conduit)
    with caplog.at_level(logging.DEBUG, logger="conduit_litellm"):
        feedback.log_success_event(event(decision), reply(), START, END)
        feedback.record_feedback(decision, rating=5)
    lines = [r for r in caplog.records if r.getMessage().startswith("Bandit updated:")]
    assert [(r.name, r.levelno) for r in lines] == [("conduit_litellm", logging.DEBUG)] * 2
    assert lines[-1].getMessage() == "Bandit updated: arms=2, total_pulls=1"


# -- linking a response to its decision without waiting for LiteLLM's event ----------------------
@pytest.mark.parametrize(
    ("given", "previous", "call_id", "mapped"),
    [
        (None, None, "conduit-d2", None),  # first attempt: named after its decision
        ("conduit-d1", "d1", "conduit-d2", None),  # a retry: the earlier attempt's name replaced
        ("mine", None, "mine", "d2"),  # the caller's own id: kept, and mapped
        ("mine", "d1", "mine", "d2"),
    ],
)
def test_link_call(
    feedback: ConduitFeedbackLogger,
    given: str | None,
    previous: str | None,
    call_id: str,
    mapped: str | None,
) -> None:
    request: dict[str, Any] = {} if given is None else {"litellm_call_id": given}
    feedback.link_call(request, "d2", previous)
    assert request["litellm_call_id"] == call_id
    assert feedback.calls.get(call_id) == mapped


def test_decision_for_reads_the_response_itself(feedback: ConduitFeedbackLogger) -> None:
    response = reply(id="chatcmpl-unseen")
    response._hidden_params = {"litellm_call_id": "conduit-abc"}
    assert feedback.decision_for(response) == "abc"
    feedback.calls.put("theirs", "def")
    response._hidden_params = {"litellm_call_id": "theirs"}
    assert feedback.decision_for(response) == "def"
    response._hidden_params = {}
    assert feedback.decision_for(response) == "chatcmpl-unseen"  # not routed: tried as a decision


async def test_deployment_hook_maps_the_response_id(
    feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    decision = decide(conduit)
    response = reply(id="chatcmpl-early")
    request = {"model": "a", "metadata": {DECISION_KEY: decision}}
    assert await feedback.async_post_call_success_deployment_hook(request, response, None) is None
    assert feedback.decision_for("chatcmpl-early") == decision
    await feedback.async_post_call_success_deployment_hook({"metadata": 5}, response, None)


def test_cost_from_tokens_when_litellm_has_none(
    feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    feedback.log_success_event(event(decide(conduit), cost=None), reply(), START, END)
    assert counts(conduit)["cost_sum"] == pytest.approx(10 * 1e-6 + 20 * 2e-6)


def test_cost_unavailable_warns_once(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conduit_litellm.feedback"):
        for _ in range(3):
            feedback.log_success_event(
                event(decide(conduit, "b"), deployment="b", cost=None), reply(), START, END
            )
    assert caplog.text.count("Cost unavailable in LiteLLM response") == 1
    learned = counts(conduit)
    assert (learned["cost_n"], learned["latency_n"]) == (0, 3)


def test_unpriced_call_is_not_learned_as_free(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    """LiteLLM logs response_cost 0.0 for a model it cannot price, with debug info saying so."""
    kwargs = event(decide(conduit, "b"), deployment="b", cost=None)
    kwargs["standard_logging_object"].update(
        response_cost=0.0, response_cost_failure_debug_info={"error_str": "isn't mapped yet"}
    )
    with caplog.at_level(logging.WARNING, logger="conduit_litellm.feedback"):
        feedback.log_success_event(kwargs, reply(), START, END)
    assert "Cost unavailable in LiteLLM response" in caplog.text
    assert counts(conduit)["cost_n"] == 0


@pytest.mark.parametrize(("deployment", "learned"), [("a", 1), ("b", 0)])
def test_zero_cost_is_believed_only_for_a_priced_model(
    feedback: ConduitFeedbackLogger, conduit: Router, deployment: str, learned: int
) -> None:
    """Through a Router, LiteLLM reports 0.0 for a model missing from its cost map."""
    kwargs = event(decide(conduit, deployment), deployment=deployment, cost=0.0)
    feedback.log_success_event(kwargs, reply(), START, END)
    assert counts(conduit)["cost_n"] == learned


def test_latency_from_standard_logging_object(
    feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    feedback.log_success_event(event(decide(conduit)), reply(), None, None)
    assert counts(conduit)["latency_sum"] == pytest.approx(9.0)


def test_event_from_another_deployment_is_not_learned(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conduit_litellm.feedback"):
        feedback.log_success_event(event(decide(conduit), served="b"), reply(), START, END)
    assert "Model not in router arms" in caplog.text
    assert counts(conduit)["cost_n"] == 0


def test_removed_arm_warns(
    feedback: ConduitFeedbackLogger, conduit: Router, caplog: pytest.LogCaptureFixture
) -> None:
    decision = decide(conduit, "b")
    conduit.remove_model("b")
    with caplog.at_level(logging.WARNING, logger="conduit_litellm.feedback"):
        feedback.log_success_event(event(decision, deployment="b"), reply(), START, END)
    assert "has since been removed" in caplog.text
    assert feedback.stats()["errors"] == 1


def test_plugin_signals_carry_the_decision(
    feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    decision = decide(conduit)
    kwargs = event(None)
    kwargs["litellm_params"]["metadata"] = {
        "deployment": "a",
        "routing_plugin_signals": {SIGNALS_KEY: {DECISION_KEY: decision, MODEL_KEY: "a"}},
    }
    feedback.log_success_event(kwargs, reply(), START, END)
    assert counts(conduit)["cost_n"] == 1


@pytest.mark.parametrize(
    ("kwargs", "outcome"),
    [
        (None, "unmatched"),
        ({}, "unmatched"),
        (event(None), "unmatched"),
        (
            {"litellm_params": {"metadata": {DECISION_KEY: "never-issued"}}, "response_cost": 1.0},
            "unmatched",
        ),
        (
            {"litellm_params": {"metadata": {DECISION_KEY: "x"}}, "response_cost": float("nan")},
            "unmatched",
        ),
        ({"litellm_params": "garbage"}, "unmatched"),  # no decision to be found in it
    ],
)
def test_hooks_never_raise(feedback: ConduitFeedbackLogger, kwargs: Any, outcome: str) -> None:
    feedback.log_success_event(kwargs, reply(), START, END)
    feedback.log_failure_event(kwargs, None, START, END)
    assert feedback.stats()[outcome] == 2


def test_duplicate_events_are_learned_once(
    feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    kwargs = event(decide(conduit))
    feedback.log_success_event(kwargs, reply(), START, END)
    feedback.log_success_event(kwargs, reply(), START, END)
    assert counts(conduit)["cost_n"] == 1
    assert feedback.stats()["duplicates"] == 1


def test_handling_is_fast(feedback: ConduitFeedbackLogger, conduit: Router) -> None:
    """The hook runs on LiteLLM's logging path: in-memory work only, well under a millisecond."""
    decisions = [decide(conduit) for _ in range(2000)]
    response = reply()
    began = time.perf_counter()
    for decision in decisions:
        feedback.log_success_event(event(decision), response, START, END)
    per_event = (time.perf_counter() - began) / len(decisions)
    assert feedback.stats()["learned"] == 2000
    assert per_event < 1e-3, f"{per_event * 1e6:.0f} us per event"


# -- explicit feedback ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"thumbs": True}, 1.0),
        ({"thumbs": False}, 0.0),
        ({"rating": 1}, 0.0),
        ({"rating": 5}, 1.0),
        ({"rating": 3}, 0.5),
        ({"quality": 0.7}, 0.7),
    ],
)
def test_explicit_quality(kwargs: dict[str, Any], expected: float) -> None:
    assert explicit_quality(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, "exactly one of"),
        ({"thumbs": True, "quality": 1.0}, "exactly one of"),
        ({"rating": 0}, "rating must be an int from 1 to 5"),
        ({"rating": 2.5}, "rating must be an int from 1 to 5"),
        ({"rating": True}, "rating must be an int from 1 to 5"),
        ({"thumbs": "yes"}, "thumbs must be True or False"),
        ({"quality": float("nan")}, r"quality must be in \[0, 1\]"),
        ({"quality": -0.1}, r"quality must be in \[0, 1\]"),
        ({"quality": "good"}, "quality must be a number"),
    ],
)
def test_explicit_quality_rejects(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidFeedbackError, match=pattern):
        explicit_quality(**kwargs)


def test_response_map_is_bounded_and_expires() -> None:
    now = [0.0]
    responses = ResponseMap(ttl=10.0, maxsize=2, clock=lambda: now[0])
    responses.put("r1", "d1")
    responses.put("r2", "d2")
    responses.put("r3", "d3")
    assert (responses.get("r1"), responses.get("r3"), len(responses)) == (None, "d3", 2)
    now[0] = 10.5
    assert responses.get("r2") is None


@pytest.mark.parametrize(("ttl", "maxsize"), [(0, 10), (10, 0)])
def test_response_map_rejects(ttl: float, maxsize: int) -> None:
    with pytest.raises(ConfigurationError, match="ResponseMap needs"):
        ResponseMap(ttl=ttl, maxsize=maxsize)


# -- the HTTP endpoint ----------------------------------------------------------------------------
TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def server(feedback: ConduitFeedbackLogger) -> Iterator[FeedbackServer]:
    started = FeedbackServer(feedback, token=TOKEN).start()
    yield started
    started.close()


def post(url: str, body: Any, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_endpoint_learns_feedback_once(
    server: FeedbackServer, feedback: ConduitFeedbackLogger, conduit: Router
) -> None:
    feedback.log_success_event(event(decide(conduit)), reply(id="chatcmpl-http"), START, END)
    assert post(server.url, {"response_id": "chatcmpl-http", "thumbs": True}) == (
        200,
        {"learned": ["quality"]},
    )
    assert post(server.url, {"response_id": "chatcmpl-http", "rating": 1}) == (200, {"learned": []})
    assert conduit.stats().models["a"].mean_quality == 1.0


@pytest.mark.parametrize(
    ("path", "body", "token", "status", "pattern"),
    [
        (
            "/feedback",
            {"response_id": "x", "thumbs": True},
            "wrong-token-0123456789",
            401,
            "bearer token",
        ),
        (
            "/feedback",
            {"response_id": "chatcmpl-nope", "thumbs": True},
            TOKEN,
            404,
            "unknown response",
        ),
        ("/feedback", {"response_id": "chatcmpl-nope", "rating": 9}, TOKEN, 400, "rating must be"),
        ("/feedback", {"thumbs": True}, TOKEN, 400, "give response_id"),
        ("/feedback", b"{not json", TOKEN, 400, "not JSON"),
        ("/feedback", [1, 2], TOKEN, 400, "JSON object"),
        ("/other", {"response_id": "x", "thumbs": True}, TOKEN, 404, "POST /feedback"),
    ],
)
def test_endpoint_refuses(
    server: FeedbackServer, path: str, body: Any, token: str, status: int, pattern: str
) -> None:
    code, answer = post(server.url.replace("/feedback", path), body, token)
    assert code == status
    assert pattern in answer["error"]


def test_endpoint_needs_a_real_token(feedback: ConduitFeedbackLogger) -> None:
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        FeedbackServer(feedback, token="short")
