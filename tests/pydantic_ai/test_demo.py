"""``conduit demo --via pydantic-ai``: the LiteLLM demo's queries and table, through PydanticAI."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest

from conduit._demo import add_demo_arguments, pick_queries, run_demo
from conduit.pydantic_ai._demo import run
from conduit.replay.log import read_log, shipped_log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conduit demo")
    add_demo_arguments(p)
    return p


def test_via_defaults_to_litellm_and_takes_pydantic_ai() -> None:
    assert parser().parse_args([]).via == "litellm"
    assert parser().parse_args(["--via", "pydantic-ai"]).via == "pydantic-ai"
    with pytest.raises(SystemExit):
        parser().parse_args(["--via", "langchain"])


async def test_demo_routes_through_pydantic_ai_and_learns_from_feedback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline, with no provider key at all
    n = 80
    summary = await run(n=n, seed=1, concurrency=8, progress=False)
    assert (summary.n, summary.failed, summary.learned) == (n, 0, n)
    assert summary.via == "PydanticAI" and summary.algorithm == "hybrid"
    queries = pick_queries(read_log(shipped_log()), n, seed=1)
    # What the demo reports is exactly the log's outcome of each chosen model.
    quality = [q.outcomes[m].quality for q, m in zip(queries, summary.choices, strict=True)]
    cost = [q.outcomes[m].cost or 0.0 for q, m in zip(queries, summary.choices, strict=True)]
    assert summary.conduit.mean_quality == pytest.approx(sum(quality) / n)
    assert summary.conduit.mean_cost == pytest.approx(sum(cost) / n)
    # ConduitModel priced every answer's usage at the simulator's price: near the logged spend.
    assert summary.litellm_spend == pytest.approx(sum(cost), rel=0.25)
    assert len(Counter(summary.choices)) >= 5, "the hybrid policy starts by trying the models"
    assert summary.strongest.model == "gpt-4-1106-preview"


def test_command_prints_the_same_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.json"
    args = parser().parse_args(
        ["--via", "pydantic-ai", "--n", "30", "--json", str(out), "--no-progress"]
    )
    assert run_demo(args) == 0
    printed = capsys.readouterr().out
    assert "Conduit through PydanticAI on 30 logged queries" in printed
    assert "cost saving vs always the strongest model" in printed
    assert "PydanticAI usage x price total: $" in printed
    assert "30 answered, 0 failed, 30 learned from feedback" in printed
    payload = json.loads(out.read_text())
    assert (payload["n"], payload["via"]) == (30, "PydanticAI")
