"""conduit.metrics: names, labels and values after real routed and fed-back LiteLLM requests
against the simulator; the cardinality cap; the HTTP exposition, scraped and parsed."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conduit import ConfigurationError, MissingDependencyError, Router
from conduit._counters import routing_saved
from conduit._types import ModelScore, Preferences, RoutingDecision
from conduit.metrics import OTHER, UNKNOWN, Metrics, as_metrics
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator, quality_of
from conduit_litellm import ConduitRoutingPlugin, ConduitRoutingStrategy, _compat

from .stores.test_sync import FlakyStore

pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def restore_callbacks() -> Iterator[None]:
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries


@pytest.fixture(autouse=True)
async def close_litellm_clients() -> AsyncIterator[None]:
    yield
    await litellm.close_litellm_async_clients()  # type: ignore[attr-defined,no-untyped-call]


def parse(text: str) -> Samples:
    """Every sample of a text exposition; fails on anything Prometheus could not parse."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: Counter[str] = Counter()
    for (n, ls), v in samples.items():
        if n == name:
            out[dict(ls)[label]] += v
    return dict(out)


def scores(**utility_exploration: tuple[float, float]) -> dict[str, ModelScore]:
    return {
        m: ModelScore(utility=u, quality=u - b, exploration=b, cost=None, latency=None)
        for m, (u, b) in utility_exploration.items()
    }


def decision(
    selected: str, table: dict[str, ModelScore], decision_id: str = "", exploring: bool = False
) -> RoutingDecision:
    return RoutingDecision(
        exploring=exploring,
        decision_id=decision_id or uuid.uuid4().hex,
        selected_model=selected,
        confidence=1.0,
        propensity=1.0,
        scores=table,
        reason="test",
        algorithm="test",
    )


# -- the metrics alone ----------------------------------------------------------------------------
def test_names_follow_prometheus_conventions() -> None:
    router = Router(["a", "b"], bandit_algorithm="ucb1", embedding_backend="hashing", seed=0)
    metrics = Metrics()
    metrics.watch(router)
    d = router.route_sync("What is 2 + 2?")
    metrics.decision(d, model_group="chat", preferences=Preferences.of("cost"))
    learned = router.update_sync(d.decision_id, quality=1.0, cost=0.002, latency=0.4)
    metrics.feedback(d.decision_id, learned, quality=1.0, cost=0.002, latency=0.4)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    for name, family in families.items():
        assert name.startswith("conduit_"), name
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {f"{name}_total", f"{name}_created"}
    assert families["conduit_feedback_latency_seconds"].type == "histogram"
    assert families["conduit_feedback_cost_dollars"].type == "histogram"
    assert families["conduit_feedback_lag_seconds"].type == "histogram"
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"model", "model_group", "preference", "kind", "source", "le"}, labels
    samples = parse(metrics.exposition().decode())
    assert total(samples, "conduit_decisions_total", preference="cost", model_group="chat") == 1
    assert total(samples, "conduit_feedback_total", source="automatic") == 3
    assert total(samples, "conduit_model_quality_mean", model=d.selected_model) == 1.0
    assert total(samples, "conduit_model_cost_mean_dollars", model=d.selected_model) == 0.002
    # its whole outcome arrived: nothing is pending
    assert total(samples, "conduit_pending_decisions") == router.stats().pending == 0


def test_quality_labels_by_source_judge_spending_and_savings_are_read_from_the_router() -> None:
    router = Router(["a", "b"], bandit_algorithm="ucb1", embedding_backend="hashing", seed=0)
    metrics = Metrics()
    metrics.watch(router)
    for i, source in enumerate(["explicit", "judge", "judge", "shadow", "regeneration"]):
        d = router.route_sync(f"question {i}")
        router.update_sync(d.decision_id, quality=1.0, cost=0.001 * (i + 1), source=source)
    router.count("no_signal", 4)
    router.count("judge_cost", 0.125)
    samples = parse(metrics.exposition().decode())
    labels = by_label(samples, "conduit_quality_labels_total", "source")
    assert labels == {
        "explicit": 1, "judge": 2, "shadow": 1, "regeneration": 1, "automatic": 0, "none": 4
    }  # fmt: skip
    assert total(samples, "conduit_judge_spent_dollars_total") == 0.125
    saved = router.stats()
    assert total(samples, "conduit_routing_saved_dollars") == pytest.approx(
        routing_saved(saved) or 0.0
    )


