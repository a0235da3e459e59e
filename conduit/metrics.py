"""Prometheus metrics: what the router decides, what it learns, and how its store keeps up.

A :class:`Metrics` owns its own ``CollectorRegistry``, so several routers (and
tests) never clash in prometheus_client's global one. Events update in-process
counters and histograms (a dict look-up and an add: nothing blocks, nothing
raises into a request); the learned means, pending decisions and the store's
sync state are read from the router only when the metrics are scraped.

Labels are bounded: ``model`` (an arm: a deployment id or provider model),
``model_group``, ``preference`` (a preset name or ``custom``), ``kind``
(quality, cost, latency), ``source`` (automatic, explicit, judge, shadow,
regeneration) and ``event`` (what happened to an answer offered to the judge).
Never a prompt, a decision id or a user. At most ``max_models`` models and ``max_groups``
groups get labels of their own; later ones are counted as ``other``.

Exploration share, in PromQL::

    sum(rate(conduit_exploration_decisions_total[5m])) / sum(rate(conduit_decisions_total[5m]))

>>> from conduit import Router
>>> router = Router(["small", "large"], bandit_algorithm="ucb1", embedding_backend="hashing")
>>> metrics = Metrics()
>>> metrics.watch(router)
>>> decision = router.route_sync("What is 2 + 2?")
>>> metrics.decision(decision, model_group="chat")
>>> metrics.value("conduit_decisions_total", model=decision.selected_model, model_group="chat",
...               preference="balanced")
1.0
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from cachetools import FIFOCache

from conduit import _validate
from conduit._counters import routing_saved, source_counts
from conduit._errors import ConfigurationError, MissingDependencyError
from conduit._types import PRESETS, Preferences, RouterStats, RoutingDecision

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from conduit.engines.router import Router

__all__ = [
    "OTHER",
    "UNKNOWN",
    "JudgeEvent",
    "Metrics",
    "MetricsServer",
    "Source",
    "as_metrics",
    "preference_label",
]

logger = logging.getLogger("conduit.metrics")

#: The label of every model or group past the cap.
OTHER = "other"
#: The model label of feedback for a decision these metrics did not see (made before they
#: were attached, or forgotten after ``tracked_decisions`` newer ones).
UNKNOWN = "unknown"
Source = Literal["automatic", "explicit", "judge", "shadow", "regeneration"]
#: What happened to an answer offered to the judge (``conduit_judge_events_total``).
JudgeEvent = Literal[
    "sampled", "graded", "garbage", "errors", "timeouts", "paused_budget", "paused_queue"
]
RouterSource = Callable[[], "Router | None"]

QUALITY_BUCKETS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
COST_BUCKETS = (1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: From a failure reported at once to a human judgement a day later.
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise MissingDependencyError(
            "Conduit's metrics need prometheus-client: pip install 'conduit[metrics]'"
        ) from exc
    return prometheus_client


def preference_label(preferences: Preferences | None) -> str:
    """The preset's name, or ``custom`` (a bounded label for any weights).

    >>> preference_label(PRESETS["cost"]), preference_label(Preferences(quality=0.3))
    ('cost', 'custom')
    """
    if preferences is None:
        return "balanced"
    for name, preset in PRESETS.items():
        if preset == preferences:
            return name
    return "custom"


class _Bounded:
    """At most ``limit`` distinct label values, first come first served; the rest are OTHER."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: str) -> bool:
        if value in self._seen:
            return True
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return True
            return value in self._seen

    def label(self, value: str) -> str:
        return value if self.admit(value) else OTHER


