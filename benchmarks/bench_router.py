"""Speed of the engine's hot path, measured in one run on this machine.

    python benchmarks/bench_router.py [--json OUT] [--backend auto|onnx|hashing]

Reports medians (and p90) of:
- ``route()`` with a cached query, 11 models, each algorithm;
- ``route()`` with a new short query on the chosen embedding backend (default: the
  default backend), i.e. embedding included;
- ``update()`` (quality, cost and latency of one decision);
- building the hybrid policy (UCB1 + LinUCB, 65 dimensions) for 1,000 models, which
  must stay linear in models (it was quadratic: 96 s).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import _common  # also the offline environment
from _common import percentile

from conduit import Router
from conduit.engines.bandits import ALGORITHMS, make_bandit
from conduit.replay.log import read_log, shipped_log


def _timed(fn: Callable[[], object], n: int, warmup: int = 50) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), percentile(samples, 0.9)


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("-n", type=int, default=2000, help="samples per measurement")
    args = parser.parse_args(argv)

    records = read_log(shipped_log())
    models = sorted(records[0].outcomes)
    prompts = [r.prompt for r in records]
    results: dict[str, object] = {"models": len(models), "backend": args.backend}

    cached: dict[str, dict[str, float]] = {}
    for algorithm in ALGORITHMS:
        if algorithm == "oracle":
            continue
        router = Router(models, bandit_algorithm=algorithm, seed=0, embedding_backend=args.backend)
        for p in prompts[:200]:  # learn a little so the numbers are not of an empty state
            d = router.route_sync(p)
            router.update_sync(d.decision_id, quality=records[0].outcomes[d.selected_model].quality)
        text = prompts[0]
        med, p90 = _timed(lambda r=router, t=text: r.route_sync(t), args.n)
        cached[algorithm] = {"median_ms": med, "p90_ms": p90}
    results["route_cached"] = cached

    router = Router(models, use_hybrid=True, seed=0, embedding_backend=args.backend)
    results["embedder"] = router.extractor.name if router.extractor else "none"
    fresh = iter(f"Question {i}: what is {i} plus {i * 7}?" for i in range(10**7))
    med, p90 = _timed(lambda: router.route_sync(next(fresh)), min(args.n, 500), warmup=20)
    results["route_new_short_query"] = {"median_ms": med, "p90_ms": p90}

    decisions = iter([router.route_sync(prompts[i % 50]) for i in range(args.n + 100)])
    med, p90 = _timed(
        lambda: router.update_sync(
            next(decisions).decision_id, quality=1.0, cost=1e-4, latency=0.5
        ),
        args.n,
    )
    results["update"] = {"median_ms": med, "p90_ms": p90}

    def build(n: int = 1000) -> None:
        policy = make_bandit("hybrid", dim=65, seed=0)
        for i in range(n):
            policy.add_arm(f"model-{i}")

    med, p90 = _timed(build, 5, warmup=1)
    results["build_hybrid_1000_models"] = {"median_ms": med, "p90_ms": p90}

    print(f"backend: {results['embedder']}, {len(models)} models")
    print(f"{'measurement':44s} {'median ms':>10s} {'p90 ms':>10s}")
    for name, row in cached.items():
        print(
            f"{'route, cached query, ' + name:44s} {row['median_ms']:10.4f} {row['p90_ms']:10.4f}"
        )
    for key in ("route_new_short_query", "update", "build_hybrid_1000_models"):
        row = results[key]  # type: ignore[assignment]
        print(f"{key.replace('_', ' '):44s} {row['median_ms']:10.4f} {row['p90_ms']:10.4f}")  # type: ignore[index]
    _common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
