"""Outages, data loss and scale: bounded memory, no silent rollback, pruned history,
validated states (every backend)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conduit._errors import StateError
from conduit.engines._outcomes import KEYS
from conduit.stores import HistoryRecord, Snapshot, Store, open_store
from conduit.stores._cli import main

from .conftest import RedisServer
from .test_contract import META, delta
from .test_sync import FlakyStore, global_total, learn, make_router, total


def test_an_outage_keeps_history_bounded_and_learning_whole() -> None:
    store = FlakyStore()
    store.down = True
    router = make_router(store, sync_interval=3600.0)
    sync = router.store_sync
    assert sync is not None
    sync.max_backlog = 50
    try:
        learn(router, 200, "during")  # 400 history events: 200 decisions, 200 outcomes
        assert len(sync._events) + len(sync._unsent) <= 50
        assert sync.dropped == 400 - 50
        assert total(router) == 200
    finally:
        store.down = False
        router.close()
    assert global_total(store) == 200  # learning is never dropped, only history beyond the bound
    assert len(store.history(limit=1000)) <= 50


def test_a_store_that_lost_its_data_is_reseeded_and_no_router_goes_backwards(
    make_store: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="conduit.stores")
    store = make_store()
    a, b = make_router(make_store()), make_router(make_store())
    try:
        learn(a, 30, "a")
        learn(b, 20, "b")
        for r in (a, b, a):
            assert r.store_sync is not None
            r.store_sync.sync_now()
        assert total(a) == total(b) == global_total(store) == 50
        store.reset()  # the store loses everything: flushed, evicted, restarted without data
        learn(a, 5, "a2")
        assert a.store_sync is not None and b.store_sync is not None
        a.store_sync.sync_now()
        assert total(a) == 55  # not rolled back to what the store has left
        b.store_sync.sync_now()
        assert total(b) >= 50
        a.store_sync.sync_now()
        b.store_sync.sync_now()
        # Each replica re-added exactly what it had pushed: the store is whole again.
        assert total(a) == total(b) == global_total(store) == 55
        assert a.store_sync.state_lost == 1 and b.store_sync.state_lost == 1
    finally:
        a.close()
        b.close()
    assert global_total(store) == 55
    lost = [r for r in caplog.records if "went backwards" in r.getMessage()]
    assert len(lost) == 2 and all(r.levelno == logging.ERROR for r in lost)


@pytest.mark.redis
def test_redis_restarted_without_its_data_is_reseeded(
    redis_server_binary: str, tmp_path: Path
) -> None:
    pytest.importorskip("redis")
    from .conftest import free_port

    server = RedisServer(redis_server_binary, free_port(), tmp_path)
    server.start()
    router = make_router(server.url)
    try:
        learn(router, 40)
        assert router.store_sync is not None
        router.store_sync.sync_now()
        server.stop()
        for leftover in tmp_path.iterdir():  # restarted without persistence: nothing comes back
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        server.start()
        learn(router, 2)
        router.store_sync.sync_now()
        assert total(router) == 42
        store = open_store(server.url)
        assert global_total(store) == 42
        assert router.store_sync.state_lost == 1
        store.close()
    finally:
        router.close()
        server.stop()


def test_history_is_pruned_to_the_retention(store_url: str) -> None:
    url = f"{store_url}&history_max=5"
    router = make_router(url)
    try:
        learn(router, 20)
        assert router.store_sync is not None
        router.store_sync.sync_now()
    finally:
        router.close()
    store = open_store(url)
    try:
        assert len(store.history(limit=100)) == 5
        assert global_total(store) == 20  # learned state is never pruned
        old = [HistoryRecord(f"old{i}", store.namespace, 1000.0 + i, model="m") for i in range(3)]
        store.write_history(old)
        assert store.prune(days=1, keep=0) == 3
        assert {r.decision_id for r in store.history(limit=100)}.isdisjoint(
            r.decision_id for r in old
        )
    finally:
        store.close()


def test_state_prune_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    router = make_router(url)
    learn(router, 9)
    router.close()
    assert main(["state", "prune", "--url", url, "--keep", "4"]) == 0
    assert "pruned 5 history record(s)" in capsys.readouterr().out
    with open_store(url) as store:
        assert len(store.history(limit=100)) == 4
        assert global_total(store) == 9


def _blob(**change: Any) -> str:
    """A store state of META's shape with one thing broken."""
    sums = delta(2.0)
    payload: dict[str, Any] = {}
    if "count" in change:
        sums["outcomes"]["openai/gpt-4o"]["quality_n"] = np.array(change["count"])
    if "huge" in change:
        sums["outcomes"]["openai/gpt-4o"]["cost_sum"] = np.array(change["huge"])
    if "shape" in change:
        sums["bandit"]["openai/gpt-4o"]["A"] = np.eye(change["shape"])
    if "outcome_key" in change:
        sums["outcomes"]["openai/gpt-4o"]["surprise"] = np.array(1.0)
    text = Snapshot(META, sums).encode()
    if "extra" in change:
        from conduit._state import decode, encode

        payload = decode(text)
        payload["surprise"] = 1
        text = encode(payload)
    return text


