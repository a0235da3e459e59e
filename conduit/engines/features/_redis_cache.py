"""A Redis feature cache behind the in-process one, shared by processes and restarts.

Features are costly (an embedding per new text) and the same for every replica,
so a text embedded once need not be embedded again anywhere until ``ttl``
expires. The key names the extractor (embedding backend, model, projection), so
changing any of them never serves features computed by another. Values are the
raw little-endian float64 bytes: no pickle, nothing a reader could execute.

Redis is an optimisation, never a dependency of routing: every call has a short
timeout (50 ms), a failure is logged once per outage as a WARNING, and while
Redis is down it is not asked again for ``retry_after`` seconds, so a dead or
slow server costs a request at most one timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._cache import text_key

__all__ = ["RedisFeatureCache"]

logger = logging.getLogger("conduit.features")

_DTYPE = np.dtype("<f8")


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            "the Redis feature cache needs redis-py: pip install 'conduit[redis]'"
        ) from exc
    return redis


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class RedisFeatureCache:
    """``{prefix}:{extractor name}:{text_key(text)} -> float64 bytes``, each kept ``ttl`` s.

    Connecting is lazy: constructing the cache does no I/O.

    >>> cache = RedisFeatureCache(url="redis://127.0.0.1:6379/0", ttl=60, prefix="demo")
    >>> cache.key("hashing/p64", "hello")
    'demo:hashing/p64:46fb7408d4f285228f4af516ea25851b'
    """

    def __init__(
        self,
        *,
        url: str = "redis://localhost:6379",
        ttl: int = 3600,
        prefix: str = "conduit:features",
        timeout: float = 0.05,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ConfigurationError(f"ttl must be a positive int of seconds, got {ttl!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"prefix must be a non-empty str, got {prefix!r}")
        self.timeout = _positive("timeout", timeout)
        self.retry_after = _positive("retry_after", retry_after)
        self.ttl = ttl
        self.prefix = prefix
        self.url = url
        self._redis = _redis()
        try:
            self._client = self._redis.Redis.from_url(
                url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0),
            )
        except (ValueError, self._redis.RedisError) as exc:
            raise ConfigurationError(f"bad Redis URL for the feature cache: {exc}") from exc
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def key(self, name: str, text: str) -> str:
        return f"{self.prefix}:{name}:{text_key(text)}"

    @property
    def available(self) -> bool:
        """False while an outage is being waited out (Redis is then not asked)."""
        with self._lock:
            return self._down_until is None or self._clock() >= self._down_until

    def get(self, name: str, text: str, dim: int) -> FloatArray | None:
        """The stored vector of ``text`` under extractor ``name``, or None (miss or outage)."""
        if not self.available:
            return None
        try:
            raw = self._client.get(self.key(name, text))
        except self._redis.RedisError as exc:
            self._failed(exc)
            return None
        self._recovered()
        if raw is None or len(raw) != dim * _DTYPE.itemsize:
            self.misses += 1  # absent, or written by an extractor of another width: recompute
            return None
        self.hits += 1
        return np.frombuffer(raw, dtype=_DTYPE).astype(np.float64)

    def put(self, name: str, text: str, vector: FloatArray) -> None:
        """Store ``vector`` for ``ttl`` seconds; an outage only skips the write."""
        if not self.available:
            return
        data = np.ascontiguousarray(vector, dtype=_DTYPE).tobytes()
        try:
            self._client.set(self.key(name, text), data, ex=self.ttl)
        except self._redis.RedisError as exc:
            self._failed(exc)
            return
        self._recovered()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            first = self._down_until is None
            self._down_until = self._clock() + self.retry_after
        if first:
            logger.warning(
                "Redis feature cache at %s unavailable (%s): features are computed in process "
                "until it is back (next try in %.0f s)",
                self.url.split("@")[-1],
                exc,
                self.retry_after,
            )

    def _recovered(self) -> None:
        if self._down_until is None:
            return
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        if was_down:
            logger.info("Redis feature cache at %s is reachable again", self.url.split("@")[-1])

    def close(self) -> None:
        try:
            self._client.close()
        except self._redis.RedisError:
            logger.debug("closing the Redis feature cache failed", exc_info=True)

    def __repr__(self) -> str:
        return f"RedisFeatureCache(url={self.url.split('@')[-1]!r}, prefix={self.prefix!r})"
