"""Quality signals that need no human: what a LiteLLM outcome says about the answer.

A plain success says nothing about quality (a fluent wrong answer looks the
same as a right one), so it gives no quality: only its cost and latency are
learned, and quality comes from explicit feedback. Only outcomes that are bad
whatever the question was give a quality:

=============================================  ==============  =============================
outcome                                        quality         why
=============================================  ==============  =============================
call failed (error, timeout, 5xx, bad request) ``FAILED`` 0.0  the user got no answer
rate limited (429)                             none            capacity, not the model's
                                                               fault; LiteLLM's cooldown
                                                               steers around it
empty content and no tool call                 ``EMPTY`` 0.0   no answer
content filter stop                            ``FILTERED`` 0.0  no answer
JSON asked for, content is not JSON            ``INVALID_JSON`` 0.0  unusable answer
``finish_reason == "length"``                  ``TRUNCATED`` 0.3  cut short, partly usable
refusal ("I can't help with that")             ``REFUSAL`` 0.1  answered, but not the question
=============================================  ==============  =============================

>>> signal = success_signal({"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]})
>>> signal.quality, signal.reason
(0.0, 'empty content')
>>> answer = {"choices": [{"message": {"content": "4"}, "finish_reason": "stop"}]}
>>> success_signal(answer).quality is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EMPTY",
    "FAILED",
    "FILTERED",
    "INVALID_JSON",
    "NO_SIGNAL",
    "REFUSAL",
    "TRUNCATED",
    "Signal",
    "failure_signal",
    "is_rate_limit",
    "is_refusal",
    "is_timeout",
    "json_requested",
    "success_signal",
]

FAILED = 0.0
EMPTY = 0.0
FILTERED = 0.0
INVALID_JSON = 0.0
TRUNCATED = 0.3
REFUSAL = 0.1

#: Opening phrases of a refusal. Only the start of a short answer is checked, so an
#: answer that says "I can't be sure, but ..." and goes on to answer is not one.
_REFUSAL = re.compile(
    r"^\W*(?:sorry[,.!]?\s*)?(?:i\s*(?:'m|am)\s+sorry[,.!]?\s*(?:but\s*)?)?"
    r"(?:i\s*(?:can(?:'|no)?t|cannot|won'?t|am\s+unable\s+to|'m\s+unable\s+to|am\s+not\s+able\s+to)"
    r"\s+(?:help|assist|comply|provide|do\s+that|fulfil|fulfill|answer)"
    r"|as\s+an\s+ai\b[^.]{0,60}\b(?:can(?:'|no)?t|cannot|unable))",
    re.IGNORECASE,
)
_REFUSAL_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class Signal:
    """A quality (None: the outcome says nothing about quality) and the reason."""

    quality: float | None
    reason: str


NO_SIGNAL = Signal(None, "success says nothing about quality")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def is_refusal(text: str) -> bool:
    """Whether a short answer opens by declining.

    >>> is_refusal("I'm sorry, but I can't help with that.")
    True
    >>> is_refusal("I can't be certain, but the capital of France is Paris, founded ...")
    False
    """
    return len(text) <= _REFUSAL_MAX_CHARS and _REFUSAL.match(text.strip()) is not None


def success_signal(response: Any, *, json_requested: bool = False) -> Signal:
    """The quality a completed chat response shows by itself, if any (table above)."""
    choices = _get(response, "choices")
    if not choices:
        return NO_SIGNAL  # not a chat completion (embedding, image, ...): nothing to judge
    choice = choices[0]
    finish = _get(choice, "finish_reason")
    message = _get(choice, "message") or {}
    content = _get(message, "content")
    tool_calls = _get(message, "tool_calls") or _get(message, "function_call")
    if finish == "content_filter":
        return Signal(FILTERED, "stopped by a content filter")
    text = content if isinstance(content, str) else ""
    if not text.strip() and not tool_calls:
        return Signal(EMPTY, "empty content")
    if finish == "length":
        return Signal(TRUNCATED, "cut off at max_tokens (finish_reason=length)")
    if json_requested and not tool_calls:
        try:
            json.loads(text)
        except ValueError:
            return Signal(INVALID_JSON, "JSON was asked for, content is not JSON")
    if text and is_refusal(text):
        return Signal(REFUSAL, "refused")
    return NO_SIGNAL


def _status(exception: object) -> int | None:
    for name in ("status_code", "code"):
        value = getattr(exception, name, None)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def is_rate_limit(exception: object) -> bool:
    from litellm.exceptions import RateLimitError

    return isinstance(exception, RateLimitError) or _status(exception) == 429


def is_timeout(exception: object) -> bool:
    """Whether the call timed out: its elapsed time is then a latency worth learning."""
    from litellm.exceptions import Timeout

    return isinstance(exception, (Timeout, TimeoutError)) or _status(exception) == 408


def failure_signal(exception: object) -> Signal:
    """The quality a failed call shows: none for a rate limit, else ``FAILED``.

    >>> import litellm
    >>> failure_signal(litellm.RateLimitError("slow down", "openai", "gpt-4o")).quality is None
    True
    >>> failure_signal(TimeoutError("read timed out")).quality
    0.0
    """
    if is_rate_limit(exception):
        return Signal(None, "rate limited (429): capacity, not quality")
    name = type(exception).__name__ if exception is not None else "unknown error"
    return Signal(FAILED, f"call failed ({name})")


def json_requested(request_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether the request asked for JSON output (``response_format`` json_object/json_schema)."""
    fmt = (request_kwargs or {}).get("response_format")
    if isinstance(fmt, Mapping):
        return fmt.get("type") in ("json_object", "json_schema")
    return isinstance(fmt, type)
