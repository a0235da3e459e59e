"""Query features: embedding backends, metadata, the question focus and the cache."""

from conduit.engines.features.base import Embedder
from conduit.engines.features.cache import FeatureCache
from conduit.engines.features.extractor import FeatureExtractor, make_embedder
from conduit.engines.features.focus import question_focus
from conduit.engines.features.hashing import HashingEmbedder
from conduit.engines.features.metadata import metadata_features

__all__ = [
    "Embedder",
    "FeatureCache",
    "FeatureExtractor",
    "HashingEmbedder",
    "make_embedder",
    "metadata_features",
    "question_focus",
]
