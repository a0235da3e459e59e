"""Standalone Conduit, offline: a PydanticAI agent extracts invoices through three models.

Run: ``python examples/standalone_invoices.py`` (needs ``pip install -e ".[pydantic-ai]"``
from a clone).

The three "providers" are PydanticAI ``FunctionModel``s, so it needs no network and no
key: ``careful`` always returns a valid invoice, ``sloppy`` returns a total that fails
validation every other time (the agent then retries), and ``down`` answers every request
with HTTP 503 (Conduit then fails over to the next best model). ConduitModel learns from
all of it and, asked to put quality first, soon sends nearly every invoice to ``careful``.
It prints the last decision's explanation and, per model, the requests it served, the
quality and cost learned, and how many final answers it gave.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from conduit import Router
from conduit.pydantic_ai import ConduitModel, decision_ids, record_feedback


class Invoice(BaseModel):
    number: str
    total: float


def careful(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(
        parts=[ToolCallPart(info.output_tools[0].name, {"number": "INV-7", "total": 13.5})]
    )


_sloppy_calls = itertools.count()


def sloppy(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    total: object = "13.50 USD" if next(_sloppy_calls) % 2 == 0 else 13.5
    return ModelResponse(
        parts=[ToolCallPart(info.output_tools[0].name, {"number": "INV-7", "total": total})]
    )


def down(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    raise ModelHTTPError(503, "down", {"error": "overloaded"})


async def main(n: int = 60) -> None:
    router = Router(models=["careful", "sloppy", "down"], embedding_backend="hashing", seed=0)
    model = ConduitModel.from_router(
        router,
        {
            "careful": FunctionModel(careful),
            "sloppy": FunctionModel(sloppy),
            "down": FunctionModel(down),
        },
        prices={"careful": (2e-6, 8e-6), "sloppy": (1e-7, 4e-7), "down": (1e-7, 4e-7)},
        preferences="quality",  # validity first; "balanced" would trade some of it for price
    )
    agent = Agent(model, output_type=Invoice, retries=3)
    answered: Counter[str] = Counter()
    for i in range(n):
        result = await agent.run(f"Bill INV-{i}: three widgets at $4.50")
        answered[router.explain(decision_ids(result)[-1]).selected_model] += 1
        if i == n - 1:  # your own judgement, any time later, by the decision ids the run carries
            record_feedback(result, quality=1.0)
            print(router.explain(decision_ids(result)[-1]).format().splitlines()[0])

    print(f"{'model':<8} {'requests':>8} {'quality':>8} {'mean cost $':>12} {'final answers':>14}")
    for name, stats in router.stats().models.items():
        quality = "-" if stats.mean_quality is None else f"{stats.mean_quality:.2f}"
        cost = "-" if stats.mean_cost is None else f"{stats.mean_cost:.7f}"
        print(f"{name:<8} {stats.decisions:>8} {quality:>8} {cost:>12} {answered[name]:>14}")
    router.close()


if __name__ == "__main__":
    asyncio.run(main())
