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
down, routing goes on from memory and learning accumulates in the router itself
(a delta is additive: an outage of any length costs no more memory than one
sync); history events wait in a queue of at most ``max_backlog`` events, beyond
which the oldest are dropped and counted. One warning is logged per outage and
one INFO line on recovery.

A store that went backwards (it lost this replica's pushes: flushed, evicted,
restarted without its data, reset) is a fault, not news: the router keeps its
own learning (no model's counts ever go down in a sync), re-adds everything
this replica ever pushed (exact when the whole namespace was lost), logs an
ERROR and counts it in :attr:`StoreSync.state_lost`.

A detected change (:meth:`StoreSync.forget`) is sent with the next push: the store
scales the model's global sums once and raises that (model, stream)'s epoch; every
replica seeing a new epoch scales its statistics, the base of its next delta and its
record of what it pushed by the same factor, so the forget is neither merged back nor
taken for lost state (:meth:`StoreSync._follow_forgets`).

All store I/O (state and history, in batches) runs in one daemon thread;
:meth:`record_decision` and :meth:`record_outcome`, on the request path, only
append to a queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from conduit import _validate
from conduit._errors import ConduitError, ConfigurationError, StateError, StoreError
from conduit._redact import describe_error
from conduit._types import Explanation
from conduit.stores._base import (
    COUNTS,
    Epochs,
    Forget,
    HistoryRecord,
    Learner,
    Snapshot,
    Store,
    Sums,
    add_sums,
    is_zero,
    prompt_hash,
    query_kind,
    scale_sums,
    subtract_sums,
)

if TYPE_CHECKING:
    from conduit._types import Preferences, RoutingDecision

__all__ = ["MAX_SYNC_INTERVAL", "MIN_SYNC_INTERVAL", "StoreSync", "check_interval"]

logger = logging.getLogger("conduit.stores")

#: Shortest and longest sync interval (seconds): more often is a busy loop against the
#: store; less often than a day risks a day's learning to a crash (and overflows timers).
MIN_SYNC_INTERVAL = 0.01
MAX_SYNC_INTERVAL = 86_400.0
#: History events kept in memory while the store is down (beyond: oldest dropped, counted).
DEFAULT_BACKLOG = 10_000
#: Seconds between two applications of the store's history retention.
PRUNE_EVERY = 3600.0


def check_interval(interval: object) -> float:
    """``interval`` as seconds, if in [MIN_SYNC_INTERVAL, MAX_SYNC_INTERVAL]."""
    return _validate.number(
        "sync_interval",
        interval,
        low=MIN_SYNC_INTERVAL,
        high=MAX_SYNC_INTERVAL,
        what=f"seconds in [{MIN_SYNC_INTERVAL:g}, {MAX_SYNC_INTERVAL:g}]",
    )


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, recursively: what an explanation shows, in about
    70 % of the text at 11 models (17-digit floats were a third of a history row)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def compact_explanation(explanation: Explanation) -> str:
    """The explanation as stored in history: its JSON with numbers to 4 significant digits."""
    return json.dumps(_rounded(json.loads(explanation.model_dump_json())), separators=(",", ":"))


def _arms(sums: Sums) -> list[str]:
    return list(dict.fromkeys(arm for part in sums.values() for arm in part))


def _count(stats: Mapping[str, Any], key: str) -> float:
    return float(np.sum(stats[key]))


def _lower(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether any count of ``a`` is lower than the same count of ``b``."""
    return any(
        k.rsplit(".", 1)[-1] in COUNTS and k in a and _count(a, k) < _count(b, k) - 1e-9 for k in b
    )


_Event = tuple[str, float, Any, Any, Any]


def _restarted(now: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """A count that shrank means the arm was removed and added again."""
    return _lower(now, base)


class StoreSync:
    """Keeps one learner's statistics in step with a store and writes its history, in the
    background. ``learner`` is a :class:`~conduit.stores._base.Learner` (a Router).

    ``store`` is a :class:`~conduit.stores._base.Store` or a URL for
    :func:`~conduit.stores.open_store` (a store opened from a URL is closed with
    this object). ``interval`` is seconds between syncs; at most that much
    learning is lost if the process is killed. ``clock`` stamps history events
    (``time.time`` unless a replay gives them synthetic times).
    """

    def __init__(
        self,
        learner: Learner,
        store: Store | str,
        *,
        interval: float = 5.0,
        namespace: str | None = None,
        max_backlog: int = DEFAULT_BACKLOG,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        interval = check_interval(interval)
        max_backlog = _validate.integer("max_backlog", max_backlog, low=1)
        batch_size = _validate.integer("batch_size", batch_size, low=1)
        if isinstance(store, str):
            from conduit.stores import open_store

            self.store, self._owns_store = open_store(store), True
        elif isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            raise ConfigurationError(
                f"state_store must be a URL or a Store, got {type(store).__name__}"
            )
        self.learner = learner
        self.interval = interval
        self.namespace = namespace or self.store.namespace
        self.replica = uuid.uuid4().hex
        self.max_backlog = int(max_backlog)
        self.batch_size = int(batch_size)
        self.clock = clock
        self._seq = 0
        self._base: Sums = {}
        self._pending: tuple[int, Sums, Sums, tuple[Forget, ...]] | None = None
        #: forgets detected here, not yet pushed: (model, stream) -> outcomes' worth to keep
        self._forgets: dict[tuple[str, str], float] = {}
        self._forgets_lock = threading.Lock()
        #: the store's forget epochs as of the last sync (None before the first)
        self._epochs: Epochs | None = None
        #: forgets this replica asked for and the store applied / dropped as already done
        self.forgets_applied = 0
        self.forgets_dropped = 0
        #: everything this replica pushed and the store acknowledged, and the last such seq
        self._own: Sums = {}
        self._acked = 0
        self._reseed_due: tuple[int, Sums] | None = None
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
        #: times the store was found to have lost learning this replica had pushed
        self.state_lost = 0
        self._pruned_at: float | None = None
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
        while len(self._events) + len(self._unsent) >= self.max_backlog:
            try:  # bounded during an outage: the oldest history goes, learning never does
                self._events.popleft()
            except IndexError:  # the sync thread took them meanwhile
                break
            self.dropped += 1
        self._events.append(event)
        # A full batch syncs early, except during an outage: then the retry interval holds,
        # rather than one failing attempt per request.
        if len(self._events) >= self.batch_size and self.down_since is None:
            self._wake.set()

    def forget(self, model: str, stream: str, keep: float) -> None:
        """Ask the store to scale ``model``'s ``stream`` statistics down to ``keep`` outcomes'
        worth for every replica, once, at the next sync."""
        with self._forgets_lock:
            self._forgets[(model, stream)] = keep

    @property
    def backlog(self) -> int:
        """History events waiting to be written (at most ``max_backlog``)."""
        return len(self._events) + len(self._unsent)

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

    def _sync_state(self) -> None:
        if self._pending is not None and is_zero(self._pending[1]) and not self._pending[3]:
            self._pending = None  # nothing to retry: a pull now does better
        retry = self._pending is not None
        # The store applies a replica's pushes in the order of their sequence numbers (a
        # lower one is taken for a retry already applied), so a re-seed goes in before any
        # newer push: one left due by a failed attempt first, one found due at once.
        self._reseed()
        self._sync_once()
        self._reseed()
        if retry:  # the retried push is in; push what was learned since it was taken
            self._sync_once()
            self._reseed()

    def _sync_once(self) -> None:
        learner = self.learner
        if self._pending is None:
            now = learner.snapshot()
            arms = _arms(now)
            base = {
                part: {
                    arm: stats
                    for arm, stats in self._base.get(part, {}).items()
                    if arm in now[part] and not _restarted(now[part][arm], stats)
                }
                for part in now
            }
            self._seq += 1
            known_epochs = self._epochs or {}
            with self._forgets_lock:
                asked, self._forgets = self._forgets, {}
            forgets = tuple(
                Forget(model, stream, known_epochs.get((model, stream), (0, 0.0))[0], keep)
                for (model, stream), keep in asked.items()
            )
            self._pending = (self._seq, subtract_sums(now, base, arms=arms), now, forgets)
        seq, delta, before, forgets = self._pending
        meta = learner.meta()
        own = self._own
        if is_zero(delta) and not forgets:
            snapshot = self.store.pull(self.namespace)
            if snapshot is not None:
                meta.check(snapshot.meta, f"state {self.namespace!r} in {self.store.url}")
            entry = None if snapshot is None else snapshot.replicas.get(self.replica)
            known = None if entry is None else entry[0]
        else:
            snapshot = self.store.push(
                delta,
                meta,
                namespace=self.namespace,
                replica=self.replica,
                seq=seq,
                forgets=forgets,
            )
            known = snapshot.previous_seq
            self._own = add_sums(own, delta)
        self._pending = None
        if snapshot is not None:
            before = self._follow_forgets(snapshot, before, forgets)
        if self._acked and known is None:
            # Everything pushed before is gone: add it back, once, after this sync's own
            # bookkeeping (so that a failure of that push is retried, never double counted).
            self._lost("this replica's earlier pushes are missing")
            if not is_zero(own):
                self._seq += 1
                self._reseed_due = (self._seq, own)
        elif known is not None and known < self._acked:
            self._lost(f"it holds this replica's sync {known}, not {self._acked}")
        if snapshot is not None and not is_zero(delta):
            self._acked = max(self._acked, seq)
        self._last_global = snapshot
        if snapshot is None:
            self._epochs = {}  # an empty store: nothing was ever forgotten
            self._base = before
            return
        # What others learned, model by model; a model whose counts in the store are below
        # this router's is not merged (its learning never goes backwards) and its base
        # stays this router's, so the next delta is only what is learned meanwhile.
        # Models are this router's; targets are every target any replica steered.
        arms = [*_arms(before), *snapshot.sums.get("targets", {})]
        change = subtract_sums(snapshot.sums, before, arms=arms)
        merged: Sums = {}
        for part, models in change.items():
            merged[part] = {}
            for arm in list(models):
                mine, theirs = before[part].get(arm), snapshot.sums[part].get(arm)
                if mine is not None and (theirs is None or _lower(theirs, mine)):
                    del models[arm]
                    merged[part][arm] = mine
                elif theirs is not None:
                    merged[part][arm] = {
                        k: np.array(v, dtype=np.float64) for k, v in theirs.items()
                    }
        if not is_zero(change):
            learner.merge_delta(change)
        self._base = merged

    def _follow_forgets(
        self, snapshot: Snapshot, before: Sums, forgets: tuple[Forget, ...]
    ) -> Sums:
        """Apply to this replica the forgets the store applied since the last sync (its own
        and other replicas'): the router's statistics, ``before`` (what it pushed against)
        and ``own`` (what it ever pushed) are scaled by the same factors as the global sums,
        so the next merge adds nothing back and a forget never reads as lost state."""
        seen = self._epochs
        ratios: dict[tuple[str, str], float] = {}
        for key, (epoch, log_scale) in snapshot.epochs.items():
            if seen is None:
                # First contact: earlier forgets were applied before this replica's learning
                # reached the store; only one it pushed now (based on epoch 0) applies here.
                if not any((f.model, f.stream) == key and f.epoch == 0 for f in forgets):
                    continue
                if epoch != 1:
                    continue
            old_epoch, old_log = (seen or {}).get(key, (0, 0.0))
            if epoch > old_epoch:
                ratios[key] = float(np.exp(log_scale - old_log))
        applied = len(snapshot.forgotten)
        self.forgets_applied += applied
        self.forgets_dropped += len(forgets) - applied
        self._epochs = dict(snapshot.epochs)
        if not ratios:
            return before
        scaled = before
        for (model, stream), ratio in ratios.items():
            scaled = scale_sums(scaled, model, stream, ratio)
            self._own = scale_sums(self._own, model, stream, ratio)
        self.learner.merge_delta(subtract_sums(scaled, before, arms=_arms(before)))
        return scaled

    def _lost(self, why: str) -> None:
        self.state_lost += 1
        logger.error(
            "state store %s went backwards for namespace %r (%s): it lost learning this "
            "replica had pushed. The router keeps its own learning; check the store's "
            "persistence and eviction settings (see the README's reliability section)",
            self.store.url,
            self.namespace,
            why,
        )

    def _reseed(self) -> None:
        """Push back what the store lost of this replica's learning (idempotent: a retry
        after an ambiguous failure carries the same sequence number), if one is due."""
        if self._reseed_due is None:
            return
        seq, own = self._reseed_due
        self._last_global = self.store.push(
            own, self.learner.meta(), namespace=self.namespace, replica=self.replica, seq=seq
        )
        self._reseed_due = None
        self._acked = max(self._acked, seq)
        logger.error(
            "state store %s: re-seeded namespace %r with this replica's learning",
            self.store.url,
            self.namespace,
        )

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
                        explanation=compact_explanation(Explanation.of(d, prefs)),
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
        wrote = bool(self._unsent)
        while self._unsent:
            batch = self._unsent[: self.batch_size]
            self.store.write_history(batch)
            del self._unsent[: len(batch)]
        if wrote and (self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_EVERY):
            self.store.prune(namespace=ns)
            self._pruned_at = time.monotonic()

    def __repr__(self) -> str:
        return f"StoreSync({self.store!r}, interval={self.interval}, replica={self.replica[:8]})"
