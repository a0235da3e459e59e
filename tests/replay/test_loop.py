from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from conduit._errors import ConfigurationError, LogFormatError, StateError
from conduit._types import PRESETS, Preferences
from conduit.engines.router import Router
from conduit.replay import _loop as loop
from conduit.replay._loop import (
    DEFAULT_ALGORITHM,
    SWEEP_COST_WEIGHTS,
    ReplayData,
    baselines,
    load,
    replay,
    sweep,
)
from conduit.stores import open_store

WriteLog = Callable[..., Path]


@pytest.fixture
def three(write_log: WriteLog, three_models: list[Any]) -> ReplayData:
    return load(write_log(three_models), embedding_backend="hashing")


@pytest.fixture
def two(write_log: WriteLog, two_models: list[Any]) -> ReplayData:
    return load(write_log(two_models), embedding_backend="hashing")


def _many(n: int, seed: int = 0) -> list[dict[str, tuple[float, float | None]]]:
    """``n`` queries on which "good" is right 80% of the time, "bad" 40%, "ok" 60%."""
    rng = np.random.default_rng(seed)
    return [
        {
            "good": (float(rng.random() < 0.8), 0.010),
            "ok": (float(rng.random() < 0.6), 0.003),
            "bad": (float(rng.random() < 0.4), 0.001),
        }
        for _ in range(n)
    ]


