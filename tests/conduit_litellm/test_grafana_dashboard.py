"""docs/grafana-conduit.json: importable as is, and every query names what Conduit exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conduit import Router
from conduit.metrics import Metrics

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-conduit.json"
PROMQL_WORDS = {"by", "without", "sum", "rate", "increase", "max", "histogram_quantile"}


def exported() -> dict[str, set[str]]:
    """Every sample name Conduit's metrics expose, with its label names, once each part of
    them (decisions, exploration, feedback of every kind and source, the store) has data."""
    router = Router(
        ["small", "large"],
        bandit_algorithm="epsilon_greedy",
        bandit_params={"epsilon": 0.9},
        embedding_backend="hashing",
        state_store="memory://grafana-test",
        seed=0,
    )
    metrics = Metrics()
    metrics.watch(router)
    try:
        for i in range(30):
            decision = router.route_sync(f"question {i}")
            metrics.decision(decision, model_group="chat")
            good = 0.9 if decision.selected_model == "large" else 0.1
            router.update_sync(decision.decision_id, quality=good, cost=0.001, latency=0.4)
            for source in ("automatic", "explicit"):
                metrics.feedback(
                    decision.decision_id,
                    ["quality", "cost", "latency"],
                    quality=0.5,
                    cost=0.001,
                    latency=0.4,
                    source=source,
                )
        assert router.store_sync is not None
        router.store_sync.sync_now()
        text = metrics.exposition().decode()
    finally:
        router.close()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (target["expr"], target.get("legendFormat", ""))
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def test_the_dashboard_is_importable_as_is() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert board["uid"] and board["title"] and board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]


def test_every_query_names_a_metric_and_labels_conduit_exports() -> None:
    samples = exported()
    for expr, legend in queries():
        names = set(re.findall(r"\bconduit_[a-z_]+\b", expr))
        assert names, expr
        unknown = names - set(samples)
        assert not unknown, (expr, unknown)
        used = set()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            used |= {label.strip() for label in group.split(",") if label.strip()}
        for matcher in re.findall(r"\{([^}]*)\}", expr):
            used |= set(re.findall(r"([a-zA-Z_]+)\s*[!=]~?", matcher))
        used |= set(re.findall(r"\{\{\s*([a-zA-Z_]+)\s*\}\}", legend)) - PROMQL_WORDS
        for name in names:
            assert used <= samples[name], (expr, name, used - samples[name])


def test_the_check_catches_a_wrong_label() -> None:
    samples = exported()
    assert "model" in samples["conduit_decisions_total"]
    assert "deployment" not in samples["conduit_decisions_total"]
    assert "conduit_decisions_per_model" not in samples
