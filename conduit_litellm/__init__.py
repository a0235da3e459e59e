"""Conduit for LiteLLM: a routing strategy that learns from every request.

``ConduitRoutingStrategy`` routes a ``litellm.Router``'s requests and learns
from their outcomes; ``ConduitRoutingPlugin`` does the same inside the LiteLLM
proxy (``router_settings.plugins``).
"""

from conduit_litellm.feedback import ConduitFeedbackLogger, FeedbackServer
from conduit_litellm.plugin import ConduitRoutingPlugin
from conduit_litellm.strategy import ConduitRoutingStrategy
from conduit_litellm.utils import extract_model_ids

__all__ = [
    "ConduitFeedbackLogger",
    "ConduitRoutingPlugin",
    "ConduitRoutingStrategy",
    "FeedbackServer",
    "extract_model_ids",
]
