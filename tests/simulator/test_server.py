from __future__ import annotations

import asyncio
import io
import json
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conduit._errors import ConfigurationError
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator

from .conftest import TINY_LOG


@pytest.fixture
def sim(tiny_log: Path) -> Iterator[Simulator]:
    with Simulator(tiny_log, aliases={"gpt-4o-mini": "small"}, seed=0) as simulator:
        yield simulator


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


def chat(model: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


async def post(
    client: aiohttp.ClientSession, sim: Simulator, body: Any
) -> tuple[int, dict[str, Any], Any]:
    async with client.post(f"{sim.base_url}/chat/completions", json=body) as response:
        return response.status, dict(response.headers), await response.json()


async def test_answers_carry_the_logged_quality_cost_and_token_usage(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    for prompt, outcomes in TINY_LOG.items():
        for model, (quality, cost) in outcomes.items():
            status, headers, body = await post(client, sim, chat(model, prompt))
            assert status == 200
            assert float(headers["x-conduit-quality"]) == quality
            assert float(headers["x-conduit-cost"]) == cost
            assert headers["x-conduit-known-prompt"] == "true"
            assert body["conduit"]["quality"] == quality and body["conduit"]["cost"] == cost
            assert body["object"] == "chat.completion" and body["model"] == model
            assert body["choices"][0]["message"]["role"] == "assistant"
            usage = body["usage"]
            assert usage["prompt_tokens"] == math.ceil(len(prompt) / 4)
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert sim.served == Counter({"small": 3, "medium": 3, "large": 3})


async def test_the_prompt_is_the_last_user_message(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Prove Fermat's "},
                {"type": "text", "text": "last theorem."},
            ],
        },
    ]
    status, headers, body = await post(client, sim, {"model": "large", "messages": messages})
    assert status == 200 and body["conduit"]["quality"] == 0.75
    assert headers["x-conduit-record-id"] == "q1"


