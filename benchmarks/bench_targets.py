"""Budgets and quality floors on the shipped logs, against the offline cost-weight sweep.

    python benchmarks/bench_targets.py [--seeds 0 1 2] [--quick] [--json OUT]

For each shipped log (RouteLLM MMLU, RouterBench ARC+Winogrande), each seed:
- ``conduit replay --sweep`` (the cost-quality curve; each point's weight fixed in
  hindsight) gives the reference curve: its Pareto envelope, linearly interpolated.
- Budgets at 10 %, 20 %, 50 % of always-GPT-4's (the dearest model's) mean cost, met
  online by the router's controller. Met when the realised mean cost over the last
  80 % of the stream is within +-10 % of the budget, and the whole-stream quality is
  within 0.01 of the sweep curve at the whole-stream cost.
- Quality floors at 0.90 and 0.95 of the best model's quality (GPT-4 on both logs).
  Met when the whole-stream quality is >= the floor - 0.01 and its cost within
  10 % of the cheapest point of the sweep curve reaching that quality.
Same queries, order and seed for the sweep and the targets. ``--quick``: the first
3,000 MMLU queries instead of all 14,037.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import _common  # also the offline environment
import numpy as np

from conduit._types import Preferences
from conduit.replay import load, shipped_log, sweep
from conduit.replay._loop import DEFAULT_ALGORITHM, ReplayData, _replay_once

LOGS = ("routellm-mmlu.jsonl.gz", "routerbench-arc-winogrande.jsonl.gz")
BUDGETS = (0.1, 0.2, 0.5)
FLOORS = (0.90, 0.95)


def envelope(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's Pareto frontier: (cost, quality), cost rising, quality rising."""
    cost, quality = [], []
    for c, q in sorted(points):
        if not quality or q > quality[-1]:
            cost.append(c)
            quality.append(q)
    return np.array(cost), np.array(quality)


def quality_at(cost: float, curve: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.interp(cost, *curve))


def cost_for(quality: float, curve: tuple[np.ndarray, np.ndarray]) -> float | None:
    c, q = curve
    if quality > q[-1]:
        return None  # the sweep never reaches it
    return float(np.interp(quality, q, c))


def run(data: ReplayData, prefs: Preferences, seed: int) -> tuple[float, float, float, float]:
    """Whole-stream quality and cost, and the last 80 %'s, of one online replay."""
    trace = _replay_once(data, DEFAULT_ALGORITHM, prefs, seed, None)
    q = data.quality[trace.order, trace.chosen]
    c = data.cost[trace.order, trace.chosen]
    tail = slice(int(0.2 * q.size), None)
    return float(q.mean()), float(c.mean()), float(q[tail].mean()), float(c[tail].mean())


def bench_log(data: ReplayData, seeds: list[int], with_sweep: bool) -> dict[str, Any]:
    dear = int(np.nanargmax(np.nanmean(data.cost, axis=0)))
    dear_cost = float(np.nanmean(data.cost[:, dear]))
    best_quality = float(data.quality.mean(axis=0).max())
    out: dict[str, Any] = {
        "n": len(data),
        "dearest": data.models[dear],
        "dearest_cost": dear_cost,
        "dearest_quality": float(data.quality[:, dear].mean()),
        "best_quality": best_quality,
        "budgets": {},
        "floors": {},
    }
    for b in BUDGETS:
        goal = b * dear_cost
        rows = []
        for seed in seeds:
            prefs = Preferences(quality=1.0, cost=0.5, latency=0.0, budget=b)
            q, c, _, c_tail = run(data, prefs, seed)
            ratio = c_tail / goal
            rows.append(
                {"seed": seed, "quality": q, "cost": c, "tail_cost_vs_budget": ratio}
                | {"cost_met": abs(ratio - 1.0) <= 0.10}
            )
            print(f"  budget {b:.0%} seed {seed}: {rows[-1]}", flush=True)
        out["budgets"][str(b)] = rows
    for f in FLOORS:
        goal = f * best_quality
        rows = []
        for seed in seeds:
            prefs = Preferences(quality=1.0, cost=0.5, latency=0.0, quality_floor=f)
            q, c, q_tail, _ = run(data, prefs, seed)
            rows.append(
                {"seed": seed, "quality": q, "tail_quality": q_tail, "goal": goal, "cost": c}
                | {"cost_vs_dearest": c / dear_cost, "quality_met": q >= goal - 0.01}
            )
            print(f"  floor {f:.2f} seed {seed}: {rows[-1]}", flush=True)
        out["floors"][str(f)] = rows
    if not with_sweep:
        return out
    for seed in seeds:  # the reference: the sweep's curve on the same queries, order and seed
        t0 = time.perf_counter()
        sw = sweep(data, seed=seed)
        curve = envelope(
            [(p.mean_cost, p.mean_quality) for p in sw.points if p.mean_cost is not None]
        )
        print(f"  sweep seed {seed}: {len(sw.points)} replays in {time.perf_counter() - t0:.0f} s")
        for rows in out["budgets"].values():
            for row in rows:
                if row["seed"] == seed:
                    ref = quality_at(row["cost"], curve)
                    row["sweep_quality_at_cost"] = ref
                    row["quality_met"] = row["quality"] >= ref - 0.01
        for rows in out["floors"].values():
            for row in rows:
                if row["seed"] == seed:
                    ref = cost_for(row["goal"], curve)
                    row["sweep_cost_at_goal"] = ref
                    row["cost_met"] = ref is not None and row["cost"] <= 1.10 * ref
        print(json.dumps({k: out[k] for k in ("budgets", "floors")}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, seeds=True, quick="first 3,000 MMLU queries only")
    parser.add_argument("--logs", nargs="+", default=list(LOGS))
    parser.add_argument("--embedding-backend", default="auto")
    parser.add_argument("--no-sweep", action="store_true", help="targets only, no sweep")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"seeds": args.seeds, "quick": args.quick}
    for name in args.logs:
        limit = 3000 if args.quick and "mmlu" in name else None
        t0 = time.perf_counter()
        data = load(shipped_log(name), limit=limit, embedding_backend=args.embedding_backend)
        print(f"{name}: {len(data)} queries embedded in {time.perf_counter() - t0:.0f} s")
        out[name] = bench_log(data, args.seeds, not args.no_sweep)
    if args.json:
        _common.write_json(args.json, out)
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
