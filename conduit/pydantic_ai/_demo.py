"""``conduit demo --via pydantic-ai``: the LiteLLM demo's queries, through PydanticAI instead.

The same simulator, the same logged queries in the same order, the same closing
table; only the caller differs. One ``OpenAIChatModel`` per logged model points
at the simulator over HTTP, a :class:`ConduitModel` routes between them (a
hybrid router priced from the log, as the LiteLLM strategy builds it), an
``Agent`` answers each query, and the logged quality of the answer is fed back
with :func:`record_feedback`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.exceptions import DeprecatedModelWarning
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from conduit import _validate
from conduit._demo import (
    DEFAULT_CONCURRENCY,
    DEFAULT_N,
    Answers,
    DemoResult,
    answer_all,
    pick_queries,
    summarise,
)
from conduit._errors import ConduitError
from conduit.pydantic_ai._model import ConduitModel, record_feedback
from conduit.replay.log import LogRecord, read_log, shipped_log

__all__ = ["run"]


async def run(
    data: str | Path | None = None,
    *,
    n: int = DEFAULT_N,
    seed: int = 0,
    concurrency: int = DEFAULT_CONCURRENCY,
    latency_ms: float = 0.0,
    progress: bool = True,
) -> DemoResult:
    """Serve the log, answer ``n`` of its queries with a PydanticAI agent, feed back quality."""
    from conduit.simulator import Simulator

    _validate.integer("concurrency", concurrency, low=1)
    path = shipped_log() if data is None else Path(data)
    queries = pick_queries(read_log(path), n, seed)

    with Simulator(path, latency_ms=latency_ms, seed=seed) as sim:
        models = sim.catalog.logged_models
        provider = OpenAIProvider(base_url=sim.base_url, api_key="sk-conduit-demo")
        model = ConduitModel(
            {m: OpenAIChatModel(m, provider=provider) for m in models},
            prices={m: (sim.price_per_token(m), sim.price_per_token(m)) for m in models},
            success_quality=None,  # the log's quality is the feedback, as in the LiteLLM demo
        )
        agent = Agent(model)

        async def request(record: LogRecord) -> Any:
            return await agent.run(record.prompt)

        async def learn(
            i: int, record: LogRecord, result: Any, answers: Answers, say: Callable[[str], None]
        ) -> None:
            stamp = (result.response.metadata or {}).get("conduit", {})
            name = str(stamp.get("model", ""))
            answer = sim.catalog.answer(name, record.prompt)
            try:
                answers.learned += record_feedback(result, quality=answer.quality)
            except ConduitError as exc:  # counted as not learned; the demo goes on
                say(f"feedback on query {record.id} not learned: {exc}")
            answers.chosen[i] = name
            answers.quality[i], answers.cost[i] = answer.quality, answer.cost

        # The log's models are 2023 snapshots that OpenAI retires; the simulator still serves them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecatedModelWarning)
            async with model:  # closes the HTTP client at the end
                got = await answer_all(
                    queries, request, learn, concurrency=concurrency, progress=progress
                )
        stats = model.router.stats()
        model.router.close()

    return summarise(
        path,
        queries,
        models,
        got,
        seed=seed,
        spend=stats.total_cost,
        algorithm=stats.algorithm,
        via="PydanticAI",
    )
