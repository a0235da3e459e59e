"""A local OpenAI-compatible endpoint that replays a routing log's quality and cost.

Lets routing run end to end (LiteLLM, HTTP, cost tracking, feedback) offline,
with no provider and no API key. The server needs aiohttp (the ``litellm``
extra); it is imported on first use, so ``conduit --help`` works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conduit.simulator._catalog import Answer, Catalog, count_tokens
from conduit.simulator._command import add_simulate_arguments, run_simulate

if TYPE_CHECKING:
    from conduit.simulator._server import LOOPBACK_HOSTS, Simulator, quality_of

__all__ = [
    "LOOPBACK_HOSTS",
    "Answer",
    "Catalog",
    "Simulator",
    "add_simulate_arguments",
    "count_tokens",
    "quality_of",
    "run_simulate",
]

_SERVER_NAMES = frozenset({"LOOPBACK_HOSTS", "Simulator", "quality_of"})


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from conduit.simulator import _server as server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
