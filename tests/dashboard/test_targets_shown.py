"""Targets in ``conduit stats``, ``conduit state show`` and the dashboard: goal against realised."""

from __future__ import annotations

import json
import uuid

import pytest

from conduit import Router
from conduit._types import Preferences
from conduit.cli import main
from conduit.dashboard._summary import format_summary, summarize
from conduit.stores import open_store

PRICES = {"cheap": (1e-6, 0.0), "dear": (1e-5, 0.0)}
QUALITY = {"cheap": 0.6, "dear": 0.9}
TEXT = "x" * 400  # cheap $0.0001, dear $0.001 a query


@pytest.fixture(scope="module")
def url() -> str:
    """A store where a budget of 30 % and a quality floor of 0.95 were steered."""
    url = f"memory://{uuid.uuid4().hex}"
    router = Router(
        ["cheap", "dear"],
        bandit_algorithm="ucb1",
        seed=0,
        prices=PRICES,
        state_store=url,
        sync_interval=3600.0,
    ).start()
    for prefs in (Preferences(budget=0.3, latency=0.0), Preferences(quality_floor=0.95)):
        for _ in range(400):
            d = router.route_sync(TEXT, preferences=prefs)
            m = d.selected_model
            router.update_sync(d.decision_id, quality=QUALITY[m], cost=d.scores[m].cost)
    router.close()
    return url


def test_the_summary_holds_goal_and_realised_per_target(url: str) -> None:
    with open_store(url) as store:
        summary = summarize(store)
    targets = {t.target: t for t in summary.targets}
    assert set(targets) == {"budget=0.3", "quality_floor=0.95"}
    budget, floor = targets["budget=0.3"], targets["quality_floor=0.95"]
    assert budget.decisions == floor.decisions == 400
    assert budget.goal == pytest.approx(0.3e-3)
    assert budget.realised == pytest.approx(0.3e-3, rel=0.15) and budget.met
    assert floor.goal is not None and floor.realised is not None
    assert floor.met == (floor.realised >= floor.goal - 0.01)
    assert budget.cost_share == pytest.approx(0.3, rel=0.15)
    assert budget.cost_weight > 0 and floor.cost_weight > 0
    shown = json.loads(json.dumps(summary.to_json()))["targets"]
    assert [t["target"] for t in shown] == [t.target for t in summary.targets]
    text = format_summary(summary)
    assert "budget=0.3" in text and "quality_floor=0.95" in text and "cost weight" in text


def test_conduit_stats_and_state_show_print_the_targets(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--store", url, "--recent", "0"]) == 0
    out = capsys.readouterr().out
    assert "budget=0.3" in out and "quality_floor=0.95" in out
    assert main(["stats", "--store", url, "--json"]) == 0
    targets = json.loads(capsys.readouterr().out)["targets"]
    assert {t["target"] for t in targets} == {"budget=0.3", "quality_floor=0.95"}
    assert main(["state", "show", "--url", url]) == 0
    assert "target budget=0.3: 400 decisions" in capsys.readouterr().out


def test_the_dashboard_page_has_a_targets_table() -> None:
    from importlib.resources import files

    page = files("conduit.dashboard").joinpath("static/index.html").read_text()
    script = files("conduit.dashboard").joinpath("static/dashboard.js").read_text()
    assert 'id="targets"' in page and "function targets(data)" in script
