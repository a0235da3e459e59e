"""``conduit demo --via pydantic-ai``: the LiteLLM demo's queries, through PydanticAI instead.

The same simulator, the same logged queries in the same order, the same closing
table; only the caller differs. One ``OpenAIChatModel`` per logged model points
at the simulator over HTTP, a :class:`ConduitModel` routes between them (a
hybrid router priced from the log, as the LiteLLM strategy builds it), an
``Agent`` answers each query, and the logged quality of the answer is fed back
with :func:`record_feedback`.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from pathlib import Path

import numpy as np
from pydantic_ai import Agent
from pydantic_ai.exceptions import DeprecatedModelWarning
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from tqdm import tqdm

from conduit import _validate
from conduit.demo import DEFAULT_CONCURRENCY, DEFAULT_N, DemoResult, pick_queries, summarise
from conduit.errors import ConduitError
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
        chosen = [""] * len(queries)
        quality = np.full(len(queries), np.nan)
        cost = np.full(len(queries), np.nan)
        learned = 0
        gate = asyncio.Semaphore(concurrency)
        bar = tqdm(total=len(queries), desc="conduit demo", unit="query", disable=not progress)

        async def ask(i: int, record: LogRecord) -> None:
            nonlocal learned
            async with gate:
                try:
                    result = await agent.run(record.prompt)
                except Exception as exc:  # a failed query is counted, not fatal
                    bar.write(f"query {record.id} failed: {type(exc).__name__}: {exc}")
                    bar.update(1)
                    return
                stamp = (result.response.metadata or {}).get("conduit", {})
                name = str(stamp.get("model", ""))
                answer = sim.catalog.answer(name, record.prompt)
                try:
                    learned += record_feedback(result, quality=answer.quality)
                except ConduitError as exc:  # counted as not learned; the demo goes on
                    bar.write(f"feedback on query {record.id} not learned: {exc}")
                chosen[i], quality[i], cost[i] = name, answer.quality, answer.cost
                bar.update(1)

        start = time.perf_counter()
        # The log's models are 2023 snapshots that OpenAI retires; the simulator still serves them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecatedModelWarning)
            async with model:  # closes the HTTP client at the end
                try:
                    await asyncio.gather(*(ask(i, r) for i, r in enumerate(queries)))
                finally:
                    seconds = time.perf_counter() - start
                    bar.close()
        stats = model.router.stats()
        model.router.close()

    return summarise(
        path,
        queries,
        models,
        chosen,
        quality,
        cost,
        seed=seed,
        spend=stats.total_cost,
        learned=learned,
        seconds=seconds,
        algorithm=stats.algorithm,
        via="PydanticAI",
    )