@pytest.mark.parametrize("exploring", [False, True])
def test_exploration_is_counted_from_the_decision(exploring: bool) -> None:
    """The router decides what exploring is (with the query's quality weight); the metric
    counts its verdict rather than guessing it again from the scores."""
    metrics = Metrics()
    table = scores(a=(0.9, 0.5), b=(0.6, 0.0))  # exploring by unweighted scores alone
    metrics.decision(decision("a", table, exploring=exploring), model_group="g")
    assert (
        metrics.value("conduit_decisions_total", model="a", model_group="g", preference="balanced")
        == 1.0
    )
    explored = metrics.value("conduit_exploration_decisions_total", model="a", model_group="g")
    assert (explored or 0.0) == (1.0 if exploring else 0.0)


def test_exploration_agrees_with_the_routers_reason() -> None:
    router = Router(
        [f"m{i}" for i in range(4)], bandit_algorithm="ucb1", embedding_backend="hashing", seed=1
    )
    metrics = Metrics()
    explored = 0
    weights = Preferences(quality=3.0, cost=0.5, latency=0.1)  # not the scores' unit weight
    for i in range(40):
        d = router.route_sync(f"question {i}", preferences=weights if i % 2 else None)
        metrics.decision(d)
        assert ("exploring" in d.reason) == d.exploring
        explored += d.exploring
        router.update_sync(d.decision_id, quality=(i % 3) / 2)
    assert explored > 0
    samples = parse(metrics.exposition().decode())
    assert total(samples, "conduit_exploration_decisions_total") == explored
    assert total(samples, "conduit_decisions_total") == 40


def test_label_cardinality_is_capped() -> None:
    metrics = Metrics(max_models=3, max_groups=2)
    models = [f"model-{i}" for i in range(10)]
    router = Router(models, bandit_algorithm="random", embedding_backend="hashing", seed=0)
    metrics.watch(router)
    for i, model in enumerate(models):
        d = decision(model, scores(**{model: (0.5, 0.0)}), f"d{i}")
        metrics.decision(d, model_group=f"group-{i}")
        metrics.feedback(d.decision_id, {"quality"}, quality=0.5, source="explicit")
        router.update_sync(router.route_sync(f"q{i}").decision_id, quality=0.5)
    samples = parse(metrics.exposition().decode())
    decided = by_label(samples, "conduit_decisions_total", "model")
    assert decided == {"model-0": 1, "model-1": 1, "model-2": 1, OTHER: 7}
    assert by_label(samples, "conduit_decisions_total", "model_group") == {
        "group-0": 1,
        "group-1": 1,
        OTHER: 8,
    }
    assert set(by_label(samples, "conduit_feedback_quality_count", "model")) == {
        "model-0",
        "model-1",
        "model-2",
        OTHER,
    }
    # the learned means are gauges, which cannot be summed into "other": past the cap, none
    gauged = set(by_label(samples, "conduit_model_quality_mean", "model"))
    assert gauged <= {"model-0", "model-1", "model-2"}
    series = {ls for (n, ls), _ in samples.items() if n.startswith("conduit_")}
    assert len(series) < 120  # ten models and ten groups did not become a hundred series


def test_feedback_for_an_unseen_decision_is_counted_without_a_model_or_lag() -> None:
    metrics = Metrics()
    metrics.feedback("never-seen", {"quality", "cost"}, quality=0.5, cost=0.01, source="explicit")
    assert metrics.value("conduit_feedback_total", kind="cost", source="explicit") == 1.0
    assert metrics.value("conduit_feedback_quality_count", model=UNKNOWN) == 1.0
    assert metrics.value("conduit_feedback_lag_seconds_count", source="explicit") is None


def test_only_recent_decisions_are_remembered() -> None:
    metrics = Metrics(tracked_decisions=5)
    for i in range(20):
        metrics.decision(decision("a", scores(a=(0.5, 0.0)), f"d{i}"))
    assert len(metrics._decisions) == 5
    metrics.feedback("d0", {"quality"}, quality=1.0)
    metrics.feedback("d19", {"quality"}, quality=1.0)
    assert metrics.value("conduit_feedback_quality_count", model=UNKNOWN) == 1.0
    assert metrics.value("conduit_feedback_quality_count", model="a") == 1.0


