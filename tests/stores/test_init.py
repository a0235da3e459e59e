"""open_store: URLs to backends, options in the query string, refusals as a table."""

from __future__ import annotations

import sys
import uuid

import pytest

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.stores import __all__ as exported
from conduit.stores import open_store, redact
from conduit.stores._memory import MemoryStore

from .test_contract import META, delta


def test_exported_names_are_complete() -> None:
    import conduit.stores as stores

    assert list(exported) == sorted(exported)
    assert all(hasattr(stores, name) for name in exported)
    assert set(exported) == {
        "HistoryRecord",
        "Learner",
        "Meta",
        "Snapshot",
        "Store",
        "StoreSync",
        "Sums",
        "check_url",
        "open_store",
        "redact",
    }


@pytest.mark.parametrize(
    ("url", "error", "pattern"),
    [
        ("", ConfigurationError, "must be a URL"),
        ("state.db", ConfigurationError, "must be a URL"),
        (3, ConfigurationError, "must be a URL"),
        ("ftp://host/x", ConfigurationError, "unknown state store scheme 'ftp'"),
        ("sqlite://", ConfigurationError, "sqlite URL needs a path"),
        ("sqlite:///", ConfigurationError, "sqlite URL needs a path"),
        (
            "memory://?store_prompts=maybe",
            ConfigurationError,
            "store_prompts must be true or false",
        ),
        ("memory://?namespace=a%0Ab", ConfigurationError, "control characters"),
    ],
)
def test_invalid_urls(url: object, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        open_store(url)  # type: ignore[arg-type]


def test_query_options_and_overrides() -> None:
    store = open_store("memory://?namespace=team&store_prompts=yes")
    assert (store.namespace, store.store_prompts) == ("team", True)
    store = open_store(
        "memory://?namespace=team&store_prompts=1", namespace="x", store_prompts=False
    )
    assert (store.namespace, store.store_prompts) == ("x", False)
    assert open_store("memory://").namespace == "default"


def test_named_memory_stores_share_data_and_bare_ones_do_not() -> None:
    name = uuid.uuid4().hex
    a, b = open_store(f"memory://{name}"), open_store(f"memory://{name}")
    a.push(delta(1.0), META)
    assert isinstance(b, MemoryStore) and b.pull() is not None
    assert open_store("memory://").pull() is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/x", "postgresql://alice:***@db:5432/x"),
        ("redis://:pw@cache:6379/0?prefix=p", "redis://:***@cache:6379/0?prefix=p"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_passwords_are_never_shown(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_the_store_url_hides_the_password() -> None:
    pytest.importorskip("psycopg")
    store = open_store("postgresql://alice:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in store.url and "s3cret" not in repr(store)


def test_missing_redis_client_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[redis\]'"):
        open_store("redis://localhost:6379/0")
