from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conduit.replay._loop import load, replay, sweep
from conduit.replay._report import ReplayResult, SweepResult, format_replay, format_sweep

WriteLog = Callable[..., Path]


@pytest.fixture
def results(write_log: WriteLog, two_models: list[Any]) -> tuple[ReplayResult, SweepResult]:
    data = load(write_log(two_models * 30), embedding_backend="hashing")
    return replay(data, algorithm="hybrid", seed=0), sweep(data, algorithm="ucb1", seed=0)


def test_replay_json_schema(results: tuple[ReplayResult, SweepResult]) -> None:
    out = json.loads(json.dumps(results[0].to_json()))  # plain JSON values only
    assert {"n", "policy", "baselines", "models", "seed", "source", "learning_curve"} <= set(out)
    assert out["n"] == 120
    policy = out["policy"]
    assert {"mean_quality", "mean_cost", "share", "regret_vs_oracle", "switch_at"} <= set(policy)
    assert set(policy["share"]) == {"strong", "weak"}
    assert policy["switch_at"] == 101
    b = out["baselines"]
    assert {"oracle", "best_single", "cheapest", "random"} <= set(b)
    assert b["best_single"] == {"model": "strong", "mean_quality": 0.75, "mean_cost": 0.01}
    assert b["cheapest"]["model"] == "weak"
    assert set(b["oracle"]) == {"mean_quality", "mean_cost"} == set(b["random"])
    assert b["oracle"]["mean_quality"] == 1.0
    curve = out["learning_curve"]
    assert curve["window"] == 12 and len(curve["step"]) == len(curve["mean_quality"]) == 120


def test_sweep_json_schema(results: tuple[ReplayResult, SweepResult]) -> None:
    out = json.loads(json.dumps(results[1].to_json()))
    assert {"curve", "apgr", "cpt50", "cpt80", "strong", "weak"} <= set(out)
    point = out["curve"][0]
    assert set(point) == {"cost_weight", "mean_quality", "mean_cost", "strong_share", "pgr"}
    assert 0.0 <= out["cpt50"] <= out["cpt80"] <= 1.0
    assert (out["strong"], out["weak"]) == ("strong", "weak")


def test_replay_table_names_every_policy(results: tuple[ReplayResult, SweepResult]) -> None:
    text = format_replay(results[0])
    lines = text.splitlines()
    assert lines[0].startswith("log.jsonl: 120 queries, 2 models, policy hybrid")
    for name in ("conduit (hybrid)", "oracle (best per query)", "random model"):
        assert any(line.startswith(name) for line in lines), name
    strong = next(line for line in lines if line.startswith("strong (best single)"))
    assert "0.750" in strong and "$0.010000" in strong and "100.0%" in strong
    weak = next(line for line in lines if line.startswith("weak (cheapest)"))
    assert "0.250" in weak and "10.0%" in weak
    assert "phase switch at query 101" in text
    assert f"regret vs oracle: {results[0].policy.regret_vs_oracle:.3f}" in text


def test_sweep_table_gives_apgr_and_cpt(results: tuple[ReplayResult, SweepResult]) -> None:
    s = results[1]
    text = format_sweep(s)
    assert f"APGR {s.apgr:.3f} (random routing: 0.500)" in text
    assert s.cpt50 is not None and f"CPT(50%) {100 * s.cpt50:.1f}%" in text
    assert len([line for line in text.splitlines() if line[:1].isdigit()]) == len(s.points)


def test_unknown_costs_print_as_unknown(write_log: WriteLog) -> None:
    data = load(write_log([{"a": (1.0, None), "b": (0.0, None)}] * 3), embedding_backend="hashing")
    text = format_replay(replay(data, algorithm="ucb1"))
    assert "unknown" in text and "$" not in text
    sweep_text = format_sweep(sweep(data, algorithm="ucb1", cost_weights=[1.0]))
    assert "APGR" in sweep_text  # two models of different quality
