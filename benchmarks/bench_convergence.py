"""How many queries each algorithm needs to converge, on seeded synthetic workloads.

    python benchmarks/bench_convergence.py [--json OUT] [--seeds 20]

The usage guide defines convergence as "selecting the optimal model >90% of the
time". Here: the first query after which, over the next 100 queries, the router
picks the model of best expected utility (quality - 0.5 x cost share, the
balanced preset) at least 90 times. Each workload has three models priced like
the guide's examples (a frontier model and two cheap ones, 50x and 10x cheaper)
and Bernoulli quality; queries are distinct texts (hashed features), so the
contextual learners see the noise of real feature vectors. Median over seeds;
a run that never converges within the horizon counts as the horizon.
"""

from __future__ import annotations

import statistics
import sys

import _common  # also the offline environment
import numpy as np

from conduit import Router
from conduit.engines.bandits import ALGORITHMS

#: (name, quality per model): a frontier model, a mid model, a small model.
WORKLOADS = {
    "easy (mid model clearly best value)": (0.90, 0.80, 0.55),
    "hard (small gap between the cheap two)": (0.90, 0.78, 0.70),
}
PRICES = (1.0, 0.1, 0.02)  # relative cost per query
HORIZON = 2000
WINDOW = 100


def converge_at(algorithm: str, quality: tuple[float, ...], seed: int) -> int:
    models = ["frontier", "mid", "small"]
    price = {m: (p * 1e-5, 0.0) for m, p in zip(models, PRICES, strict=True)}
    router = Router(
        models, bandit_algorithm=algorithm, seed=seed, prices=price, embedding_backend="hashing"
    )
    utility = [q - 0.5 * p / max(PRICES) for q, p in zip(quality, PRICES, strict=True)]
    best = models[int(np.argmax(utility))]
    rng = np.random.default_rng(seed + 1000)
    hits = np.zeros(HORIZON, dtype=bool)
    for t in range(HORIZON):
        d = router.route_sync(f"query {seed}-{t}: explain topic {rng.integers(10**6)}")
        k = models.index(d.selected_model)
        router.update_sync(d.decision_id, quality=float(rng.random() < quality[k]))
        hits[t] = d.selected_model == best
    window = np.convolve(hits, np.ones(WINDOW, dtype=int), mode="valid")
    ok = np.flatnonzero(window >= 0.9 * WINDOW)
    return int(ok[0]) if ok.size else HORIZON


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    algorithms = [a for a in ALGORITHMS if a not in ("oracle", "random", "always_cheapest")]
    results: dict[str, dict[str, float]] = {}
    print(f"queries to converge (median of {args.seeds} seeds; {HORIZON} = never)")
    print(f"{'algorithm':22s}" + "".join(f"{w[:34]:>36s}" for w in WORKLOADS))
    for algorithm in algorithms:
        row = {}
        for name, quality in WORKLOADS.items():
            runs = [converge_at(algorithm, quality, s) for s in range(args.seeds)]
            row[name] = statistics.median(runs)
        results[algorithm] = row
        print(f"{algorithm:22s}" + "".join(f"{v:>36.0f}" for v in row.values()), flush=True)
    _common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
