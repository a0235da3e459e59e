"""Redis specifics: an outage of a real redis-server (our own, on another port) mid-run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conduit._errors import ConfigurationError, StoreError
from conduit.stores import open_store
from conduit.stores._redis import RedisStore

from .conftest import RedisServer, free_port
from .test_sync import global_total, learn, make_router


@pytest.fixture
def redis_server(redis_server_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    server = RedisServer(redis_server_binary, free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def _wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.redis
def test_redis_outage_mid_run(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="conduit.stores")
    store = open_store(redis_server.url)
    router = make_router(redis_server.url, sync_interval=0.05)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 20, "before")
        _wait_for(lambda: global_total(store) == 20)
        redis_server.stop()
        learn(router, 30, "during")  # no request fails while the store is down
        _wait_for(lambda: sync.failures >= 3)
        redis_server.start()
        _wait_for(lambda: sync.down_since is None)
        learn(router, 10, "after")
    finally:
        router.close()
    assert global_total(store) == 60
    assert len(store.history(limit=100)) == 60
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert sum("is back after" in r.getMessage() for r in caplog.records) == 1
    store.close()


@pytest.mark.redis
def test_an_unreachable_server_raises_store_error_with_its_cause() -> None:
    from .conftest import free_port

    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreError, match="Redis store") as info:
        store.pull()
    assert info.value.__cause__ is not None


def test_the_prefix_comes_from_the_url() -> None:
    pytest.importorskip("redis")
    store = open_store("redis://127.0.0.1:1/0?prefix=team-a&namespace=n1")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.namespace, store._key("state", "n1")) == (
        "team-a",
        "n1",
        "team-a:state:n1",
    )


def test_bad_redis_url_is_a_configuration_or_store_error() -> None:
    pytest.importorskip("redis")
    with pytest.raises((StoreError, ConfigurationError)):
        open_store("redis://127.0.0.1:notaport/0")
