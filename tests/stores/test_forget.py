"""Change detection with a shared state store: a forget is applied once to the global sums
and followed by every replica, never undone by a sync nor taken for lost state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from conduit import Router
from conduit._errors import StateError
from conduit._state import decode, encode
from conduit.engines._drift import KEEP, DriftDetector
from conduit.engines._outcomes import KEYS
from conduit.stores import Store, StoreSync
from conduit.stores._base import Forget, Meta, Snapshot

MODELS = ["a", "b"]


def make_router(store: Store, models: Sequence[str] = MODELS, **kw: Any) -> Router:
    kw.setdefault("bandit_algorithm", "linucb")
    router = Router(
        list(models),
        embedding_backend="hashing",
        seed=0,
        state_store=store,
        sync_interval=3600.0,
        **kw,
    )
    return router.start()


def sync(router: Router) -> StoreSync:
    assert router.store_sync is not None
    return router.store_sync


def learn(router: Router, n: int, quality: Callable[[str], float], tag: str = "") -> None:
    for i in range(n):
        d = router.route_sync(f"question {tag} {i} about topic {i % 7}")
        router.update_sync(d.decision_id, quality=quality(d.selected_model), cost=0.001)


def feedback(router: Router, model: str) -> float:
    return float(router._outcomes.stats()[model]["quality_n"])


def global_feedback(store: Store, model: str) -> float:
    state = store.pull()
    assert state is not None
    return float(state.sums["outcomes"][model]["quality_n"])


def test_a_detected_change_is_forgotten_in_the_store_and_stays_forgotten(
    make_store: Callable[..., Store], routers: list[Router], caplog: pytest.LogCaptureFixture
) -> None:
    detector = DriftDetector(threshold=5.0, warmup=20)
    router = make_router(make_store(), drift_detection=detector)
    routers.append(router)
    syncer = sync(router)
    learn(router, 150, lambda m: 1.0, "before")
    syncer.sync_now()
    caplog.set_level(logging.INFO, logger="conduit")
    learn(router, 150, lambda m: 0.0, "after")  # every model's quality drops to 0
    assert detector is router.drift and any(a["quality"] for a in detector.alarms().values())
    store = syncer.store
    syncer.sync_now()
    assert syncer.forgets_applied >= 1 and syncer.forgets_dropped == 0
    assert syncer.state_lost == 0 and "re-seeded" not in caplog.text
    state = store.pull()
    assert state is not None and state.epochs
    # the router holds exactly the global sums, which are far below all outcomes ever seen
    total = sum(feedback(router, m) for m in MODELS)
    assert total == pytest.approx(sum(global_feedback(store, m) for m in MODELS))
    assert total < 300 - 50
    # syncs do not merge the forgotten learning back, nor take the forget for lost state
    for _ in range(2):
        syncer.sync_now()
        assert sum(feedback(router, m) for m in MODELS) == pytest.approx(total)
    assert syncer.state_lost == 0 and "went backwards" not in caplog.text


def test_a_forget_on_one_replica_reaches_the_other(
    make_store: Callable[..., Store], routers: list[Router], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = make_router(make_store()), make_router(make_store())
    routers += [a, b]
    learn(a, 60, lambda m: 1.0, "a")
    learn(b, 60, lambda m: 1.0, "b")
    for r in (a, b, a):
        sync(r).sync_now()
    n = feedback(a, "a")
    assert n == feedback(b, "a") > KEEP["quality"]
    sync(a).forget("a", "quality", KEEP["quality"])
    learn(b, 10, lambda m: 1.0, "b2")  # b learns meanwhile; that is kept
    b_new = feedback(b, "a") - n
    sync(a).sync_now()
    assert feedback(a, "a") == pytest.approx(KEEP["quality"])
    sync(b).sync_now()
    assert feedback(b, "a") == pytest.approx(KEEP["quality"] + b_new)
    sync(a).sync_now()
    assert feedback(a, "a") == pytest.approx(feedback(b, "a"))
    assert global_feedback(sync(a).store, "a") == pytest.approx(feedback(a, "a"))
    # the policy's statistics followed the outcome sums on both replicas
    for r in (a, b):
        assert float(np.sum(r._bandit.feedback_counts()[r._bandit.arm_index("a")])) == (
            pytest.approx(feedback(r, "a"))
        )
    for r in (a, b):
        sync(r).sync_now()
        assert sync(r).state_lost == 0
    assert "re-seeded" not in caplog.text and "went backwards" not in caplog.text


def test_two_replicas_detecting_one_change_forget_once(
    make_store: Callable[..., Store], routers: list[Router]
) -> None:
    a, b = make_router(make_store()), make_router(make_store())
    routers += [a, b]
    learn(a, 100, lambda m: 1.0, "a")
    learn(b, 100, lambda m: 1.0, "b")
    for r in (a, b, a):
        sync(r).sync_now()
    for r in (a, b):  # both detect before either syncs
        sync(r).forget("a", "quality", KEEP["quality"])
    sync(a).sync_now()
    sync(b).sync_now()
    sync(a).sync_now()
    assert (sync(a).forgets_applied, sync(b).forgets_applied) == (1, 0)
    assert sync(b).forgets_dropped == 1
    state = sync(a).store.pull()
    assert state is not None and state.epochs[("a", "quality")][0] == 1
    # forgotten once: KEEP outcomes' worth, not KEEP * KEEP / n
    assert feedback(a, "a") == feedback(b, "a") == pytest.approx(KEEP["quality"])
    assert sync(a).state_lost == sync(b).state_lost == 0


def test_a_forget_pushed_twice_after_a_lost_answer_is_applied_once(store: Store) -> None:
    meta = Meta("linucb", "none", 2)
    delta = {
        "bandit": {},
        "outcomes": {
            "a": {k: np.array({"quality_n": 100.0, "quality_sum": 80.0}.get(k, 0.0)) for k in KEYS}
        },
    }
    forget = Forget("a", "quality", 0, 20.0)
    first = store.push(delta, meta, replica="r", seq=1, forgets=[forget])
    again = store.push(delta, meta, replica="r", seq=1, forgets=[forget])
    assert first.forgotten == (("a", "quality"),) and again.forgotten == ()
    assert float(again.sums["outcomes"]["a"]["quality_n"]) == pytest.approx(20.0)
    assert again.epochs.keys() == {("a", "quality")}
    epoch, log_scale = again.epochs[("a", "quality")]
    assert epoch == 1 and log_scale == pytest.approx(np.log(0.2))
    stale = store.push(delta, meta, replica="r", seq=2, forgets=[forget])
    assert stale.forgotten == () and float(stale.sums["outcomes"]["a"]["quality_n"]) == 120.0


def test_a_state_without_epochs_loads_and_bad_epochs_are_refused() -> None:
    old = Snapshot(Meta("linucb", "none", 2), {"bandit": {}, "outcomes": {}}).encode()
    payload = decode(old)
    assert "epochs" not in payload  # an unforgotten state is written as before epochs
    assert Snapshot.decode(old, "old").epochs == {}
    payload["epochs"] = {"a": {"quality": [2, -1.5]}}
    assert Snapshot.decode(encode(payload), "new").epochs == {("a", "quality"): (2, -1.5)}
    bad: Any
    for bad in (
        {"a": {"latency": [1, 0.0]}},
        {"a": {"quality": [-1, 0.0]}},
        {"a": {"quality": [1, 0.5]}},
        {"a": {"quality": [1]}},
        {"a": [1, 0.0]},
        [],
    ):
        payload["epochs"] = bad
        with pytest.raises(StateError):
            Snapshot.decode(encode(payload), "bad")


def test_a_replica_joining_after_a_forget_starts_from_the_forgotten_state(
    make_store: Callable[..., Store], routers: list[Router]
) -> None:
    a = make_router(make_store())
    routers.append(a)
    learn(a, 80, lambda m: 1.0, "a")
    sync(a).sync_now()
    m = max(MODELS, key=lambda name: feedback(a, name))
    assert feedback(a, m) > KEEP["quality"]
    sync(a).forget(m, "quality", KEEP["quality"])
    sync(a).sync_now()
    c = make_router(make_store())  # its first sync (at start) pulls the forgotten state
    routers.append(c)
    assert feedback(c, m) == pytest.approx(KEEP["quality"]) == feedback(a, m)
    sync(c).forget(m, "quality", KEEP["quality"])  # a later change, seen from c
    learn(c, 5, lambda m: 1.0, "c")
    for r in (c, a, c):
        sync(r).sync_now()
    assert sync(c).forgets_applied == 1
    assert feedback(a, m) == pytest.approx(feedback(c, m))
    assert sync(a).state_lost == sync(c).state_lost == 0
