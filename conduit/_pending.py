"""Pending decisions: what an outcome arriving later needs, kept bounded and expiring.

:class:`ExpiringMap` is the one thread-safe bounded, expiring map (also the LiteLLM
feedback logger's response and call-id maps); :class:`PendingDecisions` is one.

An outcome can arrive in parts (cost and latency at once, quality minutes
later), in any order, more than once. Each part of each decision is learned at
most once: the entry remembers which parts it has seen, and stays (without its
features) as a tombstone until it expires, so a late duplicate is recognised
rather than learned again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cachetools import TTLCache

from conduit import _validate
from conduit._errors import UnknownDecisionError
from conduit.engines.bandits._base import FloatArray

__all__ = ["PARTS", "ExpiringMap", "Pending", "PendingDecisions"]

PARTS = ("quality", "cost", "latency")

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class Pending:
    """One routed decision awaiting its outcome.

    ``created`` is stamped by :meth:`PendingDecisions.add` on the store's own
    clock, so no caller can age an entry on a different one.
    """

    model: str
    features: FloatArray | None
    tokens: float
    expected_quality: float = math.nan
    """The quality the policy predicted for the chosen model (what a change is measured by)."""
    created: float = 0.0
    seen: set[str] = field(default_factory=set)


class _Counted(TTLCache[K, V]):
    """cachetools' TTL map, counting what it drops (expired, or evicted past ``maxsize``)."""

    dropped = 0

    def expire(self, time: Any = None) -> Any:
        gone = super().expire(time)
        self.dropped += len(gone)
        return gone

    def popitem(self) -> tuple[K, V]:
        item = super().popitem()
        self.dropped += 1
        return item


class ExpiringMap(Generic[K, V]):
    """A thread-safe map of at most ``maxsize`` entries (the least recently used goes first),
    each kept ``ttl`` seconds on ``clock``; ``names`` are the arguments' names in errors.

    >>> now = [0.0]
    >>> calls = ExpiringMap[str, str](ttl=10.0, maxsize=2, clock=lambda: now[0])
    >>> calls.put("a", "d1"); calls.put("b", "d2"); calls.put("c", "d3")
    >>> calls.get("a"), calls.get("c"), len(calls), calls.expired
    (None, 'd3', 2, 1)
    """

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        names: tuple[str, str] = ("ttl", "maxsize"),
    ) -> None:
        self.ttl = _validate.number(names[0], ttl, low=0, strict_low=True, allow_inf=True)
        self.maxsize = _validate.integer(names[1], maxsize, low=1)
        self._clock = clock
        self._items: _Counted[K, V] = _Counted(maxsize=self.maxsize, ttl=self.ttl, timer=clock)
        self._lock = threading.Lock()

    @property
    def expired(self) -> int:
        """Entries dropped so far, by age or by the size bound."""
        return self._items.dropped

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def __len__(self) -> int:
        with self._lock:
            self._items.expire()
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            self._items.expire()
            return key in self._items


class PendingDecisions(ExpiringMap[str, Pending]):
    """A thread-safe map of ``decision_id -> Pending``, at most ``maxsize``, each for ``ttl`` s."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            ttl=ttl, maxsize=maxsize, clock=clock, names=("pending_ttl", "max_pending")
        )

    def add(self, decision_id: str, pending: Pending) -> None:
        """Keep ``pending`` under ``decision_id``, stamped now; evict the expired and the oldest."""
        with self._lock:
            pending.created = self._clock()
            self._items.pop(decision_id, None)  # a re-added id counts as new
            self._items[decision_id] = pending

    def claim(self, decision_id: str, parts: set[str]) -> tuple[Pending, set[str]]:
        """Mark ``parts`` as seen; return the entry and those parts not seen before."""
        with self._lock:
            self._items.expire()
            pending = self._items.get(decision_id)
            if pending is None:
                raise UnknownDecisionError(
                    f"no pending decision {decision_id!r} (never issued, or older than "
                    f"{self.ttl:.0f} s or {self.maxsize} decisions)"
                )
            new = parts - pending.seen
            pending.seen |= new
            return pending, new

    def release(self, decision_id: str, parts: set[str]) -> None:
        """Undo :meth:`claim` for parts that could not be learned."""
        with self._lock:
            pending = self._items.get(decision_id)
            if pending is not None:
                pending.seen -= parts

    def forget_features(self, decision_id: str) -> None:
        """Once quality is learned the features are no longer needed; keep a tombstone."""
        with self._lock:
            pending = self._items.get(decision_id)
            if pending is not None:
                pending.features = None

    def waiting(self) -> int:
        """Entries still waiting for some part of their outcome (tombstones excluded)."""
        with self._lock:
            self._items.expire()
            return sum(1 for p in self._items.values() if len(p.seen) < len(PARTS))
