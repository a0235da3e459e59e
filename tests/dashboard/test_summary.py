"""The summary behind ``conduit stats`` and the dashboard, checked against the replays."""

from __future__ import annotations

import json
import math
import time
import uuid

import pytest

from conduit._errors import ConfigurationError
from conduit.dashboard._summary import (
    CURVE_POINTS,
    format_summary,
    summarize,
)
from conduit.stores import HistoryRecord, Store, open_store
from conduit.stores._base import QUERY_KINDS

from .conftest import ROWS, Filled


def test_totals_and_shares_match_the_replays(filled: Filled, store: Store) -> None:
    summary = summarize(store)
    n = 2 * ROWS
    assert summary.total_decisions == n and summary.total_feedback == n
    assert summary.algorithm == "hybrid" and summary.history_rows == n
    assert math.isclose(sum(m.share for m in summary.models), 1.0)
    by_model = {m.model: m for m in summary.models}
    for model in by_model:  # each replay's share of its ROWS queries, added up
        expected = sum(round(r.policy.share[model] * ROWS) for r in filled.results.values())
        assert by_model[model].decisions == expected, model
    decisions = [m.decisions for m in summary.models]
    assert decisions == sorted(decisions, reverse=True)
    spent = sum(r.policy.mean_cost * ROWS for r in filled.results.values() if r.policy.mean_cost)
    assert math.isclose(summary.total_cost, spent, rel_tol=1e-9)


def test_savings_are_against_the_dearest_model_by_default(store: Store) -> None:
    """Not the model of highest mean quality: after a replay that may be a cheap one
    (Yi-34B gave -23 %), and nobody would otherwise send everything to it."""
    summary = summarize(store)
    savings = summary.savings
    assert savings is not None
    dearest = max(summary.models, key=lambda m: m.mean_cost or 0.0)
    assert all(m.mean_cost is not None for m in summary.models)
    assert savings.baseline == dearest.model
    assert savings.baseline_quality == dearest.mean_quality
    best = dearest
    assert savings.decisions == 2 * ROWS  # every replayed decision has a known cost
    assert best.mean_cost is not None
    assert math.isclose(savings.baseline_cost, best.mean_cost * 2 * ROWS)
    assert math.isclose(savings.saved, savings.baseline_cost - summary.total_cost)
    assert savings.percent is not None
    assert math.isclose(savings.percent, 100 * savings.saved / savings.baseline_cost)
    # The history holds every decision, so the cumulative curve ends at the same number.
    curve = summary.savings_curve
    assert 2 <= len(curve) <= CURVE_POINTS
    assert math.isclose(curve[-1][1], savings.saved, rel_tol=1e-6, abs_tol=1e-9)
    assert [t for t, _ in curve] == sorted(t for t, _ in curve)


def test_savings_against_the_baseline_model_asked_for(store: Store) -> None:
    cheapest = min(summarize(store).models, key=lambda m: m.mean_cost or 0.0)
    assert cheapest.mean_cost is not None
    summary = summarize(store, baseline_model=cheapest.model)
    savings = summary.savings
    assert savings is not None and savings.baseline == cheapest.model
    assert math.isclose(savings.baseline_cost, cheapest.mean_cost * 2 * ROWS)
    assert savings.saved < 0  # routing to dearer models too cost more than the cheapest alone
    assert f"against always {cheapest.model} (the baseline asked for)" == summary.savings_note
    with pytest.raises(ConfigurationError, match="unknown baseline model 'nope'; the models"):
        summarize(store, baseline_model="nope")


def test_no_savings_before_any_cost_is_known() -> None:
    summary = summarize(open_store("memory://"))
    assert summary.savings is None and summary.savings_curve == ()


def test_history_views_count_every_decision(store: Store) -> None:
    summary = summarize(store)
    n = 2 * ROWS
    timeline = summary.timeline
    assert len(timeline.edges) >= 2
    assert all(len(row) == len(timeline.edges) - 1 for row in timeline.counts.values())
    by_model = {m.model: m.decisions for m in summary.models}
    assert {m: sum(row) for m, row in timeline.counts.items()} == {
        m: d for m, d in by_model.items() if d
    }
    assert set(summary.by_preference) == {"balanced", "cost"}
    assert [sum(g.values()) for g in summary.by_preference.values()] == [ROWS, ROWS]
    assert set(summary.by_kind) <= set(QUERY_KINDS)
    assert sum(sum(g.values()) for g in summary.by_kind.values()) == n
    assert summary.explained == n
    records = store.history(limit=n)
    exploring = sum(bool(e and e.exploring) for e in (r.explain() for r in records))
    assert summary.exploration_share == exploring / n
    assert 0 < exploring < n


def test_recent_decisions_carry_their_reasons_but_no_prompt(store: Store) -> None:
    summary = summarize(store, recent=5)
    assert len(summary.recent) == 5
    newest = store.history(limit=5)
    assert [r.decision_id for r in summary.recent] == [r.decision_id for r in newest]
    for shown, record in zip(summary.recent, newest, strict=True):
        explanation = record.explain()
        assert explanation is not None and shown.reason == explanation.reason
        assert shown.preset == "cost" and shown.prompt is None  # prompts were not kept


