"""A local OpenAI-compatible endpoint that replays a routing log's quality and cost.

Lets routing run end to end (LiteLLM, HTTP, cost tracking, feedback) offline,
with no provider and no API key. Imports aiohttp, so it needs the ``litellm`` extra.
"""

from conduit.simulator.catalog import Answer, Catalog, count_tokens
from conduit.simulator.command import add_simulate_arguments, run_simulate
from conduit.simulator.server import LOOPBACK_HOSTS, Simulator, quality_of

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