class MetricsServer:
    """prometheus_client's HTTP exposition of one registry, in a daemon thread.

    Any path answers with the metrics (``/metrics`` by convention); ``?name[]=``
    selects some.
    """

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        _validate.integer("metrics port", port, low=0, high=65535)
        try:
            self._httpd, self._thread = _prometheus().start_http_server(
                port, addr=host, registry=registry
            )
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self.host = host
        logger.info("Conduit metrics on %s", self.url)

    @property
    def port(self) -> int:
        return int(self._httpd.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port; safe to repeat."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


class Metrics:
    """Conduit's Prometheus metrics for one router, in a registry of their own.

    ``max_models`` and ``max_groups`` cap the distinct ``model`` and
    ``model_group`` labels; ``tracked_decisions`` is how many recent decisions
    are remembered (id -> time and model, about 150 bytes each) to give feedback
    its model label and its lag.
    """

    def __init__(
        self,
        *,
        max_models: int = 100,
        max_groups: int = 100,
        tracked_decisions: int = 100_000,
    ) -> None:
        for name, value in (
            ("max_models", max_models),
            ("max_groups", max_groups),
            ("tracked_decisions", tracked_decisions),
        ):
            _validate.integer(name, value, low=1)
        prom = _prometheus()
        self.registry: CollectorRegistry = prom.CollectorRegistry()
        self.max_models = max_models
        self.max_groups = max_groups
        self.tracked_decisions = tracked_decisions
        self._models = _Bounded(max_models)
        self._groups = _Bounded(max_groups)
        self._decisions: FIFOCache[str, tuple[float, str]] = FIFOCache(tracked_decisions)
        self._lock = threading.Lock()
        self._router: RouterSource = lambda: None
        self._in_default = False
        self._warned = False
        reg = self.registry
        self._decided = prom.Counter(
            "conduit_decisions",
            "Routing decisions, by chosen model, requested model group and preference preset.",
            ["model", "model_group", "preference"],
            registry=reg,
        )
        self._explored = prom.Counter(
            "conduit_exploration_decisions",
            "Decisions that chose a model other than the best by mean alone (exploring).",
            ["model", "model_group"],
            registry=reg,
        )
        self._feedback = prom.Counter(
            "conduit_feedback",
            "Outcome parts learned, by kind (quality, cost, latency) and source "
            "(automatic: LiteLLM's callbacks; explicit: record_feedback or the endpoint).",
            ["kind", "source"],
            registry=reg,
        )
        self._lag = prom.Histogram(
            "conduit_feedback_lag_seconds",
            "Seconds from a decision to an outcome part learned for it.",
            ["source"],
            buckets=LAG_BUCKETS,
            registry=reg,
        )
        self._quality = prom.Histogram(
            "conduit_feedback_quality",
            "Quality learned per model (0 to 1).",
            ["model"],
            buckets=QUALITY_BUCKETS,
            registry=reg,
        )
        self._cost = prom.Histogram(
            "conduit_feedback_cost_dollars",
            "Cost learned per model, in US dollars per request.",
            ["model"],
            buckets=COST_BUCKETS,
            registry=reg,
        )
        self._latency = prom.Histogram(
            "conduit_feedback_latency_seconds",
            "Latency learned per model, in seconds.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._judge_events = prom.Counter(
            "conduit_judge_events",
            "Answers offered to the judge, by what happened: sampled, graded, or dropped "
            "(garbage output, errors, timeouts) or not sampled because sampling was paused "
            "(paused_budget, paused_queue).",
            ["event"],
            registry=reg,
        )
        self._judge_calls = prom.Counter(
            "conduit_judge_calls",
            "Calls the judge made (grades, pairwise verdicts and shadow reference answers).",
            registry=reg,
        )
        self._judge_cost = prom.Counter(
            "conduit_judge_cost_dollars",
            "What judging cost, in US dollars (judge calls and shadow reference answers).",
            registry=reg,
        )
        self._judge_grades = prom.Histogram(
            "conduit_judge_grade_quality",
            "Qualities the judge gave, by source (judge: a graded answer; shadow: a pairwise "
            "comparison with the reference model).",
            ["source"],
            buckets=QUALITY_BUCKETS,
            registry=reg,
        )
        self._observe = {"quality": self._quality, "cost": self._cost, "latency": self._latency}
        reg.register(_Learned(self, prom))

    # -- wiring ------------------------------------------------------------------------------
    def watch(self, router: Router | RouterSource) -> None:
        """Read learned means, pending decisions and store sync state from ``router`` (or a
        callable returning it, None while it is not built) when scraped."""
        self._router = router if callable(router) else (lambda: router)

    def serve(self, *, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve the metrics over HTTP (``port=0``: a free one, see ``.url``)."""
        return MetricsServer(self.registry, host=host, port=port)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, for an endpoint of your own."""
        return bytes(_prometheus().generate_latest(self.registry))

    def expose_in_default_registry(self) -> None:
        """Also show these metrics in prometheus_client's global ``REGISTRY``, the one the
        LiteLLM proxy's ``/metrics`` serves (with its ``prometheus`` callback on)."""
        if self._in_default:
            return
        try:
            _prometheus().REGISTRY.register(self.registry)
        except ValueError as exc:  # the names are taken: another Metrics is there
            raise ConfigurationError(
                f"prometheus_client's default registry already has Conduit metrics ({exc})"
            ) from exc
        self._in_default = True

    def close(self) -> None:
        """Leave prometheus_client's default registry, if in it; safe to repeat."""
        if self._in_default:
            _prometheus().REGISTRY.unregister(self.registry)
            self._in_default = False

    # -- events ------------------------------------------------------------------------------
    def decision(
        self,
        decision: RoutingDecision,
        *,
        model_group: str | None = None,
        preferences: Preferences | None = None,
    ) -> None:
        """Count one routing decision; remember its time and model for its feedback."""
        try:
            model = self._models.label(decision.selected_model)
            group = self._groups.label(model_group) if model_group else "none"
            self._decided.labels(model, group, preference_label(preferences)).inc()
            if decision.exploring:  # the router's own verdict, made with the query's weights
                self._explored.labels(model, group).inc()
            with self._lock:
                self._decisions[decision.decision_id] = (time.monotonic(), model)
        except Exception:  # metrics must never fail the request they describe
            self._warn_once()

    def feedback(
        self,
        decision_id: str,
        learned: Iterable[str],
        *,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        source: Source = "automatic",
    ) -> None:
        """Count the outcome parts ``learned`` now for ``decision_id`` and observe their values."""
        try:
            parts = [p for p in learned if p in self._observe]
            if not parts:
                return
            with self._lock:
                seen = self._decisions.get(decision_id)
            model = seen[1] if seen is not None else UNKNOWN
            values = {"quality": quality, "cost": cost, "latency": latency}
            for part in parts:
                self._feedback.labels(part, source).inc()
                value = values[part]
                if value is not None and math.isfinite(value):
                    self._observe[part].labels(model).observe(value)
            if seen is not None:
                self._lag.labels(source).observe(max(time.monotonic() - seen[0], 0.0))
        except Exception:  # metrics must never fail the request they describe
            self._warn_once()

    def judge(
        self,
        event: JudgeEvent,
        *,
        calls: int = 0,
        cost: float | None = None,
        quality: float | None = None,
        source: Literal["judge", "shadow"] = "judge",
    ) -> None:
        """Count one judge event, its calls and cost, and the quality it gave (if graded)."""
        try:
            self._judge_events.labels(event).inc()
            if calls:
                self._judge_calls.inc(calls)
            if cost is not None and math.isfinite(cost) and cost > 0:
                self._judge_cost.inc(cost)
            if quality is not None and math.isfinite(quality):
                self._judge_grades.labels(source).observe(quality)
        except Exception:  # metrics must never fail the request they describe
            self._warn_once()

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("Conduit metrics update failed (reported once)", exc_info=True)

    # -- reading -----------------------------------------------------------------------------
    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (a sample name such as ``conduit_decisions_total``)."""
        return self.registry.get_sample_value(name, labels)

    def __repr__(self) -> str:
        return f"Metrics(max_models={self.max_models}, max_groups={self.max_groups})"


def _signal_families(core: Any, stats: RouterStats) -> Iterator[Metric]:
    """Quality labels by source, the judge's stored totals and what routing saved: read from
    the router's counters, which its store sums across replicas."""
    counters = stats.counters
    labels = core.CounterMetricFamily(
        "conduit_quality_labels",
        "Quality labels learned by source since the router's state began (explicit, judge, "
        "shadow, regeneration, automatic; none: answers no automatic signal graded).",
        labels=["source"],
    )
    for source, n in source_counts(counters).items():
        labels.add_metric([source], n)
    yield labels
    if counters:
        yield core.CounterMetricFamily(
            "conduit_judge_spent_dollars",
            "What judging cost since the router's state began, in US dollars (all replicas).",
            value=counters.get("judge_cost", 0.0),
        )
    saved = routing_saved(stats)
    if saved is not None:
        yield core.GaugeMetricFamily(
            "conduit_routing_saved_dollars",
            "US dollars routing saved against sending every decision to the dearest model.",
            value=saved,
        )


class _Learned:
    """Scrape-time gauges read from the router: learned means, pending, store sync."""

    def __init__(self, metrics: Metrics, prom: Any) -> None:
        self._metrics = metrics
        self._core = prom.metrics_core

    def collect(self) -> Iterator[Metric]:
        router = self._metrics._router()
        if router is None:
            return
        core, m = self._core, self._metrics
        stats = router.stats()
        means = {
            "quality": core.GaugeMetricFamily(
                "conduit_model_quality_mean", "Mean quality learned per model.", labels=["model"]
            ),
            "cost": core.GaugeMetricFamily(
                "conduit_model_cost_mean_dollars",
                "Mean cost learned per model, US dollars per request.",
                labels=["model"],
            ),
            "latency": core.GaugeMetricFamily(
                "conduit_model_latency_mean_seconds",
                "Mean latency learned per model.",
                labels=["model"],
            ),
        }
        pulls = core.CounterMetricFamily(
            "conduit_model_decisions",
            "Decisions per model since the router's state began (restored and synced included).",
            labels=["model"],
        )
        for model, s in stats.models.items():
            if not m._models.admit(model):  # past the cap: a gauge cannot be summed into OTHER
                continue
            pulls.add_metric([model], s.decisions)
            for kind, value in (
                ("quality", s.mean_quality),
                ("cost", s.mean_cost),
                ("latency", s.mean_latency),
            ):
                if value is not None:
                    means[kind].add_metric([model], value)
        yield from means.values()
        yield pulls
        yield from _signal_families(core, stats)
        yield core.GaugeMetricFamily(
            "conduit_pending_decisions",
            "Decisions kept for feedback still to come (bounded, expiring).",
            value=stats.pending,
        )
        sync = router.store_sync
        if sync is None:
            return
        yield core.CounterMetricFamily(
            "conduit_store_syncs", "Successful syncs with the state store.", value=sync.syncs
        )
        yield core.CounterMetricFamily(
            "conduit_store_sync_errors",
            "Failed syncs with the state store (learning kept and retried).",
            value=sync.failures,
        )
        yield core.CounterMetricFamily(
            "conduit_store_history_dropped",
            "History records dropped because the backlog was full during an outage.",
            value=sync.dropped,
        )
        yield core.CounterMetricFamily(
            "conduit_store_state_lost",
            "Syncs that found the store had lost learning this replica pushed (re-seeded).",
            value=sync.state_lost,
        )
        yield core.GaugeMetricFamily(
            "conduit_store_sync_lag_seconds",
            "Seconds since the last successful sync with the state store.",
            value=max(time.monotonic() - sync.synced_at, 0.0),
        )


def as_metrics(value: bool | Metrics | None) -> Metrics | None:
    """``metrics=`` as the strategy and plugin take it: True builds one, False/None none.

    >>> as_metrics(None) is None, isinstance(as_metrics(True), Metrics)
    (True, True)
    """
    if value is None or value is False:
        return None
    if value is True:
        return Metrics()
    if isinstance(value, Metrics):
        return value
    raise ConfigurationError(f"metrics must be True, False or a Metrics, got {value!r}")
