"""Conduit's one exception tree.

Every error Conduit raises derives from :class:`ConduitError`. Errors about bad
input also derive from :class:`ValueError` (or :class:`LookupError` for unknown
ids and names), so ``except ValueError`` keeps working for callers that expect it.
Backend failures are wrapped in :class:`StoreError` with the original as
``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "ConduitError",
    "ConfigurationError",
    "DuplicateModelError",
    "FeedbackError",
    "InvalidFeedbackError",
    "InvalidQueryError",
    "LogFormatError",
    "MissingDependencyError",
    "NoModelAvailableError",
    "StateError",
    "StoreError",
    "UnknownDecisionError",
    "UnknownModelError",
    "ValidationError",
]


class ConduitError(Exception):
    """Base class of every error Conduit raises."""


class ValidationError(ConduitError, ValueError):
    """An argument or input is malformed; nothing was changed."""


class ConfigurationError(ValidationError):
    """A constructor or setting was given an invalid value."""


class InvalidQueryError(ValidationError):
    """A query's text, preferences or constraints are invalid."""


class DuplicateModelError(ConfigurationError):
    """The same model name was given twice."""


class UnknownModelError(ConduitError, LookupError):
    """A model name is not one of the router's arms."""


class NoModelAvailableError(ConduitError):
    """No model satisfies the query's constraints; the message says which removed what."""


class FeedbackError(ConduitError):
    """Base class of feedback errors."""


class InvalidFeedbackError(FeedbackError, ValueError):
    """A quality, cost or latency value is NaN, infinite or out of range."""


class UnknownDecisionError(FeedbackError, LookupError):
    """No pending decision has this id (never issued, or expired)."""


class LogFormatError(ValidationError):
    """A routing log line is malformed; the message names the file and line number."""


class StateError(ConduitError):
    """A saved state is corrupt, of another version, or does not match this router."""


class StoreError(ConduitError):
    """A state or history backend failed; the backend's exception is the cause."""


class MissingDependencyError(ConduitError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""
