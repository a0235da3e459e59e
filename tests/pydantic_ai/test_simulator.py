"""ConduitModel over real HTTP: PydanticAI's OpenAIChatModel pointed at the local simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from conduit.engines.router import Router
from conduit.pydantic_ai import ConduitModel, record_feedback
from conduit.simulator import Simulator

MODELS = ("small", "medium", "large")


#: prompt -> {model: (quality, cost)}
TINY_LOG = {
    "What is 2 + 2?": {"small": (1.0, 0.0001), "medium": (1.0, 0.0010), "large": (1.0, 0.0100)},
    "Name a colour.": {"small": (0.5, 0.0001), "medium": (1.0, 0.0011), "large": (1.0, 0.0090)},
    "Prove it.": {"small": (0.0, 0.0002), "medium": (0.25, 0.0020), "large": (0.75, 0.0200)},
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    log = tmp_path / "tiny.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "prompt": prompt,
            "task": "tiny",
            "outcomes": {m: {"quality": q, "cost": c} for m, (q, c) in outcomes.items()},
        }
        for i, (prompt, outcomes) in enumerate(TINY_LOG.items())
    ]
    log.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with Simulator(log, seed=0) as simulator:
        yield simulator


def chat_model(sim: Simulator, name: str) -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=sim.base_url, api_key="sk-x"))


def conduit_model(
    sim: Simulator, names: tuple[str, ...] = MODELS, **options: object
) -> ConduitModel:
    router = Router(models=list(names), embedding_backend="hashing", seed=0)
    prices = {n: (sim.price_per_token(n),) * 2 for n in names if n in sim.models}
    return ConduitModel(
        {n: chat_model(sim, n) for n in names}, router=router, prices=prices, **options
    )


async def test_each_answer_is_served_by_the_chosen_model_and_priced(sim: Simulator) -> None:
    model = conduit_model(sim, success_quality=None)
    expected_cost = 0.0
    async with model:
        agent = Agent(model)
        for prompt in TINY_LOG:
            result = await agent.run(prompt)
            chosen = result.response.metadata["conduit"]["model"]
            answer = sim.catalog.answer(chosen, prompt)
            assert result.output == answer.content
            assert result.response.model_name == answer.model
            assert record_feedback(result, quality=answer.quality) == 1
            usage = result.response.usage
            assert (usage.input_tokens, usage.output_tokens) == (
                answer.prompt_tokens,
                answer.completion_tokens,
            )
            tokens = answer.prompt_tokens + answer.completion_tokens
            expected_cost += tokens * sim.price_per_token(chosen)
    stats = model.router.stats()
    assert sum(sim.served.values()) == stats.total_decisions == stats.total_feedback == 3
    # the usage the simulator reported, times its price per token
    assert stats.total_cost == pytest.approx(expected_cost)


async def test_streaming_over_http(sim: Simulator) -> None:
    model = conduit_model(sim)
    async with model:
        async with Agent(model).run_stream("Name a colour.") as run:
            text = await run.get_output()
        chosen = run.new_messages()[-1].metadata["conduit"]["model"]
    assert text == sim.catalog.answer(chosen, "Name a colour.").content
    stats = model.router.stats().models[chosen]
    assert (stats.decisions, stats.feedback) == (1, 1)
    assert stats.mean_cost is not None and stats.mean_cost > 0


async def test_a_model_the_endpoint_does_not_serve_fails_over(sim: Simulator) -> None:
    model = conduit_model(sim, names=("retired", "small"))
    async with model:
        agent = Agent(model)
        for _ in range(3):
            result = await agent.run("What is 2 + 2?")
            assert result.response.metadata["conduit"]["model"] == "small"
    stats = model.router.stats().models
    assert stats["retired"].decisions >= 1 and stats["retired"].mean_quality == 0.0
    assert sim.served == {"small": 3}
