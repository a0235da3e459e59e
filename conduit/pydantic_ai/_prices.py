"""The cost of one response: its token usage times the model's price.

A price given to ConduitModel (USD per input and output token) wins; otherwise
PydanticAI's own price data, ``genai-prices``, is asked (offline: the data ships
with the package). A model neither knows has no cost; the router then learns
only its quality and latency.
"""

from __future__ import annotations

import logging

from pydantic_ai.messages import ModelResponse

from conduit.engines._outcomes import Price

__all__ = ["cost_of"]

logger = logging.getLogger("conduit.pydantic_ai")


def cost_of(response: ModelResponse, price: Price | None) -> float | None:
    """USD for ``response``'s usage at ``price``, or at genai-prices' price; None if unknown.

    >>> from pydantic_ai.messages import ModelResponse, TextPart
    >>> from pydantic_ai.usage import RequestUsage
    >>> answer = ModelResponse([TextPart("hi")], usage=RequestUsage(input_tokens=1000,
    ...                        output_tokens=100), model_name="gpt-4o-mini", provider_name="openai")
    >>> round(cost_of(answer, Price(1e-6, 2e-6)), 8)
    0.0012
    >>> round(cost_of(answer, None), 8)  # genai-prices: $0.15 / $0.60 per million tokens
    0.00021
    """
    usage = response.usage
    if price is not None:
        return usage.input_tokens * price.input + usage.output_tokens * price.output
    if not response.model_name:
        return None
    try:
        return float(response.cost().total_price)
    except LookupError:
        logger.debug("no price known for %s; its cost is not learned", response.model_name)
        return None
