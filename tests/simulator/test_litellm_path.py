"""What of a simulated answer survives LiteLLM's OpenAI provider path to the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

litellm = pytest.importorskip("litellm", reason="the litellm extra is not installed")

from conduit.simulator import Simulator, quality_of  # noqa: E402

from .conftest import TINY_LOG  # noqa: E402

# LiteLLM imports its GitHub Copilot provider lazily; pydantic warns about its TypedDicts.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly. qualifier:UserWarning")


@pytest.fixture(autouse=True)
async def close_litellm_clients() -> AsyncIterator[None]:
    """LiteLLM caches its HTTP clients per event loop; close them before this test's loop ends."""
    yield
    await litellm.close_litellm_async_clients()


@pytest.fixture
def sim(tiny_log: Path) -> Iterator[Simulator]:
    with Simulator(tiny_log, seed=0) as simulator:
        yield simulator


def deployment(sim: Simulator, model: str) -> dict[str, object]:
    price = sim.price_per_token(model)
    return {
        "model_name": "tiny",
        "model_info": {"id": model},
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": sim.base_url,
            "api_key": "sk-dummy",
            "input_cost_per_token": price,
            "output_cost_per_token": price,
        },
    }


async def test_quality_reaches_the_caller_in_headers_and_body(sim: Simulator) -> None:
    prompt = "Prove Fermat's last theorem."
    response = await litellm.acompletion(
        model="openai/large",
        api_base=sim.base_url,
        api_key="sk-dummy",
        messages=[{"role": "user", "content": prompt}],
    )
    assert quality_of(response) == 0.75
    headers = response._hidden_params["additional_headers"]
    assert float(headers["llm_provider-x-conduit-cost"]) == TINY_LOG[prompt]["large"][1]
    assert response.conduit == {
        "quality": 0.75,
        "cost": 0.02,
        "known_prompt": True,
        "record_id": "q1",
    }
    assert response.usage.prompt_tokens == 7


async def test_router_prices_answers_with_the_deployment_prices(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LiteLLM keeps custom deployment prices in its global cost map; another test's deployment
    # of the same model name must not price this one (restored after the test).
    cost_map = dict(litellm.model_cost)
    for name in ("small", "large", "openai/small", "openai/large"):
        cost_map.pop(name, None)
    monkeypatch.setattr(litellm, "model_cost", cost_map)
    router = litellm.Router(model_list=[deployment(sim, m) for m in ("small", "large")])
    response = await router.acompletion(
        model="tiny", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    model = response._hidden_params["model_id"]
    usage = response.usage
    expected = sim.price_per_token(model) * (usage.prompt_tokens + usage.completion_tokens)
    assert response._hidden_params["response_cost"] == pytest.approx(expected, rel=1e-12)
    assert quality_of(response) == TINY_LOG["What is 2 + 2?"][model][0]


async def test_streamed_answers_keep_the_headers(sim: Simulator) -> None:
    response = await litellm.acompletion(
        model="openai/medium",
        api_base=sim.base_url,
        api_key="sk-dummy",
        stream=True,
        messages=[{"role": "user", "content": "Name a colour."}],
    )
    text = ""
    async for chunk in response:
        text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "Simulated answer from medium."
    assert quality_of(response) == 1.0


async def test_injected_errors_reach_litellm_as_provider_errors(tiny_log: Path) -> None:
    with Simulator(tiny_log, error_rate=1.0, seed=0) as sim:
        seen: set[type[Exception]] = set()
        for _ in range(12):
            with pytest.raises((litellm.InternalServerError, litellm.RateLimitError)) as caught:
                await litellm.acompletion(
                    model="openai/small",
                    api_base=sim.base_url,
                    api_key="sk-dummy",
                    num_retries=0,
                    max_retries=0,
                    messages=[{"role": "user", "content": "Name a colour."}],
                )
            seen.add(type(caught.value))
        assert seen == {litellm.InternalServerError, litellm.RateLimitError}
        assert set(sim.injected) == {429, 500}


def test_quality_of_is_none_without_the_header() -> None:
    assert quality_of(object()) is None
