"""The Redis feature cache, against the real Redis (CONDUIT_TEST_REDIS_URL, default 127.0.0.1:6379).

Where Redis is absent these tests are skipped loudly, or fail with
CONDUIT_REQUIRE_SERVICES=1, as the store tests are (tests/stores/conftest.py).
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.engines.features._extractor import FeatureExtractor
from conduit.engines.features._hashing import HashingEmbedder
from conduit.engines.features._redis_cache import RedisFeatureCache

from ...stores.conftest import REDIS_URL, free_port, service_missing

TEXT = "What is the capital of France?"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[Any]:
    try:
        redis = importlib.import_module("redis")
    except ImportError as exc:
        service_missing("the redis client library", exc)
    found = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        found.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    yield found
    found.close()


@pytest.fixture
def prefix(client: Any) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"conduit_test_{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def cache(prefix: str) -> Iterator[RedisFeatureCache]:
    made = RedisFeatureCache(url=REDIS_URL, ttl=120, prefix=prefix)
    yield made
    made.close()


class CountingEmbedder(HashingEmbedder):
    """Hashed n-grams that count how often they were asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def embed(self, texts: Any) -> Any:
        self.calls += 1
        return super().embed(texts)


def test_miss_then_hit(cache: RedisFeatureCache) -> None:
    vector = np.arange(5, dtype=np.float64) / 3
    assert cache.get("x/p4", TEXT, 5) is None
    cache.put("x/p4", TEXT, vector)
    found = cache.get("x/p4", TEXT, 5)
    assert found is not None and found.dtype == np.float64
    np.testing.assert_array_equal(found, vector)
    assert (cache.hits, cache.misses, cache.errors) == (1, 1, 0)


def test_value_is_raw_float64_with_the_ttl(cache: RedisFeatureCache, client: Any) -> None:
    vector = np.array([0.5, -1.25, 3.0])
    cache.put("x/p2", TEXT, vector)
    key = cache.key("x/p2", TEXT)
    assert client.get(key) == vector.astype("<f8").tobytes()  # bytes, never pickle
    assert 0 < client.ttl(key) <= 120


def test_key_names_the_extractor(cache: RedisFeatureCache, prefix: str) -> None:
    cache.put("onnx:all-MiniLM-L6-v2/p64", TEXT, np.ones(68))
    assert cache.key("hashing/p64", TEXT).startswith(f"{prefix}:hashing/p64:")
    assert cache.get("hashing/p64", TEXT, 68) is None  # another backend never sees these
    assert cache.get("onnx:all-MiniLM-L6-v2/p64", TEXT, 68) is not None
    assert cache.get("onnx:all-MiniLM-L6-v2/p64", TEXT, 67) is None  # another width: a miss


def test_extractor_reads_through_the_second_level(cache: RedisFeatureCache) -> None:
    writer = FeatureExtractor(embedder=CountingEmbedder(), second_level=cache)
    expected = writer.features(TEXT)
    embedder = CountingEmbedder()
    reader = FeatureExtractor(embedder=embedder, second_level=cache)  # another process, say
    assert reader.cached(TEXT) is None
    np.testing.assert_array_equal(reader.features(TEXT), expected)
    assert embedder.calls == 0
    assert reader.cached(TEXT) is not None  # and now in process too
    narrower = FeatureExtractor(embedder=embedder, projection_dim=32, second_level=cache)
    assert narrower.name != reader.name
    assert narrower.features(TEXT).shape == (narrower.dim,)
    assert embedder.calls == 1  # another projection: computed, not served stale


def test_outage_warns_once_and_routing_goes_on(
    caplog: pytest.LogCaptureFixture, make_router: Any
) -> None:
    clock = Clock()
    down = RedisFeatureCache(url=f"redis://127.0.0.1:{free_port()}/0", ttl=60, clock=clock)
    router = make_router(("small", "large"), bandit_algorithm="linucb", seed=0)
    assert router.extractor is not None
    router.extractor.second_level = down
    with caplog.at_level(logging.INFO, logger="conduit.features"):
        for i in range(5):
            router.route_sync(f"question {i}")
        clock.now += 31.0  # past retry_after: tried again, still down: no second warning
        router.route_sync("one more")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis feature cache at redis://127.0.0.1" in warnings[0].getMessage()
    assert down.errors == 2  # one try per retry_after, not one per request
    assert router.stats().total_decisions == 6


def test_recovery_is_logged_and_a_new_outage_warns_again(
    cache: RedisFeatureCache, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(cache, "_clock", clock)
    working = cache._client
    closed = RedisFeatureCache(url=f"redis://127.0.0.1:{free_port()}/0")
    broken = closed._client
    with caplog.at_level(logging.INFO, logger="conduit.features"):
        monkeypatch.setattr(cache, "_client", broken)
        assert cache.get("x", TEXT, 1) is None
        monkeypatch.setattr(cache, "_client", working)
        assert cache.get("x", TEXT, 1) is None  # still waiting the outage out: not asked
        clock.now += 31.0
        cache.put("x", TEXT, np.ones(1))
        monkeypatch.setattr(cache, "_client", broken)
        cache.put("x", TEXT, np.ones(1))
    levels = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert [level for level, _ in levels] == ["WARNING", "INFO", "WARNING"]
    assert "is reachable again" in caplog.records[1].getMessage()
    closed.close()


def test_a_silent_server_costs_one_short_timeout() -> None:
    """A server that accepts but never answers: the call gives up after ~50 ms."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        silent = RedisFeatureCache(url=f"redis://127.0.0.1:{port}/0", ttl=60)
        began = time.perf_counter()
        assert silent.get("x", TEXT, 1) is None
        elapsed = time.perf_counter() - began
        assert elapsed < 0.5, elapsed
        began = time.perf_counter()
        silent.put("x", TEXT, np.ones(1))  # down: skipped at once
        assert time.perf_counter() - began < 0.01
        assert silent.errors == 1


@pytest.mark.parametrize(
    ("kwargs", "exception", "pattern"),
    [
        ({"ttl": 0}, ConfigurationError, "ttl must be a positive int"),
        ({"ttl": 1.5}, ConfigurationError, "ttl must be a positive int"),
        ({"prefix": ""}, ConfigurationError, "prefix must be a non-empty str"),
        ({"timeout": 0}, ConfigurationError, "timeout must be a positive number"),
        ({"retry_after": -1}, ConfigurationError, "retry_after must be a positive number"),
        ({"url": "ftp://127.0.0.1"}, ConfigurationError, "bad Redis URL"),
    ],
)
def test_invalid_arguments(
    kwargs: dict[str, Any], exception: type[Exception], pattern: str
) -> None:
    with pytest.raises(exception, match=pattern):
        RedisFeatureCache(**kwargs)


def test_timeouts_are_short() -> None:
    made = RedisFeatureCache(url=REDIS_URL)
    options = made._client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.05


def test_missing_redis_library_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[redis\]'"):
        RedisFeatureCache()
