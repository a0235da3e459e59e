"""Pending decisions: what an outcome arriving later needs, kept bounded and expiring.

An outcome can arrive in parts (cost and latency at once, quality minutes
later), in any order, more than once. Each part of each decision is learned at
most once: the entry remembers which parts it has seen, and stays (without its
features) as a tombstone until it expires, so a late duplicate is recognised
rather than learned again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from conduit.engines.bandits.base import FloatArray
from conduit.errors import ConfigurationError, UnknownDecisionError

__all__ = ["PARTS", "Pending", "PendingDecisions"]

PARTS = ("quality", "cost", "latency")


@dataclass(slots=True)
class Pending:
    """One routed decision awaiting its outcome.

    ``created`` is stamped by :meth:`PendingDecisions.add` on the store's own
    clock, so no caller can age an entry on a different one.
    """

    model: str
    features: FloatArray | None
    tokens: float
    created: float = 0.0
    seen: set[str] = field(default_factory=set)


class PendingDecisions:
    """A thread-safe map of ``decision_id -> Pending``, at most ``maxsize``, each for ``ttl`` s."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ConfigurationError(f"pending_ttl must be a positive number of seconds: {ttl!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError(f"max_pending must be a positive int, got {maxsize!r}")
        self.ttl = float(ttl)
        self.maxsize = maxsize
        self._clock = clock
        self._items: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()
        self.expired = 0

    def add(self, decision_id: str, pending: Pending) -> None:
        """Keep ``pending`` under ``decision_id``, stamped now; evict the expired and the oldest."""
        with self._lock:
            pending.created = self._clock()
            self._items[decision_id] = pending
            self._items.move_to_end(decision_id)
            self._evict()

    def _evict(self) -> None:
        now = self._clock()
        while self._items:
            oldest = next(iter(self._items.values()))
            if len(self._items) > self.maxsize or now - oldest.created > self.ttl:
                self._items.popitem(last=False)
                self.expired += 1
            else:
                break

    def claim(self, decision_id: str, parts: set[str]) -> tuple[Pending, set[str]]:
        """Mark ``parts`` as seen; return the entry and those parts not seen before."""
        with self._lock:
            self._evict()
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
            self._evict()
            return sum(1 for p in self._items.values() if len(p.seen) < len(PARTS))

    def __len__(self) -> int:
        with self._lock:
            self._evict()
            return len(self._items)

    def __contains__(self, decision_id: object) -> bool:
        with self._lock:
            self._evict()
            return decision_id in self._items