def test_a_failing_update_never_reaches_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    metrics._decided.labels = broken  # type: ignore[method-assign]
    for _ in range(3):
        metrics.decision(decision("a", scores(a=(0.5, 0.0))))
    assert sum("metrics update failed" in r.getMessage() for r in caplog.records) == 1


def test_store_sync_errors_and_lag(tmp_path: Any) -> None:
    store = FlakyStore()
    router = Router(
        ["a", "b"], embedding_backend="hashing", seed=0, state_store=store, sync_interval=0.02
    ).start()
    metrics = Metrics()
    metrics.watch(router)
    sync = router.store_sync
    assert sync is not None
    try:
        deadline = time.monotonic() + 10
        while (metrics.value("conduit_store_syncs_total") or 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert metrics.value("conduit_store_sync_errors_total") == 0
        assert (metrics.value("conduit_store_sync_lag_seconds") or 0) < 5
        store.down = True
        while (metrics.value("conduit_store_sync_errors_total") or 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first = metrics.value("conduit_store_sync_lag_seconds") or 0.0
        time.sleep(0.1)
        assert (metrics.value("conduit_store_sync_lag_seconds") or 0.0) >= first + 0.09
        store.down = False
        while sync.down_since is not None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert (metrics.value("conduit_store_sync_lag_seconds") or 0.0) < first
        assert metrics.value("conduit_store_sync_errors_total") == sync.failures
    finally:
        router.close()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_models": 0}, "max_models"),
        ({"max_groups": True}, "max_groups"),
        ({"tracked_decisions": 1.5}, "tracked_decisions"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        Metrics(**kwargs)


def test_as_metrics() -> None:
    given = Metrics()
    assert as_metrics(given) is given
    assert as_metrics(False) is None
    with pytest.raises(ConfigurationError, match="metrics must be"):
        as_metrics("yes")  # type: ignore[arg-type]


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[metrics\]'"):
        Metrics()


# -- through LiteLLM, against the simulator -------------------------------------------------------
GROUPS = {
    "cheap": ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat"),
    "smart": ("gpt-4-1106-preview", "claude-v2"),
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(shipped_log(), seed=0) as simulator:
        yield simulator
        close_sync_clients(simulator.base_url)


def close_sync_clients(base_url: str) -> None:
    """Close LiteLLM's cached sync OpenAI clients of ``base_url`` (the async ones are closed
    per test); left open, their sockets are reported unclosed at exit."""
    import openai

    cached = getattr(litellm.in_memory_llm_clients_cache, "cache_dict", {})
    for client in list(cached.values()):
        if isinstance(client, openai.OpenAI) and str(client.base_url).startswith(base_url):
            client.close()


def model_list(sim: Simulator) -> list[dict[str, Any]]:
    return [
        {
            "model_name": group,
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": sim.base_url,
                "api_key": "sk-dummy",
                "input_cost_per_token": sim.price_per_token(model),
                "output_cost_per_token": sim.price_per_token(model),
            },
            "model_info": {"id": model},
        }
        for group, models in GROUPS.items()
        for model in models
    ]


def handled(feedback: Any) -> float:
    stats = feedback.stats()
    return float(stats["learned"])


async def settle(feedback: Any, events: int, timeout: float = 30.0) -> None:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    deadline = time.monotonic() + timeout
    while handled(feedback) < events and time.monotonic() < deadline:
        await GLOBAL_LOGGING_WORKER.flush()
        await asyncio.sleep(0.01)
    assert handled(feedback) == events, feedback.stats()


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


async def test_routed_and_fed_back_requests_through_litellm(sim: Simulator) -> None:
    records = read_log(shipped_log(), limit=24)
    assert all(m in sim.models for ms in GROUPS.values() for m in ms)
    router = litellm.Router(model_list=model_list(sim), num_retries=0)
    strategy = ConduitRoutingStrategy(
        scope="group", seed=0, embedding_backend="hashing", metrics=True
    )
    ConduitRoutingStrategy.setup_strategy(router, strategy)
    qualities: dict[str, list[float]] = {}
    groups: Counter[str] = Counter()
    prefs: Counter[str] = Counter()
    try:
        for i, record in enumerate(records):
            group = "cheap" if i % 3 else "smart"
            preference = ("balanced", "quality", "cost")[i % 3]
            kwargs: dict[str, Any] = {
                "model": group,
                "messages": [{"role": "user", "content": record.prompt}],
                "metadata": {"conduit_preferences": preference},
            }
            if i % 2:
                response = await router.acompletion(**kwargs)
            else:
                response = await asyncio.to_thread(router.completion, **kwargs)
            quality = quality_of(response)
            assert quality is not None
            assert strategy.record_feedback(response, quality=quality) == {"quality"}
            qualities.setdefault(response._hidden_params["model_id"], []).append(quality)
            groups[group] += 1
            prefs[preference] += 1
        n = len(records)
        # cost and latency of every call come from LiteLLM's success events
        await settle(strategy.feedback, n)
        server = strategy.serve_metrics(port=0)
        content_type, text = scrape(server.url)
    finally:
        strategy.cleanup()
    assert content_type.startswith("text/plain")
    samples = parse(text)
    engine = strategy.conduit_router
    assert engine is not None
    stats = engine.stats()
    assert by_label(samples, "conduit_decisions_total", "model") == {
        m: s.decisions for m, s in stats.models.items() if s.decisions
    }
    assert by_label(samples, "conduit_decisions_total", "model_group") == dict(groups)
    assert by_label(samples, "conduit_decisions_total", "preference") == dict(prefs)
    for kind in ("cost", "latency"):
        assert total(samples, "conduit_feedback_total", kind=kind, source="automatic") == n
    assert total(samples, "conduit_feedback_total", kind="quality", source="explicit") == n
    assert total(samples, "conduit_feedback_total", kind="quality", source="automatic") == 0
    for model, values in qualities.items():
        assert total(samples, "conduit_feedback_quality_count", model=model) == len(values)
        assert total(samples, "conduit_feedback_quality_sum", model=model) == pytest.approx(
            sum(values)
        )
        mean = stats.models[model].mean_quality
        assert total(samples, "conduit_model_quality_mean", model=model) == pytest.approx(mean)
        assert total(samples, "conduit_feedback_cost_dollars_count", model=model) == len(values)
        assert total(samples, "conduit_feedback_cost_dollars_sum", model=model) > 0
    lag = total(samples, "conduit_feedback_lag_seconds_count", source="explicit")
    assert lag == n
    assert 0 < total(samples, "conduit_feedback_lag_seconds_sum", source="explicit") < 60
    assert total(samples, "conduit_pending_decisions") == stats.pending
    explored = total(samples, "conduit_exploration_decisions_total")
    assert 0 < explored <= n  # the cold start explores each group's untried models


def test_serve_metrics_needs_metrics() -> None:
    strategy = ConduitRoutingStrategy(embedding_backend="hashing")
    with pytest.raises(ConfigurationError, match="metrics=True"):
        strategy.serve_metrics()
    strategy.cleanup()


async def test_plugin_metrics_in_its_endpoint_and_litellms_registry(sim: Simulator) -> None:
    deployments = [d for d in model_list(sim) if d["model_name"] == "cheap"]
    plugin = ConduitRoutingPlugin(embedding_backend="hashing", seed=0, metrics_port=0)
    second = ConduitRoutingPlugin(embedding_backend="hashing", metrics=True)  # names taken: warns
    try:
        assert plugin.metrics is not None and plugin.metrics_server is not None
        router = litellm.Router(model_list=deployments, plugins=[plugin], num_retries=0)
        for record in read_log(shipped_log(), limit=6):
            await router.acompletion(
                model="cheap", messages=[{"role": "user", "content": record.prompt}]
            )
        await settle(plugin.feedback, 6)
        _, text = scrape(plugin.metrics_server.url)
        samples = parse(text)
        assert by_label(samples, "conduit_decisions_total", "model_group") == {"cheap": 6}
        assert total(samples, "conduit_feedback_total", kind="cost") == 6
        # what the proxy's own /metrics (LiteLLM's prometheus callback) serves
        default = parse(generate_latest(REGISTRY).decode())
        assert total(default, "conduit_decisions_total") == 6
    finally:
        second.cleanup()
        plugin.cleanup()
    assert not any(f.name.startswith("conduit_") for f in REGISTRY.collect())
