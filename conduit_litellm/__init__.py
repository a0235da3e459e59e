"""Conduit for LiteLLM: a routing strategy that learns from every request."""
