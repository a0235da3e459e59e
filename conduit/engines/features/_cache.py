"""A bounded, thread-safe LRU of feature vectors keyed by a digest of the text."""

from __future__ import annotations

import hashlib
import threading

from cachetools import LRUCache

from conduit._errors import ConfigurationError
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._base import is_int

__all__ = ["FeatureCache", "text_key"]


def text_key(text: str) -> str:
    """A 128-bit digest, so the cache never holds a megabyte prompt."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class FeatureCache:
    """Least-recently-used map of ``text_key -> features``, at most ``maxsize`` entries.

    Stored arrays are made read-only, so a caller cannot corrupt what later
    callers get. ``maxsize=0`` turns caching off.

    >>> import numpy as np
    >>> c = FeatureCache(maxsize=1)
    >>> c.put("a", np.zeros(2)); c.put("b", np.ones(2))
    >>> c.get("a") is None, len(c)
    (True, 1)
    """

    def __init__(self, *, maxsize: int = 10_000) -> None:
        if not is_int(maxsize) or maxsize < 0:
            raise ConfigurationError(f"maxsize must be an int >= 0, got {maxsize!r}")
        self.maxsize = int(maxsize)
        self._data: LRUCache[str, FloatArray] = LRUCache(max(self.maxsize, 1))
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> FloatArray | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            return value

    def put(self, key: str, value: FloatArray) -> None:
        if self.maxsize <= 0:
            return
        value.setflags(write=False)
        with self._lock:
            self._data[key] = value

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
