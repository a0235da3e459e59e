"""The no-human quality signals: one row per documented outcome."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from typing import Any

import litellm
import pytest

from conduit_litellm import _signals as signals

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")


def reply(
    content: str | None, finish: str = "stop", tool_calls: Any = None
) -> litellm.ModelResponse:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return litellm.ModelResponse(
        choices=[{"message": message, "finish_reason": finish, "index": 0}]
    )


TOOL_CALL = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


@pytest.mark.parametrize(
    ("response", "json_requested", "quality", "reason"),
    [
        (reply("Paris."), False, None, "says nothing"),
        (reply("", "stop"), False, signals.EMPTY, "empty content"),
        (reply("   "), False, signals.EMPTY, "empty content"),
        (reply(None, "tool_calls", TOOL_CALL), False, None, "says nothing"),
        (reply("Paris is the capital", "length"), False, signals.TRUNCATED, "finish_reason=length"),
        (reply("", "content_filter"), False, signals.FILTERED, "content filter"),
        (reply("not json"), True, signals.INVALID_JSON, "not JSON"),
        (reply('{"city": "Paris"}'), True, None, "says nothing"),
        (reply("I'm sorry, but I can't help with that."), False, signals.REFUSAL, "refused"),
        (reply("I cannot assist with that request."), False, signals.REFUSAL, "refused"),
        (
            reply("As an AI language model, I cannot browse the web."),
            False,
            signals.REFUSAL,
            "refused",
        ),
        (reply("I can't be certain, but it is probably Paris."), False, None, "says nothing"),
        (
            reply("I can't help with that. " + "Here is a long answer anyway. " * 20),
            False,
            None,
            "says nothing",
        ),
        (
            {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]},
            False,
            signals.EMPTY,
            "empty",
        ),
        (litellm.EmbeddingResponse(data=[]), False, None, "says nothing"),
    ],
)
def test_success_signal(
    response: Any, json_requested: bool, quality: float | None, reason: str
) -> None:
    signal = signals.success_signal(response, json_requested=json_requested)
    assert signal.quality == quality
    assert reason in signal.reason


def test_documented_values() -> None:
    assert (signals.FAILED, signals.EMPTY, signals.FILTERED, signals.INVALID_JSON) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert (signals.TRUNCATED, signals.REFUSAL) == (0.3, 0.1)


@pytest.mark.parametrize(
    ("exception", "quality", "timeout"),
    [
        (litellm.RateLimitError("slow down", "openai", "gpt-4o"), None, False),
        (litellm.Timeout("timed out", "gpt-4o", "openai"), signals.FAILED, True),
        (TimeoutError("read timed out"), signals.FAILED, True),
        (litellm.InternalServerError("boom", "openai", "gpt-4o"), signals.FAILED, False),
        (litellm.BadRequestError("bad", "gpt-4o", "openai"), signals.FAILED, False),
        (None, signals.FAILED, False),
    ],
)
def test_failure_signal(exception: Any, quality: float | None, timeout: bool) -> None:
    assert signals.failure_signal(exception).quality == quality
    assert signals.is_timeout(exception) == timeout


def test_status_429_counts_as_rate_limit() -> None:
    class Throttled(Exception):
        status_code = 429

    assert signals.failure_signal(Throttled()).quality is None


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        ({}, False),
        (None, False),
        ({"response_format": {"type": "json_object"}}, True),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, True),
        ({"response_format": {"type": "text"}}, False),
    ],
)
def test_json_requested(request_kwargs: Any, expected: bool) -> None:
    assert signals.json_requested(request_kwargs) is expected
