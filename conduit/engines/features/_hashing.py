"""A dependency-free embedding: hashed word and character n-grams."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from conduit._errors import ConfigurationError
from conduit.engines.features._base import is_int

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words, word pairs and character 4-grams.

    Deterministic across processes and machines (blake2b, not Python's salted
    ``hash``), so replicas that share learning share features too.

    >>> e = HashingEmbedder(dim=64)
    >>> v = e.embed(["What is 2 + 2?"])
    >>> v.shape, round(float((v * v).sum()), 3)
    ((1, 64), 1.0)
    """

    def __init__(self, *, dim: int = 384) -> None:
        if not is_int(dim) or dim < 1:
            raise ConfigurationError(f"dim must be an int >= 1, got {dim!r}")
        self._dim = int(dim)

    @property
    def name(self) -> str:
        return f"hashing:{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _tokens(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        grams = [f"w:{w}" for w in words]
        grams += [f"p:{a} {b}" for a, b in itertools.pairwise(words)]
        squashed = " ".join(words)
        grams += [f"c:{squashed[i : i + 4]}" for i in range(max(len(squashed) - 3, 0))]
        return grams

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for gram in self._tokens(text):
                h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 63) else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out
