"""The router's counters (quality labels by source, judge cost) are stored with its learning."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conduit import Router
from conduit._errors import InvalidFeedbackError, ValidationError
from conduit._state import decode, encode
from conduit.stores import Store
from conduit.stores._base import Snapshot

MODELS = ["small", "large"]


def make_router(store: Store) -> Router:
    router = Router(
        MODELS, embedding_backend="hashing", seed=0, state_store=store, sync_interval=3600.0
    )
    return router.start()


def label(router: Router, source: str, n: int) -> None:
    for i in range(n):
        d = router.route_sync(f"question {source} {i}")
        router.update_sync(d.decision_id, quality=0.5, source=source)


def test_counters_are_summed_across_replicas_and_read_from_the_store(
    make_store: Callable[..., Store],
) -> None:
    a, b = make_router(make_store()), make_router(make_store())
    try:
        label(a, "judge", 3)
        label(a, "explicit", 2)
        a.count("judge_cost", 0.5)
        a.count("judge_calls", 3)
        label(b, "shadow", 1)
        b.count("judge_cost", 0.25)
        b.count("judge_paused_budget", 4)
        assert a.store_sync and b.store_sync
        a.store_sync.sync_now()
        b.store_sync.sync_now()
        a.store_sync.sync_now()
        for router in (a, b):
            counters = router.stats().counters
            assert counters["quality_judge"] == 3 and counters["quality_explicit"] == 2
            assert counters["quality_shadow"] == 1 and counters["judge_paused_budget"] == 4
            assert counters["judge_cost"] == pytest.approx(0.75)
        snapshot = make_store().pull()
        assert snapshot is not None
        summary = snapshot.summary()["counters"]
        assert summary["quality_judge"] == 3 and summary["judge_calls"] == 3
        assert summary["judge_cost"] == pytest.approx(0.75)
    finally:
        a.close()
        b.close()


def test_a_state_stored_before_counters_existed_still_loads(
    make_store: Callable[..., Store],
) -> None:
    router = make_router(make_store())
    try:
        label(router, "judge", 2)
        assert router.store_sync
        router.store_sync.sync_now()
    finally:
        router.close()
    snapshot = make_store().pull()
    assert snapshot is not None
    payload = decode(snapshot.encode())
    del payload["sums"]["counters"]
    old = Snapshot.decode(encode(payload), "old state")
    assert old.summary()["counters"] == {}
    assert sum(m["feedback"] for m in old.summary()["models"].values()) == 2


def test_unknown_or_negative_counts_and_sources_are_refused() -> None:
    router = Router(MODELS, embedding_backend="hashing", seed=0)
    with pytest.raises(ValidationError, match="unknown counter"):
        router.count("judge_bribes")
    with pytest.raises(ValidationError, match=">= 0"):
        router.count("judge_cost", -1.0)
    d = router.route_sync("hello there")
    with pytest.raises(InvalidFeedbackError, match="source must be one of"):
        router.update_sync(d.decision_id, quality=1.0, source="gossip")
