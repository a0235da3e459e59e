"""Wrapped models for ConduitModel's tests: PydanticAI FunctionModels, no network.

``valid`` always answers with a valid invoice, ``flaky`` with an invalid one on
every other call, ``broken`` fails with a provider error (HTTP 500).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace

import pytest
from pydantic import BaseModel
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from conduit.engines.router import Router


class Invoice(BaseModel):
    number: str
    total: float


VALID = {"number": "INV-1", "total": 12.5}
INVALID = {"number": "INV-1", "total": "twelve and a half"}


def invoice_call(info: AgentInfo, args: dict[str, object]) -> ModelResponse:
    """A call of the agent's output tool (``final_result``) with ``args``."""
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])


def answers(script: Callable[[int], dict[str, object]], name: str) -> FunctionModel:
    """A model whose ``n``-th call (from 0) answers ``script(n)`` as the invoice."""
    calls = itertools.count()

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not info.output_tools:  # text output
            return ModelResponse(parts=[TextPart(f"{name} says hello")])
        return invoice_call(info, script(next(calls)))

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[DeltaToolCalls | str]:
        response = reply(messages, info)
        part = response.parts[0]
        if isinstance(part, TextPart):
            for word in part.content.split(" "):
                yield word + " "
            return
        assert isinstance(part, ToolCallPart)
        yield {0: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str())}

    return FunctionModel(reply, stream_function=stream, model_name=name)


def broken_model(name: str = "broken", status: int = 500) -> FunctionModel:
    def fail(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(status, name, {"error": "simulated outage"})

    async def fail_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        raise ModelHTTPError(status, name, {"error": "simulated outage"})
        yield ""  # pragma: no cover - makes this an async generator

    return FunctionModel(fail, stream_function=fail_stream, model_name=name)


def valid_model(name: str = "valid") -> FunctionModel:
    return answers(lambda n: VALID, name)


def flaky_model(name: str = "flaky") -> FunctionModel:
    return answers(lambda n: INVALID if n % 2 == 0 else VALID, name)


def invalid_model(name: str = "invalid") -> FunctionModel:
    return answers(lambda n: INVALID, name)


def make_router(*names: str, algorithm: str | None = None) -> Router:
    return Router(
        models=list(names), bandit_algorithm=algorithm, embedding_backend="hashing", seed=0
    )


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for the tests (conftest modules are not importable by name)."""
    return SimpleNamespace(
        Invoice=Invoice,
        VALID=VALID,
        INVALID=INVALID,
        answers=answers,
        broken=broken_model,
        valid=valid_model,
        flaky=flaky_model,
        invalid=invalid_model,
        invoice_call=invoice_call,
    )


@pytest.fixture
def router_factory() -> Iterator[Callable[..., Router]]:
    made: list[Router] = []

    def factory(*names: str, algorithm: str | None = None) -> Router:
        made.append(make_router(*names, algorithm=algorithm))
        return made[-1]

    yield factory
    for router in made:
        router.close()
