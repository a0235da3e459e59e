"""Conduit: learned LLM routing. A router that learns which model to send each query to."""

from conduit._errors import (
    ConduitError,
    ConfigurationError,
    DuplicateModelError,
    FeedbackError,
    InvalidFeedbackError,
    InvalidQueryError,
    LogFormatError,
    MissingDependencyError,
    NoModelAvailableError,
    StateError,
    StoreError,
    UnknownDecisionError,
    UnknownModelError,
    ValidationError,
)
from conduit._types import (
    PRESETS,
    Constraints,
    Explanation,
    Feedback,
    ModelScore,
    ModelStats,
    Preferences,
    Query,
    RouterStats,
    RoutingDecision,
    TargetStats,
)
from conduit.engines._drift import DriftDetector
from conduit.engines.bandits import ALGORITHMS
from conduit.engines.router import Router

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "PRESETS",
    "ConduitError",
    "ConfigurationError",
    "Constraints",
    "DriftDetector",
    "DuplicateModelError",
    "Explanation",
    "Feedback",
    "FeedbackError",
    "InvalidFeedbackError",
    "InvalidQueryError",
    "LogFormatError",
    "MissingDependencyError",
    "ModelScore",
    "ModelStats",
    "NoModelAvailableError",
    "Preferences",
    "Query",
    "Router",
    "RouterStats",
    "RoutingDecision",
    "StateError",
    "StoreError",
    "TargetStats",
    "UnknownDecisionError",
    "UnknownModelError",
    "ValidationError",
    "__version__",
]
