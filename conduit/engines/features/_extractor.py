"""Query text -> one feature vector: focused embedding, projected, plus metadata and a bias."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._base import Embedder, is_int
from conduit.engines.features._batching import Combiner
from conduit.engines.features._cache import FeatureCache, text_key
from conduit.engines.features._focus import question_focus
from conduit.engines.features._hashing import HashingEmbedder
from conduit.engines.features._metadata import METADATA_NAMES, metadata_features

__all__ = ["Backend", "FeatureExtractor", "SecondLevelCache", "make_embedder"]

logger = logging.getLogger("conduit.features")

Backend = Literal["auto", "static", "onnx", "sentence-transformers", "hashing"]
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PROJECTION_SEED = 20251124  # fixed: every process and replica must project alike


@functools.lru_cache(maxsize=8)
def _projection(width: int, dim: int) -> FloatArray:
    """The fixed random orthonormal projection ``width -> dim``, scaled to keep norms."""
    rng = np.random.default_rng(_PROJECTION_SEED)
    q, _ = np.linalg.qr(rng.standard_normal((width, dim)))
    projection: FloatArray = q * np.sqrt(width / dim)
    projection.setflags(write=False)
    return projection


def make_embedder(
    embedding_model: str = DEFAULT_MODEL, backend: Backend = "auto", *, threads: int = 1
) -> Embedder:
    """The embedding backend for a model name.

    ``auto`` takes, for all-MiniLM-L6-v2, the static table distilled from it if
    ``tokenizers`` is installed (tens of microseconds a query, no model run), else
    sentence-transformers, else hashed n-grams (with one warning); for any other
    model name, sentence-transformers. ``onnx`` is the int8 transformer itself
    (~9 ms a query); ``threads`` is its intra-op threads: 1 suits a server
    embedding one query per request, more suits embedding a whole log at once.
    """
    if backend == "hashing":
        return HashingEmbedder()
    if backend == "onnx":
        if embedding_model != DEFAULT_MODEL:
            raise ConfigurationError(f"the onnx backend serves only {DEFAULT_MODEL}")
        from conduit.engines.features._onnx import OnnxEmbedder

        return OnnxEmbedder(threads=threads)
    if backend == "static" or (backend == "auto" and embedding_model == DEFAULT_MODEL):
        if embedding_model != DEFAULT_MODEL:
            raise ConfigurationError(f"the static backend serves only {DEFAULT_MODEL}")
        try:
            from conduit.engines.features._static import StaticEmbedder

            return StaticEmbedder()
        except MissingDependencyError:
            if backend == "static":
                raise
    if backend in ("sentence-transformers", "auto"):
        try:
            from conduit.engines.features._sentence_transformers import (
                SentenceTransformerEmbedder,
            )

            return SentenceTransformerEmbedder(embedding_model)
        except MissingDependencyError:
            if backend == "sentence-transformers" or embedding_model != DEFAULT_MODEL:
                raise
        logger.warning(
            "No embedding backend installed (pip install 'conduit[embeddings]'); "
            "routing on hashed n-gram features instead"
        )
        return HashingEmbedder()
    raise ConfigurationError(f"unknown embedding backend {backend!r}")


_SURROGATES = re.compile("[\ud800-\udfff]")


def _unicode(text: str) -> str:
    """``text`` with lone surrogates (from a JSON ``"\\ud800"`` escape) as U+FFFD, which
    tokenizers that take only valid Unicode (the ONNX backend's) then accept."""
    return _SURROGATES.sub("\ufffd", text)


class SecondLevelCache(Protocol):
    """A slower cache behind the in-process one (e.g. Redis), keyed by extractor name and text."""

    def get(self, name: str, text: str, dim: int) -> FloatArray | None: ...

    def put(self, name: str, text: str, vector: FloatArray) -> None: ...


class FeatureExtractor:
    """Computes, once per distinct text, ``[projected embedding, metadata, 1]``.

    The embedding is reduced to ``projection_dim`` by a fixed random orthonormal
    projection (the same in every process), which keeps the geometry of the
    embedding (Johnson-Lindenstrauss) while making each linear-bandit decision
    an O(d^2) product with small d. ``projection_dim=None`` keeps every dimension.
    ``second_level`` (e.g. :class:`~conduit.engines.features._redis_cache.RedisFeatureCache`)
    is asked in :meth:`compute`, off the event loop, before embedding.
    """

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        projection_dim: int | None = 64,
        cache_size: int = 10_000,
        max_chars: int = 1200,
        second_level: SecondLevelCache | None = None,
    ) -> None:
        self.embedder = embedder if embedder is not None else HashingEmbedder()
        width = self.embedder.dim
        if projection_dim is not None and not (
            is_int(projection_dim) and 1 <= projection_dim <= width
        ):
            raise ConfigurationError(
                f"projection_dim must be None or an int in 1..{width}, got {projection_dim!r}"
            )
        if not (is_int(max_chars) and max_chars >= 1):
            raise ConfigurationError(f"max_chars must be an int >= 1, got {max_chars!r}")
        if not (is_int(cache_size) and cache_size >= 0):
            raise ConfigurationError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.max_chars = int(max_chars)
        if projection_dim is None or projection_dim == width:
            self._projection: FloatArray | None = None
            self._embed_dim = width
        else:
            self._projection = _projection(width, projection_dim)
            self._embed_dim = projection_dim
        self.dim = self._embed_dim + len(METADATA_NAMES) + 1
        self.cache = FeatureCache(maxsize=cache_size)
        self.second_level = second_level
        self._combiner = Combiner(self.embedder.embed)

    @property
    def name(self) -> str:
        return f"{self.embedder.name}/p{self._embed_dim}"

    @property
    def inline(self) -> bool:
        """Whether :meth:`compute` is cheap enough to run in the caller's thread: the
        embedder says so (``inline = True``, e.g. the static table) and no second-level
        cache (network I/O) is asked first. A thread hop costs more than such work."""
        return bool(getattr(self.embedder, "inline", False)) and self.second_level is None

    def feature_names(self) -> list[str]:
        return [f"e{i}" for i in range(self._embed_dim)] + list(METADATA_NAMES) + ["bias"]

    def _assemble(self, text: str, embedding: FloatArray) -> FloatArray:
        """Metadata reads the whole ``text`` (its length is the prompt's cost), not the focus."""
        if self._projection is not None:
            embedding = embedding @ self._projection
        return np.concatenate([embedding, metadata_features(text), [1.0]])

    def features(self, text: str) -> FloatArray:
        """The feature vector of one text (read-only; cached)."""
        cached = self.cached(text)
        return cached if cached is not None else self.compute(text)

    def cached(self, text: str) -> FloatArray | None:
        """The cached feature vector of ``text``, or None: one look-up, no embedding."""
        return self.cache.get(text_key(text))

    def compute(self, text: str) -> FloatArray:
        """The second-level cache's vector or a new embedding, cached (check :meth:`cached` first).

        It may block on I/O or embedding, so the async router runs it in a worker thread.
        """
        key = text_key(text)
        if self.second_level is not None:
            found = self.second_level.get(self.name, text, self.dim)
            if found is not None:
                self.cache.put(key, found)
                return found
        focused = _unicode(question_focus(text, self.max_chars))
        if getattr(self.embedder, "inline", False):
            row = self.embedder.embed([focused])[0]
        else:  # concurrent new prompts (worker threads) share one model run
            row = self._combiner.embed_one(focused)
        x = self._assemble(text, row.astype(np.float64))
        self.cache.put(key, x)
        if self.second_level is not None:
            self.second_level.put(self.name, text, x)
        return x

    def features_batch(self, texts: Sequence[str], batch_size: int = 32) -> FloatArray:
        """Feature rows for many texts, embedding each distinct uncached text once, in batches."""
        if not (is_int(batch_size) and batch_size >= 1):
            raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
        out = np.zeros((len(texts), self.dim))
        missing: dict[str, list[int]] = {}  # key -> the rows holding that text
        for i, text in enumerate(texts):
            key = text_key(text)
            if key in missing:
                missing[key].append(i)
                continue
            cached = self.cache.get(key)
            if cached is None:
                missing[key] = [i]
            else:
                out[i] = cached
        # Similar lengths batch together, so little of each batch is padding.
        pending = sorted(missing.items(), key=lambda item: len(texts[item[1][0]]))
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            focused = [
                _unicode(question_focus(texts[rows[0]], self.max_chars)) for _, rows in chunk
            ]
            embeddings = self.embedder.embed(focused).astype(np.float64)
            for (key, rows), embedding in zip(chunk, embeddings, strict=True):
                x = self._assemble(texts[rows[0]], embedding)
                out[rows] = x
                self.cache.put(key, x)
        return out