def test_prompts_show_only_when_the_store_kept_them() -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}?store_prompts=true")
    long = "Explain " + "why " * 100
    store.write_history(
        [
            HistoryRecord("d1", "default", 1.0, model="m", prompt=long),
            HistoryRecord("d2", "default", 2.0, model="m"),
        ]
    )
    recent = {r.decision_id: r for r in summarize(store).recent}
    assert recent["d1"].prompt is not None and recent["d1"].prompt.startswith("Explain why")
    assert len(recent["d1"].prompt) == 160 and recent["d1"].prompt.endswith("…")
    assert recent["d2"].prompt is None


def test_history_without_state_still_summarises() -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    store.write_history(
        [
            HistoryRecord("d1", "default", 10.0, model="a", quality=1.0, cost=0.01),
            HistoryRecord("d2", "default", 20.0, model="a", quality=0.0),
            HistoryRecord("d3", "default", 30.0, model="b", cost=0.002, latency=1.5),
            HistoryRecord("d4", "default", 40.0, model="b", explanation="{not json"),
        ]
    )
    summary = summarize(store)
    lines = {m.model: m for m in summary.models}
    assert (lines["a"].decisions, lines["a"].feedback, lines["a"].mean_quality) == (2, 2, 0.5)
    assert (lines["b"].mean_cost, lines["b"].mean_latency) == (0.002, 1.5)
    assert summary.savings is None and "no learned state" in summary.savings_note
    assert summary.total_cost == pytest.approx(0.012)
    assert summary.explained == 0 and summary.exploration_share is None
    assert summary.recent[0].decision_id == "d4" and summary.recent[0].reason is None
    assert summary.by_preference == {"unknown": {"a": 2, "b": 2}}


def test_an_empty_store_says_so() -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}?namespace=fresh")
    summary = summarize(store)
    assert (summary.total_decisions, summary.models, summary.recent) == (0, (), ())
    assert summary.timeline.edges == ()
    assert format_summary(summary).endswith("namespace 'fresh': nothing learned or recorded yet")


def test_json_is_plain_and_finite(store: Store) -> None:
    payload = summarize(store).to_json()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload
    assert payload["namespace"] == "default" and len(payload["recent"]) == 20
    assert time.time() - payload["generated"] < 60


def test_the_terminal_summary(store: Store) -> None:
    summary = summarize(store, recent=3)
    text = format_summary(summary)
    savings = summary.savings
    assert savings is not None
    assert f"hybrid, {2 * ROWS} decisions" in text
    for m in summary.models:
        assert m.model in text
    assert f"against always {savings.baseline}" in text
    assert f"{100 * (summary.exploration_share or 0):.1f}% of the last {2 * ROWS}" in text
    assert text.count("\n      ") == 3  # one reason line per recent decision
    assert summary.recent[0].decision_id[:12] in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"history_limit": -1}, "history_limit"),
        ({"recent": 1.5}, "recent"),
        ({"baseline_model": ""}, "baseline_model"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        summarize(open_store("memory://"), **kwargs)  # type: ignore[arg-type]


def test_quality_sources_and_judge_cost_come_from_the_stored_counters(
    filled: Filled, store: Store
) -> None:
    summary = summarize(store)
    sources = summary.quality_sources
    assert sources is not None  # the replays' labels are a person's: explicit
    assert sources.labels["explicit"] == summary.total_feedback == 2 * ROWS
    assert sources.labels["judge"] == 0 and sources.judge_calls == 0
    assert "quality labels by source: explicit 600, judge 0" in format_summary(summary)


def judged_store() -> Store:
    from conduit import Router

    url = f"memory://{uuid.uuid4().hex}"
    router = Router(["cheap", "dear"], embedding_backend="hashing", seed=0, state_store=url)
    router.start()
    for i in range(6):
        d = router.route_sync(f"question {i}")
        cost = 0.001 if d.selected_model == "cheap" else 0.1
        router.update_sync(d.decision_id, quality=0.5, cost=cost, source="judge")
    counts = {"judge_cost": 0.02, "judge_calls": 6, "judge_paused_budget": 3}
    counts.update(judge_garbage=1, judge_timeouts=2, no_signal=9)
    for name, amount in counts.items():
        router.count(name, amount)
    router.close()
    return open_store(url)


def test_the_judges_cost_is_reported_next_to_what_routing_saved() -> None:
    with judged_store() as store:
        summary = summarize(store)
    sources, savings = summary.quality_sources, summary.savings
    assert sources is not None and savings is not None and savings.saved > 0
    assert sources.labels == {
        "explicit": 0, "judge": 6, "shadow": 0, "regeneration": 0, "automatic": 0, "none": 9
    }  # fmt: skip
    assert (sources.judge_calls, sources.judge_paused_budget) == (6, 3)
    assert (sources.judge_garbage, sources.judge_dropped) == (1, 3)
    assert sources.judge_share_of_saved == pytest.approx(0.02 / savings.saved)
    text = format_summary(summary)
    assert "judge: $0.0200 over 6 calls (" in text
    assert "paused by budget 3, by a full queue 0; dropped 3 (1 bad outputs)" in text
    assert summary.to_json()["quality_sources"]["labels"]["judge"] == 6
