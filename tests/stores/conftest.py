"""Store fixtures: every backend, each test isolated (own database, key prefix or namespace).

The PostgreSQL and Redis tests need running servers (``CONDUIT_TEST_POSTGRES_URL``,
default ``postgresql://postgres@127.0.0.1:5432/test``; ``CONDUIT_TEST_REDIS_URL``,
default ``redis://127.0.0.1:6379/0``). Where one is absent its tests are skipped
with a loud reason; with ``CONDUIT_REQUIRE_SERVICES=1`` (CI) they fail instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conduit import Router
from conduit.stores import Store, open_store

POSTGRES_URL = os.environ.get(
    "CONDUIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CONDUIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("CONDUIT_REQUIRE_SERVICES", "") not in ("", "0")


def service_missing(what: str, error: object) -> None:
    """Skip loudly, or fail when CI demands every service (CONDUIT_REQUIRE_SERVICES=1)."""
    message = (
        f"SERVICE MISSING: {what} is not reachable ({error}); its store tests did NOT run. "
        "Start it, or set CONDUIT_REQUIRE_SERVICES=1 to make this a failure."
    )
    if REQUIRE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _client_library(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        service_missing(f"the {name} client library", exc)


def _admin() -> Any:
    psycopg = _client_library("psycopg")
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        service_missing(f"PostgreSQL at {POSTGRES_URL}", exc)


def create_database() -> str:
    """A new empty database on the test server; its URL."""
    name = f"conduit_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(POSTGRES_URL, name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with _admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One database for the session's PostgreSQL tests (each test uses its own namespace)."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A database of its own, for tests that look at the schema."""
    url = create_database()
    yield url
    drop_database(url)


def _redis_client(url: str = REDIS_URL) -> Any:
    redis = _client_library("redis")
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {url}", exc)
    return client


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own; its keys are deleted afterwards."""
    client = _redis_client()
    prefix = f"conduit_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty namespace on ``backend``; every store opened on it shares the data."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    if backend == "memory":
        return f"memory://{uuid.uuid4().hex}?namespace={namespace}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}?namespace={namespace}"
    if backend == "postgres":
        database = request.getfixturevalue("postgres_database")
        return f"{database}?namespace={namespace}"
    prefix = request.getfixturevalue("redis_prefix")
    return f"{REDIS_URL}?prefix={prefix}&namespace={namespace}"


@pytest.fixture
def make_store(store_url: str) -> Iterator[Callable[..., Store]]:
    """Open (and later close) stores on ``store_url``."""
    opened: list[Store] = []

    def make(**kwargs: Any) -> Store:
        store = open_store(store_url, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


def _benchmark_module(name: str) -> Any:
    """A helper module of benchmarks/, loaded by its path (benchmarks/ is not a package)."""
    path = Path(__file__).parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_redis_server = _benchmark_module("_redis_server")
#: The throw-away redis-server the soak benchmark uses too, and a free loopback port.
RedisServer, free_port = _redis_server.RedisServer, _redis_server.free_port


@pytest.fixture
def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        service_missing("redis-server (binary, for the outage tests)", "not on PATH")
    assert path is not None
    return path


@pytest.fixture
def routers() -> Iterator[list[Router]]:
    """Routers a test makes (append them), closed at its end."""
    made: list[Router] = []
    yield made
    for r in made:
        r.close()
