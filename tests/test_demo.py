from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from conduit._demo import (
    DEFAULT_CONCURRENCY,
    DEFAULT_N,
    MODEL_GROUP,
    DemoResult,
    add_demo_arguments,
    comparison,
    model_list,
    pick_queries,
    run,
    run_demo,
)
from conduit._errors import ConfigurationError
from conduit.replay._report import Level
from conduit.replay.log import read_log, shipped_log

# LiteLLM imports its GitHub Copilot provider lazily; pydantic warns about its TypedDicts.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly. qualifier:UserWarning")


def require_strategy() -> None:
    """Fail, clearly, while conduit_litellm.ConduitRoutingStrategy is not there yet."""
    try:
        import conduit_litellm
    except ImportError as exc:
        pytest.fail(f"conduit_litellm does not import ({exc}); the demo needs it")
    assert hasattr(conduit_litellm, "ConduitRoutingStrategy"), (
        "conduit_litellm.ConduitRoutingStrategy (the usage guide's API) is not written yet"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conduit demo")
    add_demo_arguments(p)
    return p


def test_pick_queries_is_a_seeded_shuffle_that_reshuffles_past_the_end() -> None:
    records = read_log(shipped_log(), limit=50)
    first = pick_queries(records, 120, seed=3)
    assert [r.id for r in first] == [r.id for r in pick_queries(records, 120, seed=3)]
    assert [r.id for r in first] != [r.id for r in pick_queries(records, 120, seed=4)]
    for start in (0, 50):
        assert {r.id for r in first[start : start + 50]} == {r.id for r in records}
    assert len({r.id for r in first[100:]}) == 20


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_pick_queries_refuses_bad_counts(n: object) -> None:
    with pytest.raises(ConfigurationError, match="n must be an int >= 1"):
        pick_queries(read_log(shipped_log(), limit=5), n, seed=0)  # type: ignore[arg-type]


def test_model_list_puts_every_model_in_one_priced_group() -> None:
    deployments = model_list("http://127.0.0.1:9/v1", {"a/x": 1e-6, "b": 2e-6})
    assert [d["model_info"]["id"] for d in deployments] == ["a/x", "b"]
    assert {d["model_name"] for d in deployments} == {MODEL_GROUP}
    params = deployments[0]["litellm_params"]
    assert params["model"] == "openai/a/x" and params["api_base"] == "http://127.0.0.1:9/v1"
    assert params["input_cost_per_token"] == params["output_cost_per_token"] == 1e-6


def result(**changes: object) -> DemoResult:
    fields: dict[str, object] = {
        "source": "log.jsonl",
        "n": 4,
        "seed": 0,
        "models": ("a", "b"),
        "conduit": Level(0.75, 0.25),
        "strongest": Level(1.0, 1.0, model="b"),
        "oracle": Level(1.0, 0.1),
        "share": {"a": 0.75, "b": 0.25},
        "litellm_spend": 1.0,
        "failed": 0,
        "learned": 4,
        "seconds": 2.0,
    }
    return DemoResult(**(fields | changes))  # type: ignore[arg-type]


def test_cost_saving_and_table() -> None:
    summary = result()
    assert summary.cost_saving == pytest.approx(0.75)
    table = summary.table()
    assert re.search(r"Conduit \(hybrid\)\s+0\.750\s+0\.250000", table)
    assert re.search(r"always b\s+1\.000\s+1\.000000", table)
    assert "cost saving vs always the strongest model: 75.0%" in table
    assert "quality kept: 75.0%" in table
    shares = re.findall(r"^\s+(\S+)\s+([\d.]+)%$", table, re.MULTILINE)
    assert shares == [("a", "75.0"), ("b", "25.0")]  # largest share first
    assert "4 answered, 0 failed, 4 learned from feedback, in 2.0 s (2.0 queries/s)" in table
    assert result(strongest=Level(1.0, None, model="b")).cost_saving == 0.0


def test_to_json_round_trips_through_json() -> None:
    payload = json.loads(json.dumps(result().to_json()))
    assert payload["conduit"] == {"mean_quality": 0.75, "mean_cost": 0.25}
    assert payload["strongest"]["model"] == "b" and payload["cost_saving"] == pytest.approx(0.75)
    assert payload["share"] == {"a": 0.75, "b": 0.25} and payload["learned"] == 4


def test_arguments_and_defaults() -> None:
    args = parser().parse_args([])
    assert (args.data, args.n, args.seed, args.json) == (None, DEFAULT_N, 0, None)
    assert args.concurrency == DEFAULT_CONCURRENCY and not args.no_progress
    args = parser().parse_args(["--n", "50", "--seed", "2", "--json", "out.json"])
    assert (args.n, args.seed, args.json) == (50, 2, Path("out.json"))


@pytest.mark.parametrize("option", ["--n", "--concurrency"])
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_counts_must_be_positive(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args([option, value])
    err = capsys.readouterr().err
    assert "must be at least 1" in err or "expected a positive integer, got 'many'" in err


async def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="concurrency must be an int >= 1"):
        await run(n=1, concurrency=0)


async def test_demo_routes_through_litellm_and_learns_from_feedback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_strategy()
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)  # offline, with no provider key at all
    records = {r.id: r for r in read_log(shipped_log())}
    summary = await run(n=150, seed=1, concurrency=8, progress=False)
    assert summary.n == 150 and summary.failed == 0
    assert summary.algorithm == "hybrid"  # ConduitRoutingStrategy(use_hybrid=True)
    assert summary.learned == 150, "every record_feedback call should have taught the router"
    queries = pick_queries(list(records.values()), 150, seed=1)
    # What the demo reports is exactly the log's outcome of each chosen model.
    quality = [q.outcomes[m].quality for q, m in zip(queries, summary.choices, strict=True)]
    cost = [q.outcomes[m].cost or 0.0 for q, m in zip(queries, summary.choices, strict=True)]
    assert summary.conduit.mean_quality == pytest.approx(sum(quality) / 150)
    assert summary.conduit.mean_cost == pytest.approx(sum(cost) / 150)
    # LiteLLM priced every answer from the deployments' prices: near the logged spend.
    assert summary.litellm_spend == pytest.approx(sum(cost), rel=0.25)
    counts = Counter(summary.choices)
    assert sum(summary.share.values()) == pytest.approx(1.0)
    assert len(counts) >= 5, "the hybrid policy starts by trying the models"
    assert summary.strongest.model == "gpt-4-1106-preview"
    assert summary.conduit.mean_cost is not None and summary.strongest.mean_cost is not None
    assert summary.conduit.mean_cost < summary.strongest.mean_cost
    assert summary.oracle.mean_quality >= summary.strongest.mean_quality