async def test_unknown_prompt_says_so_and_repeats_its_answer(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    _, headers, first = await post(client, sim, chat("small", "Never logged."))
    _, _, second = await post(client, sim, chat("small", "Never logged."))
    assert headers["x-conduit-known-prompt"] == "false"
    assert first["conduit"]["known_prompt"] is False and first["conduit"]["record_id"] is None
    assert first["conduit"] == second["conduit"]
    assert first["conduit"]["quality"] in {o["small"][0] for o in TINY_LOG.values()}


async def test_aliases_answer_as_their_logged_model(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    status, _, body = await post(client, sim, chat("gpt-4o-mini", "Name a colour."))
    assert status == 200 and body["model"] == "gpt-4o-mini"
    assert body["conduit"]["quality"] == TINY_LOG["Name a colour."]["small"][0]


async def test_models_endpoint_lists_logged_models_and_aliases(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{sim.base_url}/models") as response:
        assert response.status == 200
        body = await response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["large", "medium", "small", "gpt-4o-mini"]
    assert {m["object"] for m in body["data"]} == {"model"}


HUGE = json.dumps(chat("small", "x" * 2_000_000)).encode()


@pytest.mark.parametrize(
    ("body", "status", "pattern"),
    [
        (b"{not json", 400, "could not parse the JSON body"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
            400,
            "must provide a model parameter",
        ),
        (json.dumps({"model": "small"}).encode(), 400, "'messages' must be a non-empty array"),
        (json.dumps({"model": "small", "messages": []}).encode(), 400, "non-empty array"),
        (
            json.dumps({"model": "small", "messages": ["hi"]}).encode(),
            400,
            r"messages\[0\] must be an object with a string 'role'",
        ),
        (
            json.dumps(
                {"model": "small", "messages": [{"role": "system", "content": "x"}]}
            ).encode(),
            400,
            "must contain a message with role 'user'",
        ),
        (json.dumps(chat("small", "hi", stream="yes")).encode(), 400, "'stream' must be a boolean"),
        (HUGE, 400, "exceeds the simulator's limit"),
        (json.dumps(chat("huge", "hi")).encode(), 404, "The model `huge` does not exist"),
    ],
    ids=[
        "non-json",
        "array",
        "no-model",
        "no-messages",
        "empty-messages",
        "bad-message",
        "no-user-message",
        "bad-stream",
        "huge-body",
        "unknown-model",
    ],
)
async def test_bad_requests_get_openai_style_errors(
    sim: Simulator, client: aiohttp.ClientSession, body: bytes, status: int, pattern: str
) -> None:
    async with client.post(
        f"{sim.base_url}/chat/completions",
        data=io.BytesIO(body),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == status
        error = (await response.json())["error"]
    assert re.search(pattern, error["message"])
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert sim.served == Counter()


async def test_chunked_body_over_the_limit_is_refused(
    tiny_log: Path, client: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 1024

    with Simulator(tiny_log, max_body_bytes=32 * 1024) as sim:
        async with client.post(f"{sim.base_url}/chat/completions", data=chunks()) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "request_too_large"


async def test_unknown_paths_get_json_errors(sim: Simulator, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{sim.base_url}/embeddings") as response:
        assert response.status == 404
        assert "Not Found" in (await response.json())["error"]["message"]
    async with client.get(f"{sim.base_url}/chat/completions") as response:
        assert response.status == 405
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_error_rate_one_fails_every_request_with_500_or_429(
    tiny_log: Path, client: aiohttp.ClientSession
) -> None:
    with Simulator(tiny_log, error_rate=1.0, seed=3) as sim:
        statuses = Counter()
        for _ in range(40):
            status, _, body = await post(client, sim, chat("small", "Name a colour."))
            statuses[status] += 1
            assert body["error"]["type"] in {"server_error", "requests"}
        assert set(statuses) == {429, 500}
        assert sim.injected == statuses and sim.served == Counter()


async def test_error_rate_is_the_share_of_failed_requests(
    tiny_log: Path, client: aiohttp.ClientSession
) -> None:
    with Simulator(tiny_log, error_rate=0.3, seed=1) as sim:
        results = await asyncio.gather(
            *(post(client, sim, chat("medium", "What is 2 + 2?")) for _ in range(400))
        )
    failed = sum(status != 200 for status, _, _ in results)
    assert 90 <= failed <= 150  # 120 expected, binomial sd 9.2
    assert sum(sim.injected.values()) == failed and sim.served["medium"] == 400 - failed


@pytest.mark.parametrize(("latency", "jitter"), [(150.0, 0.0), (150.0, 100.0)])
async def test_latency_delays_each_answer(
    tiny_log: Path, client: aiohttp.ClientSession, latency: float, jitter: float
) -> None:
    with Simulator(tiny_log, latency_ms=latency, jitter_ms=jitter, seed=0) as sim:
        elapsed = []
        for _ in range(5):
            start = time.perf_counter()
            status, _, _ = await post(client, sim, chat("small", "What is 2 + 2?"))
            elapsed.append(time.perf_counter() - start)
            assert status == 200
    assert min(elapsed) >= (latency - jitter) / 1000 * 0.95
    assert max(elapsed) < (latency + jitter) / 1000 + 1.0
    if jitter:
        assert max(elapsed) - min(elapsed) > 0.005


async def test_thousand_concurrent_requests_all_succeed(client: aiohttp.ClientSession) -> None:
    records = read_log(shipped_log(), limit=100)
    with Simulator(latency_ms=200.0) as sim:
        models = sim.models
        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                post(client, sim, chat(models[i % len(models)], records[i % len(records)].prompt))
                for i in range(1000)
            )
        )
        elapsed = time.perf_counter() - start
    assert [status for status, _, _ in results] == [200] * 1000
    for i, (_, _, body) in enumerate(results):
        record, model = records[i % len(records)], models[i % len(models)]
        assert body["conduit"]["quality"] == record.outcomes[model].quality
    assert elapsed < 30  # one after the other would take 200 s


async def test_streaming_sends_the_answer_then_usage_then_done(
    sim: Simulator, client: aiohttp.ClientSession
) -> None:
    body = chat(
        "large", "Prove Fermat's last theorem.", stream=True, stream_options={"include_usage": True}
    )
    async with client.post(f"{sim.base_url}/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["x-conduit-quality"] == "0.75"
        events = [
            line.removeprefix("data: ")
            for line in (await response.text()).splitlines()
            if line.startswith("data: ")
        ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Simulated answer from large."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["conduit"]["quality"] == 0.75
    prompt = body["messages"][0]["content"]
    assert chunks[-1]["usage"]["prompt_tokens"] == math.ceil(len(prompt) / 4)


async def test_serves_on_the_running_loop_too(
    tiny_log: Path, client: aiohttp.ClientSession
) -> None:
    async with Simulator(tiny_log) as sim:
        status, _, _ = await post(client, sim, chat("small", "Name a colour."))
        assert status == 200 and sim.port > 0
    with pytest.raises(ConfigurationError, match="not running"):
        _ = sim.base_url


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"host": "0.0.0.0"}, "binds loopback only"),
        ({"port": -1}, r"port must be an int in \[0, 65535\]"),
        ({"latency_ms": -5.0}, "latency_ms must be a finite number >= 0"),
        ({"latency_ms": 10.0, "jitter_ms": 20.0}, "must not exceed latency_ms"),
        ({"error_rate": 1.5}, r"error_rate must be in \[0, 1\]"),
        ({"max_body_bytes": 0}, "max_body_bytes must be an int >= 1"),
        ({"aliases": {"a": "nope"}}, "not a model of the log"),
    ],
)
def test_invalid_settings(tiny_log: Path, kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        Simulator(tiny_log, **kwargs)


def test_a_busy_port_is_a_configuration_error(tiny_log: Path) -> None:
    with Simulator(tiny_log) as first, pytest.raises(ConfigurationError, match="cannot listen"):
        Simulator(tiny_log, port=first.port).__enter__()
