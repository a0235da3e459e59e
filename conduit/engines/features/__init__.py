"""Query features: embedding backends, metadata, the question focus and the cache."""

from conduit.engines.features._base import Embedder
from conduit.engines.features._cache import FeatureCache
from conduit.engines.features._extractor import FeatureExtractor, make_embedder
from conduit.engines.features._focus import question_focus
from conduit.engines.features._hashing import HashingEmbedder
from conduit.engines.features._metadata import metadata_features

__all__ = [
    "Embedder",
    "FeatureCache",
    "FeatureExtractor",
    "HashingEmbedder",
    "make_embedder",
    "metadata_features",
    "question_focus",
]
