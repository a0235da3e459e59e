"""The live view of what a router learned: ``conduit stats`` (terminal) and ``conduit dashboard``.

Both read a state store (the one the routers sync with, or one a replay filled)
and show the same summary (:func:`summarize`): per-model traffic, quality, cost
and latency; savings against always the dearest model; exploration; traffic
over time, by preference and by kind of query; recent decisions with their reasons.
"""

from conduit.dashboard._server import DEFAULT_HOST, DEFAULT_PORT, DashboardServer
from conduit.dashboard._summary import (
    HISTORY_LIMIT,
    ModelLine,
    RecentDecision,
    Savings,
    Summary,
    Timeline,
    format_summary,
    summarize,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HISTORY_LIMIT",
    "DashboardServer",
    "ModelLine",
    "RecentDecision",
    "Savings",
    "Summary",
    "Timeline",
    "format_summary",
    "summarize",
]
