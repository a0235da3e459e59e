"""StoreSync: routers sharing learning through a store, off the request path, through outages."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from conduit import Router
from conduit._errors import ConfigurationError, StoreError, UnknownDecisionError
from conduit._types import Constraints
from conduit.stores import HistoryRecord, Store, open_store
from conduit.stores._memory import MemoryStore
from conduit.stores._sync import compact_explanation

MODELS = ["small", "openai/gpt-4o", "large"]


def make_router(store: Store | str | None, models: Sequence[str] = MODELS, **kw: Any) -> Router:
    kw.setdefault("bandit_algorithm", "linucb")
    kw.setdefault("sync_interval", 3600.0)  # tests sync explicitly
    router = Router(list(models), embedding_backend="hashing", seed=0, state_store=store, **kw)
    return router.start()


def learn(router: Router, n: int, tag: str = "", quality: float = 1.0) -> None:
    for i in range(n):
        d = router.route_sync(f"question {tag} {i} about topic {i % 7}")
        router.update_sync(d.decision_id, quality=quality, cost=0.001, latency=0.5)


def total(router: Router, key: str = "decisions") -> float:
    return float(sum(s[key] for s in router._outcomes.stats().values()))


def global_total(store: Store, key: str = "decisions") -> float:
    state = store.pull()
    return 0.0 if state is None else sum(float(s[key]) for s in state.sums["outcomes"].values())


def test_two_routers_end_with_the_sum_of_their_learning(
    make_store: Callable[..., Store], routers: list[Router]
) -> None:
    a, b = make_router(make_store()), make_router(make_store())
    routers += [a, b]
    learn(a, 30, "a")
    learn(b, 20, "b", quality=0.0)
    assert a.store_sync and b.store_sync
    a.store_sync.sync_now()
    b.store_sync.sync_now()
    a.store_sync.sync_now()
    for r in (a, b):
        assert total(r) == 50 and total(r, "quality_sum") == 30
        assert float(sum(s["n"] for s in r.bandit.stats().values())) == 50
    np.testing.assert_allclose(a.bandit.stats()["small"]["A"], b.bandit.stats()["small"]["A"])
    # Learning after the sync is local until the next one, and is then added, not overwritten.
    learn(b, 5, "b2")
    b.store_sync.sync_now()
    a.store_sync.sync_now()
    assert total(a) == total(b) == 55
    assert global_total(make_store()) == 55


def test_a_router_started_later_begins_from_the_global_state(
    make_store: Callable[..., Store], routers: list[Router]
) -> None:
    first = make_router(make_store())
    routers.append(first)
    learn(first, 25)
    first.close()
    late = make_router(make_store())
    routers.append(late)
    assert total(late) == 25  # pulled in start(), before routing anything
    np.testing.assert_allclose(
        late.bandit.stats()["small"]["A"], first.bandit.stats()["small"]["A"]
    )


def test_close_pushes_what_is_left_and_history(make_store: Callable[..., Store]) -> None:
    router = make_router(make_store())
    learn(router, 12)
    router.close()
    store = make_store()
    assert global_total(store) == 12
    history = store.history(limit=100)
    assert len(history) == 12
    assert all(r.quality == 1.0 and r.cost == 0.001 and r.model in MODELS for r in history)
    assert all(r.prompt is None and r.prompt_hash and len(r.prompt_hash) == 64 for r in history)
    assert all(r.algorithm == "linucb" and 0 < (r.propensity or 0) <= 1 for r in history)


def test_history_explains_each_decision_and_names_its_kind(
    make_store: Callable[..., Store],
) -> None:
    router = make_router(make_store())
    denied = router.route_sync(
        "def f(x): return x", constraints=Constraints(denied_models={"large"})
    )
    plain = router.route_sync("Tell me about the weather in Lisbon")
    router.close()
    store = make_store()
    record = store.record(denied.decision_id)
    assert record is not None and record.kind == "code"
    # stored compactly: the same explanation, numbers to 4 significant digits
    assert record.explanation == compact_explanation(router.explain(denied.decision_id))
    explanation = record.explain()
    assert explanation is not None
    assert explanation.excluded == {"large": "in denied_models"}
    assert set(explanation.scores) == {"small", "openai/gpt-4o"}
    assert explanation.preset == "balanced" and explanation.reason == denied.reason
    other = store.record(plain.decision_id)
    assert other is not None and other.kind == "short"


def test_explain_falls_back_to_the_stores_history(make_store: Callable[..., Store]) -> None:
    router = make_router(make_store(), max_explanations=0)  # nothing kept in memory
    decision = router.route_sync("What is 2 + 2?")
    with pytest.raises(UnknownDecisionError, match="or in its store's history"):
        router.explain(decision.decision_id)  # not written to the store yet
    assert router.store_sync is not None
    router.store_sync.sync_now()
    explanation = router.explain(decision.decision_id)
    assert explanation.selected_model == decision.selected_model
    assert explanation.scores.keys() == decision.scores.keys()
    for name, score in explanation.scores.items():
        assert score.utility == pytest.approx(decision.scores[name].utility, rel=1e-3)
    router.close()


def test_a_clock_stamps_history_events(make_store: Callable[..., Store]) -> None:
    ticks = iter([1000.0, 1001.0, 2000.0, 2001.0])
    store = make_store()
    store.history_days = None  # times from 1970 would be pruned by the default retention
    router = Router(MODELS, embedding_backend="hashing", seed=0, state_store=store)
    router.start(clock=lambda: next(ticks))
    learn(router, 2)
    router.close()
    times = sorted(r.time for r in make_store().history(limit=10))
    assert times == [1000.0, 2000.0]  # each record keeps its decision's time


def test_prompts_are_stored_only_when_asked() -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}?store_prompts=true")
    router = make_router(store)
    learn(router, 2, "secret")
    router.close()
    assert sorted(r.prompt or "" for r in store.history(limit=5)) == [
        "question secret 0 about topic 0",
        "question secret 1 about topic 1",
    ]


def test_each_replica_routes_only_its_own_models(routers: list[Router]) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    wide = make_router(store, models=[*MODELS, "extra"])
    narrow = make_router(store, models=MODELS[:2])
    routers += [wide, narrow]
    learn(wide, 40)
    assert wide.store_sync and narrow.store_sync
    wide.store_sync.sync_now()
    narrow.store_sync.sync_now()
    assert narrow.models == tuple(MODELS[:2])
    learned = store.pull()
    assert learned is not None and "extra" in learned.sums["bandit"]
    for arm in MODELS[:2]:
        np.testing.assert_allclose(narrow.bandit.stats()[arm]["A"], wide.bandit.stats()[arm]["A"])


def test_hybrid_policy_statistics_sync(routers: list[Router]) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    a = make_router(store, bandit_algorithm="hybrid", switch_after=10)
    b = make_router(store, bandit_algorithm="hybrid", switch_after=10)
    routers += [a, b]
    learn(a, 6)
    learn(b, 6)
    assert a.store_sync and b.store_sync
    a.store_sync.sync_now()
    b.store_sync.sync_now()
    assert b.stats().phase == "linucb"  # 12 feedback events in all, past switch_after
    a.store_sync.sync_now()
    assert a.stats().phase == "linucb"


class FlakyStore(MemoryStore):
    """A memory store that can be taken down, or made to lose the answer of a push it applied."""

    def __init__(self) -> None:
        super().__init__(name=uuid.uuid4().hex)
        self.down = False
        self.lose_answer = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreError("connection refused (test)")

    def _read(self, namespace: str) -> str | None:
        self._check()
        return super()._read(namespace)

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        self._check()
        super()._update(namespace, change)
        if self.lose_answer:
            self.lose_answer = False
            raise StoreError("connection reset after commit (test)")

    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        self._check()
        super()._write_history(records)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_outage_is_logged_once_and_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    router = make_router(store, sync_interval=0.02)
    caplog.set_level(logging.INFO, logger="conduit.stores")
    try:
        learn(router, 10, "before")
        sync = router.store_sync
        assert sync is not None
        _wait_for(lambda: global_total(store) == 10)
        store.down = True
        learn(router, 15, "during")  # no request fails
        calls = store.calls
        _wait_for(lambda: sync.failures >= 5 and store.calls > calls + 5)
        store.down = False
        _wait_for(lambda: sync.down_since is None)
        learn(router, 5, "after")
    finally:
        router.close()
    assert global_total(store) == 30 and len(store.history(limit=100)) == 30
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [
        r for r in caplog.records if r.levelno == logging.INFO and "is back after" in r.getMessage()
    ]
    assert len(warnings) == 1 and "connection refused" in warnings[0].getMessage()
    assert len(infos) == 1


def test_an_outage_keeps_the_retry_interval_however_much_traffic_queues() -> None:
    store = FlakyStore()
    store.down = True
    router = make_router(store, sync_interval=60.0)  # one retry a minute during the outage
    sync = router.store_sync
    assert sync is not None and sync.down_since is not None
    sync.batch_size = 5  # a full batch would otherwise wake the sync thread at once
    calls = store.calls
    try:
        learn(router, 50, "during")  # 100 events: 20 full batches
        time.sleep(0.3)
        assert store.calls == calls  # not one failing attempt per batch
    finally:
        store.down = False
        router.close()
    assert global_total(store) == 50


def test_a_push_whose_answer_was_lost_is_not_counted_twice() -> None:
    store = FlakyStore()
    router = make_router(store)
    sync = router.store_sync
    assert sync is not None
    learn(router, 7)
    store.lose_answer = True
    with pytest.raises(StoreError, match="after commit"):
        sync.sync_now()
    learn(router, 3)
    sync.sync_now()  # retries the same push (applied once), then pushes the 3 new ones
    sync.sync_now()
    router.close()
    assert global_total(store) == 10
    assert total(router) == 10


def test_a_store_down_at_start_does_not_stop_the_router(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    store.down = True
    router = make_router(store)
    assert router.store_sync is not None and router.store_sync.down_since is not None
    learn(router, 4)
    store.down = False
    router.close()
    assert global_total(store) == 4


class BlockingStore(MemoryStore):
    """A store whose writes hang until released: a stuck network."""

    def __init__(self) -> None:
        super().__init__(name=uuid.uuid4().hex)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.completed = 0

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        self.entered.set()
        self.release.wait(30)
        super()._update(namespace, change)
        self.completed += 1


def test_route_never_waits_on_the_store() -> None:
    store = BlockingStore()
    store.release.set()
    router = make_router(store, sync_interval=0.01)
    try:
        learn(router, 3)
        store.release.clear()
        store.entered.clear()
        assert store.entered.wait(5)  # the sync thread is now stuck inside a write
        completed = store.completed
        learn(router, 200, "while stuck")
        # every decision was routed and learned while the store's write was still stuck
        assert store.completed == completed and not store.release.is_set()
        assert total(router) == 203
    finally:
        store.release.set()
        router.close()
    assert global_total(store) == 203


def test_a_corrupt_store_state_is_refused_and_left_in_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    store._update(store.namespace, lambda _: "garbage")
    router = make_router(store, sync_interval=0.02)
    try:
        learn(router, 5)  # routing goes on from memory
        assert router.store_sync is not None
        _wait_for(lambda: router.store_sync is not None and router.store_sync.failures >= 3)
    finally:
        router.close()
    assert store._read(store.namespace) == "garbage"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "not valid JSON" in errors[0].getMessage()
    assert "left in place" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"state_store": 42}, ConfigurationError, "state_store must be a URL or a Store"),
        ({"state_store": "memory://", "sync_interval": 0}, ConfigurationError, "sync_interval"),
        ({"state_store": "memory://", "sync_interval": -1.0}, ConfigurationError, "sync_interval"),
        ({"state_store": "memory://", "sync_interval": True}, ConfigurationError, "sync_interval"),
        ({"state_store": "ftp://x"}, ConfigurationError, "unknown state store scheme"),
    ],
)
def test_invalid_store_arguments(
    kwargs: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        Router(MODELS, embedding_backend="hashing", **kwargs)