def test_command_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_strategy()
    out = tmp_path / "demo.json"
    args = parser().parse_args(["--n", "40", "--json", str(out), "--no-progress"])
    assert run_demo(args) == 0
    printed = capsys.readouterr().out
    assert "cost saving vs always the strongest model" in printed
    assert "40 answered, 0 failed" in printed
    assert json.loads(out.read_text())["n"] == 40


def test_feedback_modes_parse() -> None:
    args = parser().parse_args(["--feedback", "explicit,judge,none", "--judge-rate", "0.1"])
    assert args.feedback == ("explicit", "judge", "none") and args.judge_rate == 0.1
    assert parser().parse_args([]).feedback == ("explicit",)
    with pytest.raises(SystemExit):
        parser().parse_args(["--feedback", "telepathy"])


async def test_demo_with_a_judge_learns_from_its_grades_only() -> None:
    require_strategy()
    judged = await run(n=60, seed=2, concurrency=4, progress=False, feedback="judge",
                       judge_rate=0.25, judge_noise=0.0)  # fmt: skip
    assert judged.failed == 0 and judged.learned == 0  # no record_feedback at all
    # 60 answers at rate 0.25: 15 sampled, give or take one (systematic sampling, weighted
    # by uncertainty; conduit.judge's documented guarantee), each graded and learned
    assert abs(judged.judged - 15) <= 1 and judged.judge_cost > 0
    silent = await run(n=20, seed=2, concurrency=4, progress=False, feedback="none")
    assert silent.judged == 0 and silent.judge_cost == 0 and silent.learned == 0
    table = comparison([judged, silent])
    assert "judge" in table and "none" in table
