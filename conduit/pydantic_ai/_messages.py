"""What ConduitModel reads from and writes to PydanticAI's message history.

The decision that produced a response travels on the response itself, in
``ModelResponse.metadata["conduit"]`` (never sent to a provider), so feedback and
retries are matched to their decision by id, never by model name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    ToolReturnPart,
    UserPromptPart,
)

__all__ = ["METADATA_KEY", "Stamp", "query_text", "read_stamp", "rejected_previous", "write_stamp"]

#: The key of ``ModelResponse.metadata`` that carries Conduit's decision.
METADATA_KEY = "conduit"

#: Why a tool call is retried that says the model's own response was bad (not a tool's ModelRetry).
_MODEL_FAULTS = frozenset({"validation_error", "unknown_tool", "unavailable_tool"})


@dataclass(frozen=True, slots=True)
class Stamp:
    """The decision behind one response: which router (``owner``) chose which model."""

    decision_id: str
    model: str
    owner: str


def write_stamp(metadata: dict[str, Any] | None, stamp: Stamp) -> dict[str, Any]:
    """``metadata`` with the decision added (a new dict if there was none)."""
    out = {} if metadata is None else metadata
    out[METADATA_KEY] = {
        "decision_id": stamp.decision_id,
        "model": stamp.model,
        "owner": stamp.owner,
    }
    return out


def read_stamp(response: ModelResponse) -> Stamp | None:
    """The decision a response carries, or None for a response Conduit did not route."""
    found = (response.metadata or {}).get(METADATA_KEY)
    if not isinstance(found, dict):
        return None
    decision_id, model, owner = (found.get(key) for key in ("decision_id", "model", "owner"))
    if not (isinstance(decision_id, str) and isinstance(model, str) and isinstance(owner, str)):
        return None
    return Stamp(decision_id, model, owner) if decision_id and model and owner else None


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(item for item in content if isinstance(item, str))
    return ""


def query_text(messages: Sequence[ModelMessage]) -> str:
    """The text Conduit routes on: the latest user prompt of the conversation.

    A retry or a tool round inside one run routes on the same prompt as its first
    request, so every step of a run is judged on the same features.
    """
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            prompts = [_text(p.content) for p in message.parts if isinstance(p, UserPromptPart)]
            text = "\n".join(p for p in prompts if p)
            if text:
                return text
    # No user prompt at all (an agent driven by instructions only): route on what there is.
    for message in reversed(messages):
        if isinstance(message, ModelRequest) and message.instructions:
            return message.instructions
    return " "


def _is_model_fault(part: object) -> bool:
    if isinstance(part, RetryFeedbackPart):
        # The output failed validation, carried nothing usable, or an output validator rejected it.
        return True
    if isinstance(part, ToolReturnPart) and part.outcome == "retried":
        cause = part.retry.cause if part.retry is not None else None
        if cause in _MODEL_FAULTS:
            return True
        # A tool's own ModelRetry is about the world; an output tool's is about the output.
        return part.tool_kind == "output"
    return False


def rejected_previous(messages: Sequence[ModelMessage]) -> tuple[ModelResponse, bool] | None:
    """The last response before the new request, and whether the new request rejects it.

    The agent answers a response that failed validation (structured output, tool
    arguments, an unknown tool, an output validator's ``ModelRetry``) with a retry
    part in the next request; ``None`` when there is no earlier response.
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, ModelResponse):
            after: Iterable[object] = (
                part
                for later in messages[index + 1 :]
                if isinstance(later, ModelRequest)
                for part in later.parts
            )
            return message, any(_is_model_fault(part) for part in after)
    return None
