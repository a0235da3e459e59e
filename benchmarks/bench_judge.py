"""Quality without labels: learning from a sampled, noisy judge vs every label vs none.

    python benchmarks/bench_judge.py [--seeds 0 1 2] [--json OUT] [--limit N]

The engine replay (not LiteLLM: the judge's grade in the simulator is the logged
quality, so the engine replay with :class:`conduit.replay._loop.Labels` is the same
learning problem, a hundred times faster on this machine) on the shipped RouterBench
log, seeds 0-2, balanced preference, the default policy. Each row labels a share of
decisions, uniformly or where the router is unsure (:class:`conduit.judge.Sampler`),
with 15 % of the labels flipped, as a judge that is wrong 15 % of the time would:

- quality and cost: mean per query of what the chosen models got and cost;
- gain: quality above always the cheapest model, and above the mix of the cheapest and
  the best single model at the same mean cost ("at equal cost");
- recovered: gain at equal cost as a share of what every label (no noise) reaches;
- judge cost: each label costs one call of the log's best model (gpt-4-1106-preview)
  at the simulator's per-token price, on the judge prompt Conduit sends (rubric,
  question, the simulated answer) plus its reply: what ``conduit demo --feedback judge``
  pays LiteLLM. Real answers are longer than the simulator's one-line ones, so real
  judge calls cost more;
- vs saved: judge cost as a share of what routing saved against always the best model,
  with gpt-4 as the judge and (last column) with gpt-3.5-turbo as the judge.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import _common  # also the offline environment
import numpy as np

from conduit._types import Preferences
from conduit.judge import grade_messages
from conduit.replay import load, shipped_log
from conduit.replay._loop import ALL_LABELS, DEFAULT_ALGORITHM, Labels, _replay_once, baselines
from conduit.simulator._catalog import ANSWER_TEMPLATE, Catalog, count_tokens

ROUTERBENCH = "routerbench-arc-winogrande.jsonl.gz"
JUDGE = "gpt-4-1106-preview"
#: A cheaper judge, priced the same way (its labels are assumed no noisier: see the README).
CHEAP_JUDGE = "gpt-3.5-turbo-1106"
REPLY = json.dumps({"grade": 5, "reason": "graded from the routing log"})


@dataclass(frozen=True)
class Row:
    name: str
    labels: Labels


ROWS = (
    Row("every label, exact", ALL_LABELS),
    Row("judge 20%, uncertain", Labels(rate=0.2, noise=0.15, uncertain=True)),
    Row("judge 20%, uniform", Labels(rate=0.2, noise=0.15)),
    Row("judge 5%, uncertain", Labels(rate=0.05, noise=0.15, uncertain=True)),
    Row("judge 5%, uniform", Labels(rate=0.05, noise=0.15)),
    Row("no quality feedback", Labels(rate=0.0)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--limit", type=int, default=None, help="first N queries of the log")
    parser.add_argument("--embedding-backend", default="auto")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    path = shipped_log(ROUTERBENCH)
    started = time.perf_counter()
    data = load(path, limit=args.limit, embedding_backend=args.embedding_backend, progress=True)
    catalog = Catalog.from_log(path, limit=args.limit)
    price = catalog.price_per_token[JUDGE]
    cheap_ratio = catalog.price_per_token[CHEAP_JUDGE] / price
    per_label = [  # USD of one judge call on each query (system and user message, and reply)
        price * (sum(count_tokens(m["content"]) for m in grade_messages(p, ANSWER_TEMPLATE.format(
            model="m")) ) + count_tokens(REPLY))
        for p in data.prompts
    ]  # fmt: skip
    label_cost = float(np.mean(per_label))
    base = baselines(data)
    cheap, best = base.cheapest, base.best_single
    assert cheap is not None and cheap.mean_cost is not None and best.mean_cost is not None
    prefs = Preferences.of("balanced")

    def at_equal_cost(cost: float) -> float:
        """Quality of the cheapest/best mix that costs ``cost`` per query."""
        share = min(max((cost - cheap.mean_cost) / (best.mean_cost - cheap.mean_cost), 0.0), 1.0)  # type: ignore[operator]
        return cheap.mean_quality + share * (best.mean_quality - cheap.mean_quality)

    results = []
    for row in ROWS:
        runs = []
        for seed in args.seeds:
            trace = _replay_once(data, DEFAULT_ALGORITHM, prefs, seed, None, labels=row.labels)
            q = float(data.quality[trace.order, trace.chosen].mean())
            c = float(np.nanmean(data.cost[trace.order, trace.chosen]))
            judged = 0 if row.labels == ALL_LABELS else trace.labelled
            judge_cost = judged * label_cost
            saved = (best.mean_cost - c) * len(data)
            runs.append((q, c, judged, judge_cost, saved))
        q, c, judged, judge_cost, saved = (statistics.mean(x) for x in zip(*runs, strict=True))
        results.append({
            "name": row.name, "rate": row.labels.rate, "noise": row.labels.noise,
            "uncertain": row.labels.uncertain, "mean_quality": q, "mean_cost": c,
            "gain_vs_cheapest": q - cheap.mean_quality, "gain_at_equal_cost": q - at_equal_cost(c),
            "labels": judged, "judge_cost": judge_cost, "routing_saved": saved,
            "per_seed_quality": [r[0] for r in runs],
        })  # fmt: skip
    full = results[0]["gain_at_equal_cost"]
    full_cheapest = results[0]["gain_vs_cheapest"]
    print(
        f"{data.source}: {len(data)} queries, {len(data.models)} models, seeds {args.seeds}, "
        f"{DEFAULT_ALGORITHM}, balanced ({time.perf_counter() - started:.0f} s)"
    )
    print(
        f"always {cheap.model}: quality {cheap.mean_quality:.3f}, cost ${cheap.mean_cost:.6f}; "
        f"always {best.model}: {best.mean_quality:.3f}, ${best.mean_cost:.6f}; "
        f"one judge call ${label_cost:.5f}"
    )
    header = (
        f"{'quality feedback':<22} {'quality':>7} {'cost $':>9} {'vs best':>7} "
        f"{'gain':>6} {'gain@cost':>9} {'recovered':>9} {'judge $':>8} {'vs saved':>8} "
        f"{'3.5 judge':>9}"
    )
    print(header)
    for r in results:
        r["recovered"] = r["gain_at_equal_cost"] / full if full else None
        r["recovered_vs_cheapest"] = r["gain_vs_cheapest"] / full_cheapest
        r["judge_vs_saved"] = (
            r["judge_cost"] / r["routing_saved"] if r["routing_saved"] > 0 else None
        )
        vs_saved = "-" if r["judge_vs_saved"] is None else f"{100 * r['judge_vs_saved']:.1f}%"
        r["cheap_judge_vs_saved"] = (
            None if r["judge_vs_saved"] is None else r["judge_vs_saved"] * cheap_ratio
        )
        cheap_saved = (
            "-" if r["judge_vs_saved"] is None else f"{100 * r['cheap_judge_vs_saved']:.1f}%"
        )
        print(
            f"{r['name']:<22} {r['mean_quality']:>7.3f} {r['mean_cost']:>9.6f} "
            f"{100 * r['mean_cost'] / best.mean_cost:>6.1f}% {r['gain_vs_cheapest']:>+6.3f} "
            f"{r['gain_at_equal_cost']:>+9.3f} {100 * r['recovered']:>8.0f}% "
            f"{r['judge_cost']:>8.3f} {vs_saved:>8} {cheap_saved:>9}"
        )
    _common.write_json(args.json, {"seeds": args.seeds, "n": len(data),
                                   "label_cost": label_cost, "rows": results})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
