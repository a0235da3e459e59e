"""Many router processes, one learner: additive deltas exchanged with a store off the request path.

Each replica remembers ``base``, its statistics as they were right after the
last sync (the global state then). A sync takes, under the router's lock, the
delta ``D = now - base`` and a snapshot ``S1 = now``; pushes ``D`` (the store
adds it atomically and returns the new global ``G``); then, under the lock
again, merges ``G - S1`` so that the router holds ``G`` plus whatever it learned
meanwhile, and sets ``base = G``. Nothing is ever overwritten, so no replica's
learning is lost, and a replica that starts later begins from the others'.

A push that fails is kept and retried with the same sequence number; the store
applies a (replica, sequence) pair at most once, so a push that reached the
store but whose answer was lost is never counted twice. While the store is
down, routing goes on from memory and learning accumulates; one warning is
logged per outage and one INFO line on recovery.

All store I/O (state and history, in batches) runs in one daemon thread;
:meth:`record_decision` and :meth:`record_outcome`, on the request path, only
append to a queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from conduit._redact import describe_error
from conduit.errors import ConduitError, ConfigurationError, StateError, StoreError
from conduit.stores.base import (
    HistoryRecord,
    Meta,
    Snapshot,
    Store,
    Sums,
    add_sums,
    as_sums,
    is_zero,
    prompt_hash,
    query_kind,
    subtract_sums,
)
from conduit.types import Explanation

if TYPE_CHECKING:
    from conduit.engines.router import Router
    from conduit.types import Preferences, RoutingDecision

__all__ = ["StoreSync"]

logger = logging.getLogger("conduit.stores")

#: Statistics that only grow; one that shrank means the arm was removed and added again.
_COUNTS = ("n", "decisions", "quality_n", "cost_n", "latency_n")

_Event = tuple[str, float, Any, Any, Any]


def _restarted(now: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    for key, value in now.items():
        if (
            key.rsplit(".", 1)[-1] in _COUNTS
            and key in base
            and float(np.sum(value)) < float(np.sum(base[key])) - 1e-9
        ):
            return True
    return False


class StoreSync:
    """Keeps one router's learning in step with a store and writes its history, in the background.

    ``store`` is a :class:`~conduit.stores.base.Store` or a URL for
    :func:`~conduit.stores.open_store` (a store opened from a URL is closed with
    this object). ``interval`` is seconds between syncs; at most that much
    learning is lost if the process is killed. ``clock`` stamps history events
    (``time.time`` unless a replay gives them synthetic times).
    """

    def __init__(
        self,
        router: Router,
        store: Store | str,
        *,
        interval: float = 5.0,
        namespace: str | None = None,
        max_backlog: int = 100_000,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ConfigurationError(
                f"sync_interval must be a positive number of seconds, got {interval!r}"
            )
        if isinstance(store, str):
            from conduit.stores import open_store

            self.store, self._owns_store = open_store(store), True
        elif isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            raise ConfigurationError(
                f"state_store must be a URL or a Store, got {type(store).__name__}"
            )
        self.router = router
        self.interval = float(interval)
        self.namespace = namespace or self.store.namespace
        self.replica = uuid.uuid4().hex
        self.max_backlog = int(max_backlog)
        self.batch_size = int(batch_size)
        self.clock = clock
        self._seq = 0
        self._base: Sums = {}
        self._pending: tuple[int, Sums, Sums] | None = None
        self._events: deque[_Event] = deque()
        self._unsent: list[HistoryRecord] = []
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.first_sync = threading.Event()
        self.down_since: float | None = None
        self.last_error: BaseException | None = None
        self.syncs = 0
        self.failures = 0
        self.dropped = 0
        self.last_sync_seconds = 0.0
        #: monotonic time of the last successful sync (until the first: of construction)
        self.synced_at = time.monotonic()

    # -- request path: append only ---------------------------------------------------------
    def record_decision(
        self, decision: RoutingDecision, text: str, preferences: Preferences
    ) -> None:
        """Queue a decision for the history (hashing and writing happen in the background)."""
        self._enqueue(("decision", self.clock(), decision, text, preferences))

    def record_outcome(self, decision_id: str, model: str, values: Mapping[str, float]) -> None:
        """Queue the parts of an outcome learned now."""
        self._enqueue(("outcome", self.clock(), decision_id, model, dict(values)))

    def _enqueue(self, event: _Event) -> None:
        self._events.append(event)
        # A full batch syncs early, except during an outage: then the retry interval holds,
        # rather than one failing attempt per request.
        if len(self._events) >= self.batch_size and self.down_since is None:
            self._wake.set()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, wait: float = 10.0) -> None:
        """Start the background thread; wait up to ``wait`` s for the first sync (the pull of
        what other replicas learned). A store that is down does not stop the router."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="conduit-store-sync", daemon=True)
        self._thread.start()
        if wait > 0:
            self.first_sync.wait(wait)

    def _run(self) -> None:
        while True:
            self._attempt()
            self.first_sync.set()
            if self._stop.is_set():
                return
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return

    def close(self, *, timeout: float = 30.0) -> None:
        """Stop the thread, push what is left (learning and history) and close an owned store."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._attempt() is not None:
            logger.warning(
                "state store %s: learning since the last sync could not be pushed at close (%s)",
                self.store.url,
                self.last_error,
            )
        if self._owns_store:
            try:
                self.store.close()
            except StoreError as exc:
                logger.debug("closing %s: %s", self.store.url, exc)

    # -- syncing ---------------------------------------------------------------------------
    def sync_now(self) -> Snapshot | None:
        """Sync at once (learning and history) and return the global state; raises on failure."""
        error = self._attempt()
        if error is not None:
            raise error
        return self._last_global

    _last_global: Snapshot | None = None

    def _attempt(self) -> ConduitError | None:
        """One sync, with the outage bookkeeping: one WARNING per outage, INFO on recovery."""
        with self._io_lock:
            started = time.perf_counter()
            try:
                self._sync_all()
            except (StoreError, StateError) as exc:
                self.failures += 1
                self.last_error = exc
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    logger.log(
                        logging.ERROR if isinstance(exc, StateError) else logging.WARNING,
                        "state store %s failed (%s); routing continues from memory and learning "
                        "is kept until the store is back (no further warnings for this outage)",
                        self.store.url,
                        exc,
                    )
                return exc
            self.last_sync_seconds = time.perf_counter() - started
            self.synced_at = time.monotonic()
            self.syncs += 1
            if self.down_since is not None:
                logger.info(
                    "state store %s is back after %.1f s; pending learning and history written",
                    self.store.url,
                    time.monotonic() - self.down_since,
                )
                self.down_since = None
            return None

    def _sync_all(self) -> None:
        """State, then history. Any other error becomes a StoreError, handled like an outage
        (logged once, retried) rather than silently ending the sync thread."""
        try:
            self._sync_state()
            self._write_history()
        except (StoreError, StateError):
            raise
        except Exception as exc:
            raise StoreError(
                f"state store {self.store.url}: sync failed on {describe_error(exc)}"
            ) from exc

    def meta(self) -> Meta:
        router = self.router
        return Meta(
            algorithm=router.algorithm,
            features=router._feature_name(),
            dim=router.bandit.dim,
            params={k: v for k, v in router.bandit.params().items() if k != "seed"},
        )

    def _local(self) -> Sums:
        """The router's statistics now (call under the router's lock)."""
        return as_sums(self.router.bandit.stats(), self.router._outcomes.stats())

    def _sync_state(self) -> None:
        if self._pending is not None and is_zero(self._pending[1]):
            self._pending = None  # nothing to retry: a pull now does better
        retry = self._pending is not None
        self._sync_once()
        if retry:  # the retried push is in; push what was learned since it was taken
            self._sync_once()

    def _sync_once(self) -> None:
        router = self.router
        if self._pending is None:
            with router._lock:
                now = self._local()
            base = {
                part: {
                    arm: stats
                    for arm, stats in self._base.get(part, {}).items()
                    if arm in now[part] and not _restarted(now[part][arm], stats)
                }
                for part in now
            }
            self._seq += 1
            self._pending = (self._seq, subtract_sums(now, base, arms=router.models), now)
        seq, delta, before = self._pending
        meta = self.meta()
        if is_zero(delta):
            snapshot = self.store.pull(self.namespace)
            if snapshot is not None:
                meta.check(snapshot.meta, f"state {self.namespace!r} in {self.store.url}")
        else:
            snapshot = self.store.push(
                delta, meta, namespace=self.namespace, replica=self.replica, seq=seq
            )
        self._pending = None
        self._last_global = snapshot
        if snapshot is None:
            self._base = before
            return
        with router._lock:
            arms = router.models
            change = subtract_sums(snapshot.sums, before, arms=arms)
            if not is_zero(change):
                router.bandit.merge({a: s for a, s in change["bandit"].items() if a in arms})
                router._outcomes.merge(
                    {a: {k: float(v) for k, v in s.items()} for a, s in change["outcomes"].items()}
                )
        self._base = add_sums(snapshot.sums, {}, arms=arms)

    def _write_history(self) -> None:
        ns, keep_prompts = self.namespace, self.store.store_prompts
        while self._events:
            kind, when, a, b, c = self._events.popleft()
            if kind == "decision":
                d, text, prefs = a, b, c
                self._unsent.append(
                    HistoryRecord(
                        decision_id=d.decision_id,
                        namespace=ns,
                        time=when,
                        model=d.selected_model,
                        algorithm=d.algorithm,
                        propensity=d.propensity,
                        confidence=d.confidence,
                        pref_quality=prefs.quality,
                        pref_cost=prefs.cost,
                        pref_latency=prefs.latency,
                        prompt_hash=prompt_hash(text),
                        prompt=text if keep_prompts else None,
                        explanation=Explanation.of(d, prefs).to_json(),
                        kind=query_kind(text),
                    )
                )
            else:
                self._unsent.append(
                    HistoryRecord(
                        decision_id=a,
                        namespace=ns,
                        time=when,
                        model=b,
                        quality=c.get("quality"),
                        cost=c.get("cost"),
                        latency=c.get("latency"),
                    )
                )
        if len(self._unsent) > self.max_backlog:
            drop = len(self._unsent) - self.max_backlog
            self.dropped += drop
            del self._unsent[:drop]
            logger.debug("history backlog full: %d oldest events dropped", drop)
        while self._unsent:
            batch = self._unsent[: self.batch_size]
            self.store.write_history(batch)
            del self._unsent[: len(batch)]

    def __repr__(self) -> str:
        return f"StoreSync({self.store!r}, interval={self.interval}, replica={self.replica[:8]})"