class SpyRouter(Router):
    """A real Router that records what the replay shows it."""

    made: ClassVar[list[SpyRouter]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routed: list[tuple[str, str, str, Preferences]] = []  # (text, id, model, prefs)
        self.updates: list[tuple[str, dict[str, Any]]] = []
        SpyRouter.made.append(self)

    def route_sync(self, query: Any, **kwargs: Any) -> Any:
        decision = super().route_sync(query, **kwargs)
        self.routed.append(
            (query, decision.decision_id, decision.selected_model, kwargs["preferences"])
        )
        return decision

    def update_sync(self, decision_id: str, **kwargs: Any) -> frozenset[str]:
        self.updates.append((decision_id, kwargs))
        return super().update_sync(decision_id, **kwargs)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> type[SpyRouter]:
    SpyRouter.made = []
    monkeypatch.setattr(loop, "Router", SpyRouter)
    return SpyRouter


def test_default_algorithm_is_a_module_constant() -> None:
    assert DEFAULT_ALGORITHM == "hybrid"
    assert SWEEP_COST_WEIGHTS[0] == 0.0 and SWEEP_COST_WEIGHTS[-1] >= 10
    assert list(SWEEP_COST_WEIGHTS) == sorted(SWEEP_COST_WEIGHTS)


def test_load_holds_outcomes_as_arrays_and_every_feature(three: ReplayData) -> None:
    assert three.models == ("big", "mid", "small")
    assert len(three) == 4
    np.testing.assert_array_equal(three.quality[:, 1], [1.0, 0.0, 0.5, 1.0])
    assert np.isnan(three.cost[3, 1]) and three.cost[3, 2] == 0.001
    assert len(three.extractor.cache) == 4  # every prompt embedded up front
    assert three.source == "log.jsonl"


def test_baselines_by_hand(three: ReplayData) -> None:
    b = baselines(three)
    assert (b.oracle.mean_quality, b.oracle.mean_cost) == pytest.approx((0.875, 0.004))
    assert b.single["big"].mean_quality == pytest.approx(0.75)
    assert b.single["mid"].mean_quality == pytest.approx(0.625)
    assert b.single["mid"].mean_cost == pytest.approx(0.004)  # the unknown cost left out
    assert b.single["small"].mean_quality == pytest.approx(0.375)
    assert b.best_single.model == "big" and b.best_single.mean_cost == pytest.approx(0.010)
    assert b.cheapest is not None and b.cheapest.model == "small"
    assert b.random.mean_quality == pytest.approx((0.75 + 0.625 + 0.375) / 3)
    assert b.random.mean_cost == pytest.approx((0.010 + 0.004 + 0.001) / 3)


def test_best_single_tie_goes_to_the_cheaper(write_log: WriteLog) -> None:
    rows = [{"a": (1.0, 0.02), "b": (0.0, 0.01)}, {"a": (0.0, 0.02), "b": (1.0, 0.01)}]
    b = baselines(load(write_log(rows), embedding_backend="hashing"))
    assert b.best_single.model == "b"
    assert b.oracle.mean_quality == 1.0


def test_no_known_cost_means_no_cheapest(write_log: WriteLog) -> None:
    rows = [{"a": (1.0, None), "b": (0.0, None)}]
    b = baselines(load(write_log(rows), embedding_backend="hashing"))
    assert b.cheapest is None and b.random.mean_cost is None and b.oracle.mean_cost is None
    result = replay(load(write_log(rows), embedding_backend="hashing"), algorithm="ucb1")
    assert result.policy.mean_cost is None


def test_the_router_sees_only_the_chosen_models_outcome(
    spy: type[SpyRouter], write_log: WriteLog, three_models: list[Any]
) -> None:
    result = replay(
        write_log(three_models * 5), algorithm="linucb", seed=3, embedding_backend="hashing"
    )
    (router,) = spy.made
    assert len(router.routed) == len(router.updates) == 20
    by_text = {f"question {i}: what is {i} + {i}?": three_models[i % 4] for i in range(20)}
    qualities = []
    for (text, decision_id, model, _), (update_id, told) in zip(
        router.routed, router.updates, strict=True
    ):
        assert update_id == decision_id  # one update per decision, right after it
        quality, cost = by_text[text][model]
        assert told == {"quality": quality, "cost": cost}  # None where the log has no cost
        qualities.append(quality)
    assert result.policy.mean_quality == pytest.approx(np.mean(qualities))
    stats = router.stats()
    assert stats.total_feedback == 20
    assert {m: s.decisions for m, s in stats.models.items()} == {
        m: round(result.policy.share[m] * 20) for m in ("big", "mid", "small")
    }


def test_order_is_a_seeded_shuffle_and_limit_comes_first(
    spy: type[SpyRouter], write_log: WriteLog
) -> None:
    path = write_log(_many(30))
    replay(path, algorithm="ucb1", seed=5, limit=10, embedding_backend="hashing")
    seen = [text for text, *_ in spy.made[-1].routed]
    order = np.random.default_rng(5).permutation(10)
    assert seen == [f"question {i}: what is {i} + {i}?" for i in order]


def test_same_seed_same_result_other_seed_other_order(write_log: WriteLog) -> None:
    data = load(write_log(_many(60)), embedding_backend="hashing")
    first = replay(data, algorithm="contextual_thompson", seed=1).to_json()
    assert replay(data, algorithm="contextual_thompson", seed=1).to_json() == first
    assert replay(data, algorithm="contextual_thompson", seed=2).to_json() != first


def test_preferences_reach_every_query(spy: type[SpyRouter], three: ReplayData) -> None:
    replay(three, algorithm="ucb1")
    replay(three, algorithm="ucb1", preference="cost")
    replay(three, algorithm="ucb1", cost_weight=2.5)
    balanced, cost, weighted = ({p for *_, p in r.routed} for r in spy.made)
    assert balanced == {PRESETS["balanced"]} and cost == {PRESETS["cost"]}
    assert weighted == {Preferences(quality=1.0, cost=2.5, latency=0.0)}


def test_oracle_policy_matches_the_oracle_baseline(three: ReplayData) -> None:
    result = replay(three, algorithm="oracle")
    assert result.policy.mean_quality == pytest.approx(0.875)
    assert result.policy.regret_vs_oracle == pytest.approx(0.0)


def test_regret_and_share_by_hand(spy: type[SpyRouter], three: ReplayData) -> None:
    result = replay(three, algorithm="random", seed=4)
    models = [m for _, _, m, _ in spy.made[-1].routed]
    texts = [t for t, *_ in spy.made[-1].routed]
    quality = [
        three.quality[three.prompts.index(t), three.models.index(m)]
        for t, m in zip(texts, models, strict=True)
    ]
    assert result.policy.regret_vs_oracle == pytest.approx(0.875 - np.mean(quality))
    assert result.policy.share == {m: models.count(m) / 4 for m in three.models}
    assert sum(result.policy.share.values()) == pytest.approx(1.0)


def test_learning_curve_is_the_windowed_policy_quality(
    spy: type[SpyRouter], write_log: WriteLog
) -> None:
    data = load(write_log(_many(40)), embedding_backend="hashing")
    result = replay(data, algorithm="ucb1")
    routed = spy.made[-1].routed
    quality = [data.quality[data.prompts.index(t), data.models.index(m)] for t, _, m, _ in routed]
    curve = result.learning
    assert curve.window == 4 and curve.step == tuple(range(1, 41))
    assert curve.mean_quality[3] == pytest.approx(np.mean(quality[0:4]))
    assert curve.mean_quality[39] == pytest.approx(np.mean(quality[36:40]))
    assert curve.mean_quality[0] == quality[0]


def test_long_learning_curves_are_sampled(write_log: WriteLog) -> None:
    result = replay(write_log(_many(450)), algorithm="ucb1", embedding_backend="hashing")
    assert len(result.learning.step) == loop.CURVE_POINTS
    assert result.learning.step[0] == 1 and result.learning.step[-1] == 450
    assert result.learning.window == 45


def test_hybrid_switch_point_is_reported(write_log: WriteLog) -> None:
    data = load(write_log(_many(130)), embedding_backend="hashing")
    assert replay(data, algorithm="hybrid").policy.switch_at == 101  # switch_after=100 feedbacks
    assert replay(data, algorithm="linucb").policy.switch_at is None


def test_head_reuses_features(three: ReplayData) -> None:
    head = three.head(2)
    assert len(head) == 2 and head.extractor is three.extractor
    assert replay(three, limit=2, algorithm="ucb1").n == 2


def test_sweep_on_two_models_by_hand(two: ReplayData) -> None:
    # The oracle ignores cost: strong, strong, weak, strong at every weight -> quality 1.0,
    # strong share 0.75; q_strong 0.75, q_weak 0.25, so PGR = (1 - 0.25) / 0.5 = 1.5.
    result = sweep(two, algorithm="oracle", cost_weights=[0.0, 1.0, 10.0])
    assert (result.strong, result.weak) == ("strong", "weak")
    assert [p.cost_weight for p in result.points] == [0.0, 1.0, 10.0]
    for p in result.points:
        assert (p.mean_quality, p.strong_share, p.pgr) == pytest.approx((1.0, 0.75, 1.5))
        assert p.mean_cost == pytest.approx((3 * 0.010 + 0.001) / 4)
    # (0,0) (0.75,1.5) (1,1): 0.75*1.5/2 + 0.25*2.5/2 = 0.875
    assert result.apgr == pytest.approx(0.875)
    assert result.cpt50 == pytest.approx(0.5 / 1.5 * 0.75)
    assert result.cpt80 == pytest.approx(0.8 / 1.5 * 0.75)


def test_sweep_of_random_routing_has_apgr_near_one_half(write_log: WriteLog) -> None:
    rng = np.random.default_rng(7)
    rows = [
        {"s": (float(rng.random() < 0.8), 0.010), "w": (float(rng.random() < 0.5), 0.001)}
        for _ in range(400)
    ]
    result = sweep(write_log(rows), algorithm="random", embedding_backend="hashing")
    assert len(result.points) == len(SWEEP_COST_WEIGHTS)
    assert all(abs(p.strong_share - 0.5) < 0.1 for p in result.points)
    assert result.apgr is not None and abs(result.apgr - 0.5) < 0.1


def test_sweep_cost_weight_moves_a_learner_off_the_strong_model(write_log: WriteLog) -> None:
    rows = [{"s": (float(i % 5 != 0), 0.010), "w": (float(i % 2 == 0), 0.0001)} for i in range(300)]
    result = sweep(
        write_log(rows),
        algorithm="ucb1",
        cost_weights=[0.0, 10.0],
        refine=0,
        embedding_backend="hashing",
    )
    free, dear = result.points
    assert free.strong_share > 0.5 > dear.strong_share


def test_sweep_on_many_models_has_no_apgr(three: ReplayData) -> None:
    result = sweep(three, algorithm="ucb1", cost_weights=[0.5])
    assert result.apgr is None and result.cpt50 is None and result.cpt80 is None
    assert result.weak is None and result.points[0].pgr is None and result.strong == "big"


def test_the_shipped_log_is_the_default() -> None:
    result = replay(limit=30, algorithm="ucb1", embedding_backend="hashing")
    assert result.source == "routerbench-arc-winogrande.jsonl.gz" and len(result.models) == 11
    mmlu = load("routellm-mmlu.jsonl.gz", limit=5, embedding_backend="hashing")  # a shipped name
    assert sorted(mmlu.models) == ["gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"]


BAD_CALLS: list[tuple[Callable[..., Any], dict[str, Any], type[Exception], str]] = [
    (replay, {"algorithm": "nope"}, ConfigurationError, r"unknown algorithm 'nope'; choose one of"),
    (sweep, {"algorithm": "nope"}, ConfigurationError, r"unknown algorithm 'nope'"),
    (replay, {"limit": 0}, ConfigurationError, r"limit must be a positive int, got 0"),
    (load, {"limit": -2}, ConfigurationError, r"limit must be a positive int, got -2"),
    (replay, {"seed": -1}, ConfigurationError, r"seed must be an int >= 0, got -1"),
    (replay, {"seed": 1.5}, ConfigurationError, r"seed must be an int >= 0"),
    (replay, {"preference": "fast"}, ConfigurationError, r"unknown preference 'fast'"),
    (
        replay,
        {"cost_weight": -1.0},
        ConfigurationError,
        r"cost_weight must be a finite number in \[0, 100\]",
    ),
    (replay, {"cost_weight": float("nan")}, ConfigurationError, r"cost_weight must be a finite"),
    (replay, {"cost_weight": "1"}, ConfigurationError, r"cost_weight must be a number"),
    (replay, {"cost_weight": 1.0, "preference": "cost"}, ConfigurationError, "not both"),
    (sweep, {"cost_weights": []}, ConfigurationError, "cost_weights is empty"),
    (sweep, {"cost_weights": [0.5, 101]}, ConfigurationError, r"in \[0, 100\], got 101"),
    (replay, {"data": "no/such/log.jsonl"}, LogFormatError, r"log\.jsonl: no such file"),
    (replay, {"data": "nope.jsonl"}, LogFormatError, r"nope\.jsonl: no such file"),
    (replay, {"time_step": 0}, ConfigurationError, r"time_step must be a positive number"),
    (replay, {"time_step": float("inf")}, ConfigurationError, r"time_step must be a positive"),
]


@pytest.mark.parametrize(("fn", "kwargs", "error", "message"), BAD_CALLS)
def test_invalid_calls_fail_before_any_work(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_embedding(*args: Any, **kw: Any) -> Any:
        raise AssertionError("embedded before validating")

    if "data" not in kwargs:
        monkeypatch.setattr(loop, "make_embedder", no_embedding)
    with pytest.raises(error, match=message):
        fn(**{"embedding_backend": "hashing", **kwargs})


def test_sweep_refines_where_the_strong_share_jumps(write_log: WriteLog) -> None:
    rows = [{"s": (float(i % 5 != 0), 0.010), "w": (float(i % 2 == 0), 0.0001)} for i in range(300)]
    log = write_log(rows)
    coarse = sweep(
        log, algorithm="ucb1", cost_weights=[0.0, 10.0], refine=0, embedding_backend="hashing"
    )
    fine = sweep(
        log, algorithm="ucb1", cost_weights=[0.0, 10.0], refine=3, embedding_backend="hashing"
    )
    weights = [p.cost_weight for p in fine.points]
    assert len(coarse.points) == 2
    assert 2 < len(weights) <= 5
    assert weights == sorted(weights)
    assert 5.0 in weights  # the first bisection of the one big jump
    shares = [p.strong_share for p in fine.points]
    assert max(abs(a - b) for a, b in itertools.pairwise(shares)) < abs(shares[0] - shares[-1])


def test_sweep_refine_is_validated(write_log: WriteLog) -> None:
    log = write_log([{"s": (1.0, 0.01), "w": (0.0, 0.001)}] * 5)
    with pytest.raises(ConfigurationError, match="refine"):
        sweep(log, refine=-1, embedding_backend="hashing")


def test_a_replay_fills_a_store_as_production_traffic_would(write_log: WriteLog) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}?namespace=replayed")
    before = time.time()
    result = replay(
        write_log(_many(40)), algorithm="ucb1", store=store, time_step=30.0,
        embedding_backend="hashing",
    )  # fmt: skip
    state = store.pull()
    assert state is not None and state.meta.algorithm == "ucb1"
    models = state.summary()["models"]
    assert sum(m["decisions"] for m in models.values()) == 40
    assert sum(m["feedback"] for m in models.values()) == 40
    for model, share in result.policy.share.items():
        assert models[model]["decisions"] == round(share * 40)
    records = sorted(store.history(limit=100), key=lambda r: r.time)
    assert len(records) == 40
    times = [r.time for r in records]
    # synthetic times: one query every 30 s, the last one about now
    assert np.allclose(np.diff(times), 30.0)
    assert before - 40 * 30.0 <= times[0] and times[-1] <= time.time()
    assert all(r.quality is not None and r.cost is not None for r in records)
    for record in records:
        explanation = record.explain()
        assert explanation is not None and explanation.selected_model == record.model
    assert {r.kind for r in records} == {"math"}  # "question i: what is i + i?"
    store.close()


def test_a_store_of_another_router_is_refused_before_the_replay(
    write_log: WriteLog, spy: type[SpyRouter]
) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    replay(write_log(_many(5)), algorithm="ucb1", store=store, embedding_backend="hashing")
    with pytest.raises(StateError, match="algorithm='ucb1'"):
        replay(write_log(_many(5)), algorithm="linucb", store=store, embedding_backend="hashing")
    assert len(spy.made[-1].routed) == 0, "nothing was routed"
    store.close()


def test_a_second_replay_into_a_store_continues_after_the_first(write_log: WriteLog) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    log = write_log(_many(10))
    replay(log, algorithm="ucb1", store=store, time_step=5.0, embedding_backend="hashing")
    first = max(r.time for r in store.history(limit=100))
    replay(log, algorithm="ucb1", store=store, time_step=5.0, embedding_backend="hashing")
    times = sorted(r.time for r in store.history(limit=100))
    assert len(times) == 20 and times[10] == first + 5.0
    assert np.allclose(np.diff(times), 5.0)
    state = store.pull()
    assert state is not None  # the second replay added its learning to the first's
    assert sum(m["decisions"] for m in state.summary()["models"].values()) == 20
    store.close()
