"""One contract suite, run against every store backend (memory, SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from conduit._errors import ConfigurationError, StateError
from conduit._state import encode
from conduit.engines._outcomes import KEYS
from conduit.stores import HistoryRecord, Meta, Store, Sums

META = Meta(algorithm="linucb", features="hashing:64", dim=2, params={"alpha": 0.5})


def delta(scale: float = 1.0, arm: str = "openai/gpt-4o", dim: int = 2) -> Sums:
    """One learner's statistics: A and b scaled, one count, every outcome sum = scale."""
    return {
        "bandit": {
            arm: {"A": np.eye(dim) * scale, "b": np.arange(dim) * scale, "n": np.array(1.0)}
        },
        "outcomes": {arm: {k: np.array(scale) for k in KEYS}},
    }


def test_empty_namespace_pulls_nothing(store: Store) -> None:
    assert store.pull() is None
    assert store.namespace not in store.namespaces()


def test_pushes_add_and_return_the_global_state(store: Store) -> None:
    first = store.push(delta(1.0), META)
    second = store.push(delta(2.0), META)
    pulled = store.pull()
    assert pulled is not None
    assert (first.revision, second.revision, pulled.revision) == (1, 2, 2)
    arm = pulled.sums["bandit"]["openai/gpt-4o"]
    np.testing.assert_allclose(arm["A"], np.eye(2) * 3.0)
    np.testing.assert_allclose(arm["b"], [0.0, 3.0])
    assert float(arm["n"]) == 2.0
    assert float(pulled.sums["outcomes"]["openai/gpt-4o"]["cost_sum"]) == 3.0
    assert pulled.meta == META
    assert store.namespace in store.namespaces()


def test_new_arms_are_added_and_others_untouched(store: Store) -> None:
    store.push(delta(1.0, arm="a"), META)
    result = store.push(delta(5.0, arm="b"), META)
    assert sorted(result.sums["bandit"]) == ["a", "b"]
    np.testing.assert_allclose(result.sums["bandit"]["a"]["A"], np.eye(2))
    np.testing.assert_allclose(result.sums["bandit"]["b"]["A"], np.eye(2) * 5.0)