@pytest.mark.parametrize(
    ("broken", "pattern"),
    [
        ({"count": -1999.0}, "negative"),
        ({"huge": 1.7e308}, "out of range"),
        ({"shape": 3}, "shape"),
        ({"extra": True}, "unexpected fields"),
        ({"outcome_key": True}, "outcome statistics"),
    ],
)
def test_an_invalid_state_is_refused_on_import_and_on_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: dict[str, Any], pattern: str
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        store.push(delta(1.0), META)
        before = store.pull()
        source = tmp_path / "bad.json"
        source.write_text(_blob(**broken), encoding="utf-8")
        assert main(["state", "import", "--url", url, str(source)]) == 2
        assert pattern in capsys.readouterr().err
        after = store.pull()
        assert before is not None and after is not None and after.revision == before.revision
        # The same state found in a store is refused too, and left in place.
        store._update("bad", lambda _: _blob(**broken))
        with pytest.raises(StateError, match=pattern):
            store.pull("bad")


def test_a_valid_state_still_imports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    source = tmp_path / "good.json"
    source.write_text(_blob(), encoding="utf-8")
    assert main(["state", "import", "--url", url, str(source)]) == 0
    with open_store(url) as store:
        pulled = store.pull()
        assert pulled is not None
        assert set(pulled.sums["outcomes"]["openai/gpt-4o"]) == set(KEYS)


def test_history_explanations_are_compact_and_still_explain(
    make_store: Callable[..., Store],
) -> None:
    from conduit._types import Explanation, Preferences
    from conduit.stores._sync import compact_explanation

    router = make_router(make_store())
    learn(router, 5)
    decision = router.route_sync("how long is a piece of string?")
    router.close()
    full = Explanation.of(decision, Preferences())
    compact = compact_explanation(full)
    assert len(compact) < len(full.model_dump_json())
    stored = make_store().record(decision.decision_id)
    assert stored is not None and stored.explanation == compact
    shown = stored.explain()
    assert shown is not None and shown.selected_model == decision.selected_model
    assert shown.scores.keys() == full.scores.keys()
    for name, score in shown.scores.items():
        assert score.utility == pytest.approx(full.scores[name].utility, rel=1e-3)


def test_stores_depend_only_on_the_learner_interface() -> None:
    """No store module imports the router or touches its private attributes."""
    import ast

    import conduit.stores as stores

    for path in Path(stores.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "conduit.engines.router", path.name
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                owner = node.value.attr
                assert not (owner in ("router", "learner") and node.attr.startswith("_")), (
                    f"{path.name}:{node.lineno} uses {owner}.{node.attr}"
                )


def test_a_router_is_a_learner() -> None:
    from conduit import Router
    from conduit.stores import Learner

    router = Router(["a", "b"], bandit_algorithm="ucb1", seed=0)
    assert isinstance(router, Learner)
    learned = router.snapshot()
    assert set(learned["outcomes"]) == {"a", "b"}
    router.merge_delta({"outcomes": {"a": {k: np.array(1.0) for k in KEYS}}, "bandit": {}})
    assert router.stats().models["a"].decisions == 1
    assert router.meta().algorithm == "ucb1"


class FailsOnce(FlakyStore):
    """A memory store whose ``fail_at``-th write from now fails (a reseed interrupted)."""

    fail_at: int | None = None

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        if self.fail_at is not None:
            self.fail_at -= 1
            if self.fail_at == 0:
                self.fail_at = None
                from conduit._errors import StoreError

                raise StoreError("connection reset (test)")
        super()._update(namespace, change)


def test_an_interrupted_reseed_is_retried_and_counted_once() -> None:
    from conduit._errors import StoreError

    store = FailsOnce()
    router = make_router(store)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 12)
        sync.sync_now()
        store.reset()
        learn(router, 3)
        store.fail_at = 2  # the push of the 3 succeeds, the reseed of the 12 fails
        with pytest.raises(StoreError):
            sync.sync_now()
        assert total(router) == 15
        sync.sync_now()
        sync.sync_now()
        assert global_total(store) == 15 and total(router) == 15
        assert sync.state_lost == 1
    finally:
        router.close()
    assert global_total(store) == 15


def test_a_store_flushed_while_a_push_waits_for_retry_is_reseeded_whole() -> None:
    """The soak's end-of-run case, forced: the store comes back from an outage *empty*,
    so the retried push finds this replica's entry gone and the same sync pushes both the
    re-seed and what was learned since. The store applies a replica's pushes only in
    increasing sequence order, so the re-seed must land before the newer push."""
    from conduit._errors import StoreError

    store = FlakyStore()
    router = make_router(store)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 10, "before")
        sync.sync_now()
        store.down = True
        learn(router, 4, "outage")
        with pytest.raises(StoreError):
            sync.sync_now()  # the push of the 4 waits for retry
        store.down = False
        store.reset()  # back, without its data
        learn(router, 3, "after")
        sync.sync_now()
        assert sync.state_lost == 1
        assert global_total(store) == total(router) == 17
        sync.sync_now()
        assert global_total(store) == total(router) == 17
    finally:
        router.close()
    assert global_total(store) == 17


def test_a_reseed_left_due_goes_before_newer_learning() -> None:
    """A re-seed whose push failed is retried before anything learned since is pushed
    (otherwise the newer push's higher sequence number makes the store skip it)."""
    from conduit._errors import StoreError

    store = FailsOnce()
    router = make_router(store)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 12)
        sync.sync_now()
        store.reset()
        learn(router, 3)
        store.fail_at = 2  # the push of the 3 succeeds, the reseed of the 12 fails
        with pytest.raises(StoreError):
            sync.sync_now()
        learn(router, 5)  # learning goes on before the next sync
        sync.sync_now()
        assert global_total(store) == total(router) == 20
        assert sync.state_lost == 1
    finally:
        router.close()
    assert global_total(store) == 20
