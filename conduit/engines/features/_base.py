"""The embedding backend protocol."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed width."""

    @property
    def name(self) -> str:
        """Backend and model, e.g. ``onnx:all-MiniLM-L6-v2``; cache keys carry it."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text."""
        ...


def is_int(value: object) -> bool:
    """An int or a numpy integer, not a bool: what sizes and widths may be."""
    return isinstance(value, Integral) and not isinstance(value, bool)
