"""Target controllers are learned state: shared by replicas on one store, kept over restarts."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from conduit import Router
from conduit._errors import StateError
from conduit._state import decode
from conduit._types import Preferences
from conduit.engines._targets import Targets
from conduit.stores import open_store
from conduit.stores._base import Snapshot

PRICES = {"cheap": (1e-6, 0.0), "dear": (1e-5, 0.0)}
QUALITY = {"cheap": 0.6, "dear": 0.9}
TEXT = "x" * 400
BUDGET = Preferences(budget=0.3, latency=0.0)


def _router(url: str, **kw: Any) -> Router:
    return Router(
        ["cheap", "dear"],
        bandit_algorithm="ucb1",
        seed=0,
        prices=PRICES,
        state_store=url,
        sync_interval=3600.0,  # tests sync explicitly
        preferences=BUDGET,
        **kw,
    ).start()


def _serve(router: Router, n: int) -> None:
    for _ in range(n):
        d = router.route_sync(TEXT)
        m = d.selected_model
        router.update_sync(d.decision_id, quality=QUALITY[m], cost=d.scores[m].cost)


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_two_replicas_converge_on_one_controller(url: str, routers: list[Router]) -> None:
    a, b = _router(url), _router(url)
    routers += [a, b]
    _serve(a, 200)
    _serve(b, 100)
    a.sync()
    b.sync()
    a.sync()  # a now holds b's learning too
    ta, tb = a.stats().targets["budget=0.3"], b.stats().targets["budget=0.3"]
    assert ta.decisions == tb.decisions == 300
    assert ta.cost_weight == pytest.approx(tb.cost_weight)
    assert ta.realised == pytest.approx(tb.realised)
    # the shared weight is the start plus both replicas' steps
    start = math.log(BUDGET.cost)
    steps_a = a._targets.sums()["budget=0.3"]["steps"]
    assert math.log(ta.cost_weight) == pytest.approx(start + steps_a)
    # and what the store says matches
    store = open_store(url)
    try:
        snapshot = store.pull()
        assert snapshot is not None
        shown = snapshot.summary()["targets"]["budget=0.3"]
    finally:
        store.close()
    assert shown["decisions"] == 300
    assert shown["cost_weight"] == pytest.approx(ta.cost_weight)
    assert shown["realised"] == pytest.approx(ta.realised)


def test_a_restarted_replica_resumes_the_controller(url: str, routers: list[Router]) -> None:
    a = _router(url)
    _serve(a, 300)
    a.sync()
    weight = a.stats().targets["budget=0.3"].cost_weight
    assert weight != pytest.approx(BUDGET.cost)  # it moved
    a.close()
    b = _router(url)
    routers.append(b)
    t = b.stats().targets["budget=0.3"]
    assert t.decisions == 300 and t.cost_weight == pytest.approx(weight)
    # the budget keeps being met from where it was
    _serve(b, 300)
    b.sync()
    assert b.stats().targets["budget=0.3"].realised == pytest.approx(0.3 * 1e-3, rel=0.15)


def test_a_state_without_shared_targets_still_loads(url: str, routers: list[Router]) -> None:
    """A store written before targets were shared holds no "targets" part."""
    a = _router(url)
    _serve(a, 10)
    a.close()
    store = open_store(url)
    try:
        snapshot = store.pull()
        assert snapshot is not None
        legacy = Snapshot(
            snapshot.meta,
            {p: snapshot.sums[p] for p in ("bandit", "outcomes")},
            snapshot.revision,
            snapshot.updated,
            snapshot.replicas,
        )
        store._update(store.namespace, lambda _: legacy.encode())
        assert "targets" not in decode(store._read(store.namespace) or "")["sums"]
    finally:
        store.close()
    b = _router(url)
    routers.append(b)
    _serve(b, 10)
    b.sync()
    assert b.stats().targets["budget=0.3"].decisions == 10
    assert b.stats().total_decisions == 20


@pytest.mark.parametrize(
    "delta",
    [
        {"nonsense=1": {}},
        {"budget=0.3": {"steps": 1.0}},
        {"budget=0.3": {k: math.nan for k in Targets().sums().get("x", {}) or ["steps"]}},
    ],
)
def test_a_malformed_shared_delta_is_refused(delta: dict[str, Any]) -> None:
    router = Router(["cheap", "dear"], bandit_algorithm="ucb1")
    with pytest.raises(StateError, match="target"):
        router.merge_delta({"bandit": {}, "outcomes": {}, "targets": delta})
