"""Per-arm arrays stacked on a first axis, and the additive statistics a policy learns.

A policy's learned state is a set of additive sufficient statistics per arm
(sums of outer products, reward sums, counts). Additivity is what makes the rest
simple: adding an arm appends a zero row, removing one deletes its row and
leaves the others untouched, and several processes exchange learning as deltas
that merge by addition. Rows live in buffers that grow geometrically, so adding
``K`` arms one by one costs ``O(K)`` row writes, not ``O(K^2)`` copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit._errors import DuplicateModelError, StateError, UnknownModelError

__all__ = ["ArmStats", "Delta", "FloatArray", "Stacked"]

FloatArray = NDArray[np.float64]
#: A checked delta: (arm, statistics) pairs, every array of the right shape and finite.
Delta = list[tuple[str, dict[str, FloatArray]]]


class Stacked:
    """Named arrays with one row per arm, e.g. ``{"A": (d, d), "n": ()}`` row shapes."""

    def __init__(self, rows: Mapping[str, tuple[int, ...]]) -> None:
        self.rows = {key: tuple(shape) for key, shape in rows.items()}
        self._size = 0
        self._capacity = 0
        self._buffers = {key: np.zeros((0, *shape)) for key, shape in self.rows.items()}

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: str) -> FloatArray:
        """The live rows of ``key`` (a view: writing to it writes the statistics)."""
        return self._buffers[key][: self._size]

    def keys(self) -> Iterable[str]:
        return self.rows.keys()

    def append(self) -> int:
        """Add one zero row to every array; its index."""
        if self._size == self._capacity:
            self._capacity = max(4, 2 * self._size)
            for key, buffer in self._buffers.items():
                grown = np.zeros((self._capacity, *self.rows[key]))
                grown[: self._size] = buffer[: self._size]
                self._buffers[key] = grown
        self._size += 1
        return self._size - 1

    def delete(self, i: int) -> None:
        """Remove row ``i`` of every array."""
        for key, buffer in self._buffers.items():
            self._buffers[key] = np.delete(buffer[: self._size], i, axis=0)
        self._size -= 1
        self._capacity = self._size

    def replace(self, arrays: Mapping[str, FloatArray]) -> None:
        """Take ``arrays`` (one per key, the same number of rows) as the whole contents."""
        sizes = {value.shape[0] for value in arrays.values()}
        self._size = self._capacity = sizes.pop() if sizes else 0
        self._buffers = {key: np.array(arrays[key], dtype=np.float64) for key in self.rows}


class ArmStats(Stacked):
    """The additive statistics of every arm, by arm name; merge, check and state.

    >>> s = ArmStats({"n": (), "total": ()})
    >>> s.add("a"); s.add("b")
    >>> s["n"][s.index("b")] += 2
    >>> s.merge(s.check({"a": {"n": 1.0, "total": 0.5}}))
    >>> s["n"].tolist(), s.arms
    ([1.0, 2.0], ['a', 'b'])
    """

    def __init__(self, rows: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(rows)
        self.arms: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except KeyError:
            raise UnknownModelError(f"unknown model {arm!r}; arms are {self.arms}") from None

    def __contains__(self, arm: object) -> bool:
        return arm in self._index

    def add(self, arm: str) -> None:
        """A new arm with zero statistics."""
        if arm in self._index:
            raise DuplicateModelError(f"model {arm!r} is already an arm")
        self._index[arm] = self.append()
        self.arms.append(arm)

    def remove(self, arm: str) -> None:
        i = self.index(arm)
        self.delete(i)
        del self.arms[i]
        self._index = {a: j for j, a in enumerate(self.arms)}

    def per_arm(self) -> dict[str, dict[str, FloatArray]]:
        """A copy of every arm's statistics."""
        return {
            arm: {key: self[key][i].copy() for key in self.rows} for i, arm in enumerate(self.arms)
        }

    def check(self, delta: Mapping[str, Mapping[str, Any]]) -> Delta:
        """The delta as float arrays, or :class:`StateError` if any part of it is malformed."""
        if not isinstance(delta, Mapping):
            raise StateError(f"a delta maps arm names to statistics, got {type(delta).__name__}")
        checked: Delta = []
        for arm, parts in delta.items():
            if not isinstance(arm, str) or not arm:
                raise StateError(f"delta names an invalid arm {arm!r}")
            if not isinstance(parts, Mapping) or set(parts) != set(self.rows):
                keys = sorted(parts) if isinstance(parts, Mapping) else parts
                raise StateError(f"delta for {arm!r} has keys {keys}, expected {sorted(self.rows)}")
            try:
                arrays = {k: np.asarray(v, dtype=np.float64) for k, v in parts.items()}
            except (TypeError, ValueError) as exc:
                raise StateError(f"delta for {arm!r} is not numeric: {exc}") from exc
            for key, value in arrays.items():
                if value.shape != self.rows[key] or not np.all(np.isfinite(value)):
                    raise StateError(
                        f"delta {arm!r}.{key} has shape {value.shape} or non-finite values"
                    )
            checked.append((arm, arrays))
        return checked

    def merge(self, checked: Delta) -> None:
        """Add a checked delta arm by arm; arms not known yet are added first."""
        for arm, arrays in checked:
            if arm not in self._index:
                self.add(arm)
            i = self._index[arm]
            for key, value in arrays.items():
                self[key][i] += value

    def state(self) -> dict[str, FloatArray]:
        return {key: self[key].copy() for key in self.rows}

    def load(self, arms: list[str], stats: object) -> None:
        """Take a saved :meth:`state` for ``arms``, or refuse with :class:`StateError`."""
        if not isinstance(stats, Mapping) or set(stats) != set(self.rows):
            found = sorted(stats) if isinstance(stats, Mapping) else stats
            raise StateError(f"state has statistics {found}, expected {sorted(self.rows)}")
        loaded: dict[str, FloatArray] = {}
        for key, shape in self.rows.items():
            try:
                value = np.asarray(stats[key], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise StateError(f"state statistic {key!r} is not numeric: {exc}") from exc
            if value.shape != (len(arms), *shape) or not np.all(np.isfinite(value)):
                raise StateError(
                    f"state statistic {key!r} has shape {value.shape} or non-finite values"
                )
            loaded[key] = value
        self.replace(loaded)
        self.arms = list(arms)
        self._index = {a: i for i, a in enumerate(arms)}
