"""Shared fixtures. Keep this file small: helpers used by one test file live in that file."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import shutil
import sys
import tempfile

# Before anything imports LiteLLM or Hugging Face code: LiteLLM's bundled cost map (no
# fetch of the remote one) and no hub downloads. scripts/test exports both as well.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Learning is persisted by default (an SQLite file in the user data dir): tests keep it in
# memory, and anything that still asks for the data dir gets a throwaway one, never the
# developer's. A test of the default store sets both back itself.
os.environ["CONDUIT_STATE_URL"] = "memory://"
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="conduit-test-data-")

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from conduit import Router

atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)

StateCheck = Callable[[Any, Any], None]


def _assert_same(a: Any, b: Any, path: str = "state") -> None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        assert a_arr.shape == b_arr.shape, f"{path}: shape {a_arr.shape} != {b_arr.shape}"
        assert np.array_equal(a_arr, b_arr), f"{path}: arrays differ"
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping), f"{path}: {type(b).__name__} is not a mapping"
        assert set(a) == set(b), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture
def assert_same_state() -> StateCheck:
    """Exact equality of two state dicts (nested mappings, lists and numpy arrays)."""
    return _assert_same


@pytest.fixture
def make_router() -> Callable[..., Router]:
    """``Router`` with the fast, dependency-free hashing features unless told otherwise."""

    def make(models: Any = ("small", "large"), **kwargs: Any) -> Router:
        kwargs.setdefault("embedding_backend", "hashing")
        return Router(models, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _user_cache_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``conduit.replay.load`` caches features under the user cache dir: a fresh one per test,
    never the tester's (platformdirs reads XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> None:
    """No event loop made behind anyone's back on the main thread.

    A sync LiteLLM call over HTTP reports to its service logger from
    ``asyncio.get_event_loop()``, which on the main thread, before any loop was set,
    makes one and keeps it; nothing closes it, so when an async test installs its own
    loop that one is collected unclosed (an "unclosed event loop" warning and one for its
    self-pipe's socket). With the main thread's loop set to None the call finds no loop,
    and LiteLLM runs the report with ``asyncio.run``, which closes its loop.
    """
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _close_litellm_sync_clients() -> Iterator[None]:
    """Close the sync HTTP clients LiteLLM cached during the test (one per deployment key
    and base URL, kept 10 minutes, then dropped without ``close()``): left to the collector,
    their sockets would warn in whichever later test it ran. Async clients are left to
    their own event loop."""
    yield
    litellm = sys.modules.get("litellm")
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    if cache is None:
        return
    for key, client in list(cache.cache_dict.items()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
            cache.delete_cache(key)
