"""Pending decisions: expiry on the store's clock, a size bound, and each part claimed once."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from conduit._errors import ConfigurationError, UnknownDecisionError
from conduit._pending import PARTS, Pending, PendingDecisions


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pending(model: str = "m") -> Pending:
    return Pending(model=model, features=np.ones(3), tokens=10.0)


def test_parts_are_the_three_outcomes() -> None:
    assert PARTS == ("quality", "cost", "latency")


def test_entries_expire_after_ttl_on_the_stores_clock() -> None:
    clock = FakeClock()
    store = PendingDecisions(ttl=60.0, clock=clock)
    entry = Pending(model="m", features=None, tokens=1.0, created=0.0)  # a foreign timestamp
    store.add("d1", entry)
    assert entry.created == clock.now, "add stamps the entry on the store's own clock"
    clock.now += 59.0
    store.add("d2", pending())
    assert store.claim("d1", {"cost"})[1] == {"cost"}
    clock.now += 2.0  # d1 is 61 s old, d2 2 s
    with pytest.raises(UnknownDecisionError, match="older than 60 s"):
        store.claim("d1", {"quality"})
    assert store.claim("d2", {"quality"})[1] == {"quality"}
    assert store.expired == 1
    assert len(store) == 1 and "d1" not in store and "d2" in store
    clock.now += 100.0
    assert len(store) == 0 and store.expired == 2, "expiry does not wait for the next add"


def test_size_is_bounded_oldest_first() -> None:
    store = PendingDecisions(maxsize=2, clock=FakeClock())
    for i in range(4):
        store.add(f"d{i}", pending())
    assert len(store) == 2
    for gone in ("d0", "d1"):
        with pytest.raises(UnknownDecisionError, match="2 decisions"):
            store.claim(gone, {"quality"})
    assert store.claim("d3", {"quality"})[1] == {"quality"}
    assert store.expired == 2


def test_re_adding_an_id_refreshes_it() -> None:
    clock = FakeClock()
    store = PendingDecisions(ttl=10.0, maxsize=2, clock=clock)
    store.add("a", pending())
    store.add("b", pending())
    clock.now += 5
    store.add("a", pending("other"))  # now the newest
    store.add("c", pending())
    assert "b" not in store and "a" in store and "c" in store
    clock.now += 7  # a and c are 7 s old, b would have been 12
    assert store.claim("a", {"cost"})[0].model == "other"


def test_claim_returns_only_new_parts() -> None:
    store = PendingDecisions(clock=FakeClock())
    entry = pending()
    store.add("d", entry)
    got, new = store.claim("d", {"cost", "latency"})
    assert got is entry and new == {"cost", "latency"}
    assert store.claim("d", {"cost"})[1] == set()
    assert store.claim("d", {"quality", "cost", "latency"})[1] == {"quality"}
    assert store.claim("d", set(PARTS))[1] == set()
    assert entry.seen == set(PARTS)


def test_release_makes_parts_claimable_again() -> None:
    store = PendingDecisions(clock=FakeClock())
    store.add("d", pending())
    store.claim("d", {"quality", "cost"})
    store.release("d", {"quality"})
    assert store.claim("d", {"quality", "cost"})[1] == {"quality"}
    store.release("missing", {"quality"})  # a release after expiry is a no-op


def test_forget_features_keeps_a_tombstone() -> None:
    store = PendingDecisions(clock=FakeClock())
    store.add("d", pending())
    store.claim("d", {"quality"})
    store.forget_features("d")
    entry, new = store.claim("d", {"quality"})
    assert entry.features is None and new == set()
    store.forget_features("missing")


def test_each_part_is_claimed_by_exactly_one_thread() -> None:
    store = PendingDecisions(clock=FakeClock())
    for i in range(50):
        store.add(f"d{i}", pending())
    winners: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(50):
            _, new = store.claim(f"d{i}", {"quality", "cost"})
            with lock:
                winners.extend((f"d{i}", part) for part in new)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(winners) == sorted((f"d{i}", p) for i in range(50) for p in ("quality", "cost"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0}, "pending_ttl"),
        ({"ttl": -1.0}, "pending_ttl"),
        ({"ttl": float("nan")}, "pending_ttl"),
        ({"ttl": "1h"}, "pending_ttl"),
        ({"ttl": True}, "pending_ttl"),
        ({"maxsize": 0}, "max_pending"),
        ({"maxsize": 2.5}, "max_pending"),
        ({"maxsize": True}, "max_pending"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PendingDecisions(**kwargs)


def test_an_infinite_ttl_never_expires() -> None:
    clock = FakeClock()
    store = PendingDecisions(ttl=float("inf"), clock=clock)
    store.add("d", pending())
    clock.now += 1e12
    assert "d" in store


def test_a_decision_with_its_whole_outcome_is_not_waiting() -> None:
    store = PendingDecisions()
    for name in ("a", "b", "c"):
        store.add(name, pending())
    store.claim("a", set(PARTS))  # everything arrived
    store.claim("b", {"cost", "latency"})  # quality still to come
    assert store.waiting() == 2
    store.claim("b", {"quality"})
    assert store.waiting() == 1
    assert len(store) == 3, "answered decisions stay as tombstones against duplicates"


def test_router_stats_pending_counts_decisions_still_waiting(make_router: Any) -> None:
    router = make_router()
    ids = [router.route_sync(f"question {i}").decision_id for i in range(4)]
    assert router.stats().pending == 4
    for decision_id in ids[:3]:
        router.update_sync(decision_id, quality=0.8, cost=0.001, latency=0.5)
    router.update_sync(ids[3], cost=0.001, latency=0.5)  # quality never came
    assert router.stats().pending == 1
    router.close()