def test_concurrent_pushers_lose_nothing(make_store: Callable[..., Store]) -> None:
    """8 threads, each with its own connection, push 15 deltas each; the sum is exact."""
    threads, pushes = 8, 15
    stores = [make_store() for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def pusher(i: int) -> None:
        try:
            barrier.wait()
            for j in range(pushes):
                stores[i].push(delta(float(i * pushes + j + 1)), META)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    workers = [threading.Thread(target=pusher, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    final = stores[0].pull()
    assert final is not None
    total = sum(range(1, threads * pushes + 1))
    arm = final.sums["bandit"]["openai/gpt-4o"]
    assert float(arm["n"]) == threads * pushes
    np.testing.assert_allclose(arm["A"], np.eye(2) * total)
    assert final.revision == threads * pushes


def test_a_retried_push_is_applied_once(store: Store) -> None:
    store.push(delta(1.0), META, replica="r1", seq=1)
    store.push(delta(1.0), META, replica="r1", seq=1)  # answer lost, sent again
    store.push(delta(1.0), META, replica="r2", seq=1)
    result = store.push(delta(1.0), META, replica="r1", seq=2)
    assert float(result.sums["bandit"]["openai/gpt-4o"]["n"]) == 3.0
    assert result.replicas["r1"][0] == 2


@pytest.mark.parametrize(
    ("meta", "pattern"),
    [
        (Meta(algorithm="thompson", features="hashing:64", dim=2), "algorithm='linucb'"),
        (
            Meta(algorithm="linucb", features="onnx:all-MiniLM-L6-v2", dim=2),
            "features='hashing:64'",
        ),
        (Meta(algorithm="linucb", features="hashing:64", dim=3), "dim=2"),
    ],
)
def test_a_foreign_router_is_refused(store: Store, meta: Meta, pattern: str) -> None:
    store.push(delta(1.0), META)
    with pytest.raises(StateError, match=pattern):
        store.push(delta(1.0), meta)
    after = store.pull()
    assert after is not None and after.revision == 1


@pytest.mark.parametrize(
    ("blob", "pattern"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else", "payload": {}}', "not a Conduit state"),
        (
            encode({"kind": "conduit-store-state"}).replace('"version":1', '"version":99'),
            "version 99 is not supported",
        ),
        (encode({"router": {}}), "not a Conduit store state"),
        (encode({"kind": "conduit-store-state", "meta": {}, "sums": {}}), "statistics"),
    ],
)
def test_corrupt_or_foreign_state_is_refused_and_left_in_place(
    store: Store, blob: str, pattern: str
) -> None:
    store._update(store.namespace, lambda _: blob)
    with pytest.raises(StateError, match=pattern):
        store.pull()
    with pytest.raises(StateError, match=pattern):
        store.push(delta(1.0), META)
    assert store._read(store.namespace) == blob


def test_a_tampered_state_fails_its_checksum(store: Store) -> None:
    store.push(delta(1.0), META)
    text = store._read(store.namespace)
    assert text is not None
    store._update(store.namespace, lambda _: text.replace('"linucb"', '"thompson"', 1))
    with pytest.raises(StateError, match="checksum"):
        store.pull()


def _decision(decision_id: str, t: float, namespace: str = "x", **kw: Any) -> HistoryRecord:
    return HistoryRecord(decision_id=decision_id, namespace=namespace, time=t, **kw)


def test_history_merges_outcomes_into_decisions(store: Store) -> None:
    ns = store.namespace
    store.write_history(
        [
            _decision(
                "d1",
                100.0,
                namespace=ns,
                model="m1",
                algorithm="linucb",
                propensity=1.0,
                confidence=0.7,
                pref_quality=1.0,
                pref_cost=0.5,
                pref_latency=0.1,
                prompt_hash="ab",
            ),
            _decision("d2", 101.0, namespace=ns, model="m2", propensity=0.5),
            _decision("d1", 150.0, namespace=ns, model="m1", cost=0.002, latency=1.5),
        ]
    )
    store.write_history([_decision("d1", 160.0, namespace=ns, model="m1", quality=0.9)])
    records = store.history(limit=10)
    assert [r.decision_id for r in records] == ["d2", "d1"]
    d1 = records[1]
    assert (d1.time, d1.model, d1.algorithm, d1.propensity, d1.confidence) == (
        100.0,
        "m1",
        "linucb",
        1.0,
        0.7,
    )
    assert (d1.quality, d1.cost, d1.latency, d1.prompt_hash, d1.prompt) == (
        0.9,
        0.002,
        1.5,
        "ab",
        None,
    )
    assert (d1.pref_quality, d1.pref_cost, d1.pref_latency) == (1.0, 0.5, 0.1)
    assert records[0].quality is None
    assert [r.decision_id for r in store.history(limit=1)] == ["d2"]
    assert store.history(limit=0) == []
    assert store.history(namespace=f"{ns}-other", limit=10) == []


def test_reset_forgets_state_and_history(store: Store) -> None:
    store.push(delta(1.0), META)
    store.write_history([_decision("d1", 1.0, namespace=store.namespace, model="m")])
    assert store.reset() is True
    assert store.pull() is None
    assert store.history(limit=10) == []
    assert store.namespace not in store.namespaces()
    assert store.reset() is False


def test_namespaces_are_independent(make_store: Callable[..., Store]) -> None:
    a = make_store()
    b = make_store(namespace=f"{a.namespace}-b")
    a.push(delta(1.0), META)
    b.push(delta(7.0, dim=1), Meta(algorithm="ucb1", features="none", dim=1))
    pulled_a, pulled_b = a.pull(), b.pull()
    assert pulled_a is not None and pulled_b is not None
    assert pulled_a.meta.algorithm == "linucb" and pulled_b.meta.algorithm == "ucb1"
    assert {a.namespace, b.namespace} <= set(a.namespaces())


def _explanation(decision_id: str) -> str:
    from conduit._types import PRESETS, Explanation, ModelScore, RoutingDecision

    score = ModelScore(utility=0.4, quality=0.5, bonus=0.1, cost=0.001, latency=None)
    decision = RoutingDecision(
        decision_id=decision_id,
        selected_model="m1",
        confidence=0.8,
        propensity=1.0,
        scores={"m1": score, "<script>": score},
        reason="ucb1: best score 0.400",
        algorithm="ucb1",
        excluded={"m2": "in denied_models"},
    )
    return Explanation.of(decision, PRESETS["cost"]).model_dump_json()


def test_history_keeps_explanations_and_kinds_and_finds_one_record(store: Store) -> None:
    ns = store.namespace
    text = _explanation("d1")
    store.write_history(
        [
            _decision("d1", 100.0, namespace=ns, model="m1", explanation=text, kind="math"),
            _decision("d2", 101.0, namespace=ns, model="m2"),
        ]
    )
    store.write_history([_decision("d1", 150.0, namespace=ns, model="m1", quality=0.25)])
    record = store.record("d1")
    assert record is not None
    assert (record.time, record.quality, record.kind, record.explanation) == (
        100.0,
        0.25,
        "math",
        text,
    )
    explanation = record.explain()
    assert explanation is not None and explanation.preset == "cost"
    assert explanation.excluded == {"m2": "in denied_models"} and "<script>" in explanation.scores
    other = store.record("d2")
    assert other is not None and other.explanation is None and other.explain() is None
    assert store.history(limit=1)[0].decision_id == "d2"
    assert store.record("unknown") is None
    assert store.record("d1", namespace=f"{ns}-other") is None
    with pytest.raises(ConfigurationError, match="decision_id"):
        store.record("")


def test_a_malformed_explanation_is_a_state_error(store: Store) -> None:
    ns = store.namespace
    store.write_history([_decision("d1", 1.0, namespace=ns, explanation='{"decision_id": 3')])
    record = store.record("d1")
    assert record is not None
    with pytest.raises(StateError, match="malformed explanation"):
        record.explain()
