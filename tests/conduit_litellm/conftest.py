"""What the LiteLLM tests share."""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Iterator

import litellm
import pytest

from conduit_litellm import _compat


@pytest.fixture(scope="session", autouse=True)
def no_implicit_event_loop() -> None:
    """No event loop made behind anyone's back on the main thread.

    A sync LiteLLM call over HTTP reports to its service logger from
    ``asyncio.get_event_loop()``, which on the main thread, before any loop was set,
    makes one and keeps it; nothing ever closes it, so when an async test installs its
    own loop that one is collected unclosed (an "unclosed event loop" warning and its
    self-pipe's "unclosed socket"). With the main thread's loop set to None, the call
    finds no loop and LiteLLM runs the report with ``asyncio.run``, which closes its loop.
    """
    asyncio.set_event_loop(None)


def close_cached_sync_clients() -> None:
    """Close and forget the sync HTTP clients LiteLLM cached (one per deployment's key and
    base URL, kept 10 minutes): the next test's simulator listens elsewhere, and a client
    dropped without ``close()`` leaves its sockets to the collector, which then warns.
    Async clients are left: they close on their own event loop."""
    cache = litellm.in_memory_llm_clients_cache
    for key, client in list(cache.cache_dict.items()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
            cache.delete_cache(key)


@pytest.fixture
def restore_litellm() -> Iterator[None]:
    """LiteLLM's global callback lists and cost map as they were before the test: a
    strategy's logger, or a deployment's custom price, must not leak into the next test;
    the sync HTTP clients the test's calls opened are closed."""
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    cost = copy.deepcopy(litellm.model_cost)
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries
    litellm.model_cost.clear()
    litellm.model_cost.update(cost)
    close_cached_sync_clients()
