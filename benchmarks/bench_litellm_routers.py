"""Conduit against the routers LiteLLM ships, on real routing logs (mean of seeds 0-2).

    python benchmarks/bench_litellm_routers.py [--json OUT] [--seeds 0 1 2] [--quick]

A LiteLLM user can already switch on ``complexity_router``, ``quality_router`` and
``adaptive_router`` (LiteLLM >= 1.110). This replays each on the same logged queries
as Conduit, with LiteLLM's own code doing the routing:

- ``complexity_router``: its default heuristic classifier (``ComplexityRouter.classify``)
  with the tier map its README shows, cheap model for SIMPLE/MEDIUM and the strong model
  for COMPLEX/REASONING. ``quality_router`` reuses that classifier (its tiers come from
  it), so it routes the same. On two-model logs its score is also swept as a threshold:
  the APGR of the classifier's ranking, whatever boundaries an operator picks. Its cheap
  model is reported twice: chosen in hindsight (the best model at <= 10 % of the strong
  one's cost) and over every model an operator could have put there, without hindsight
  (the median, the worst and the cheapest choice).
- ``adaptive_router``: its request-type classifier and Beta-Thompson bandit
  (``classify_prompt``, ``initial_cell``, ``pick_best``, ``apply_delta``), quality tiers
  by price rank, default weights 0.7/0.3. In production it learns from regex signals of
  the conversation; here it gets what Conduit gets, the logged quality of the model it
  chose (``apply_delta(q, 1 - q)``): generous to it.

Conduit runs its default policy (``hybrid``) with the ``balanced`` preset and, for the
cost curve, ``replay.sweep``. Every router sees bandit feedback in a seeded random
order. Reported per log: quality and cost (share of always-the-strongest's), the best
quality each router reaches within 10 %, 20 % and 50 % of the strongest model's cost
(from its cost curve), and on two-model logs RouteLLM's APGR (random routing 0.5).
``--model7`` adds ``../shared/datasets/model7-mixed.jsonl.gz`` (quality only) if present.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import _common  # also the offline environment
import numpy as np

from conduit.replay import ReplayData, apgr, load, replay, shipped_log, sweep

try:
    from litellm.router_strategy.adaptive_router import bandit as adaptive
    from litellm.router_strategy.adaptive_router.classifier import classify_prompt
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter
    from litellm.types.router import AdaptiveRouterPreferences
except ImportError as exc:  # LiteLLM < 1.110 has none of these routers
    raise SystemExit(f"this benchmark needs LiteLLM >= 1.110 (its own routers): {exc}") from exc

LOGS = ("routerbench-arc-winogrande.jsonl.gz", "routellm-mmlu.jsonl.gz")
MODEL7 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "model7-mixed.jsonl.gz"
CAPS = (0.10, 0.20, 0.50)
#: Cost weights the adaptive router's curve is traced with (its quality weight is 1 - w).
ADAPTIVE_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 21), 3))
COMPLEX_TIERS = {"COMPLEX", "REASONING"}
COMPLEXITY = "litellm complexity_router"  # quality_router routes the same


@dataclass(frozen=True)
class Point:
    """One way of routing a whole log: mean quality, mean cost, share sent to the strong model."""

    quality: float
    cost: float | None
    strong_share: float


def _point(data: ReplayData, rows: np.ndarray, chosen: np.ndarray, strong: int) -> Point:
    cost = data.cost[rows, chosen]
    known = cost[~np.isnan(cost)]
    return Point(
        quality=float(data.quality[rows, chosen].mean()),
        cost=float(known.mean()) if known.size else None,
        strong_share=float(np.mean(chosen == strong)),
    )


def _mean_costs(data: ReplayData) -> np.ndarray:
    """Each model's mean cost per query (NaN where the log has none)."""
    return np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in data.cost.T])


def _cheap_tier(data: ReplayData, strong: int) -> list[int]:
    """Every model an operator could put in the cheap tier: at most 10 % of the strong one's
    mean cost. Which of them is best on their traffic, the operator does not know."""
    cost = _mean_costs(data)
    return [
        k
        for k in range(len(data.models))
        if k != strong and np.isfinite(cost[k]) and cost[k] <= 0.1 * cost[strong]
    ]


def _roles(data: ReplayData) -> tuple[int, int]:
    """The strong model (best mean quality) and the weak one: the best model of the cheap
    tier (:func:`_cheap_tier`), or on a quality-only log the second best.

    Chosen in hindsight: the tier map LiteLLM's complexity router runs with here is the best an
    operator could have written for this log, which is generous to it (the operator has to
    guess which cheap model is best; Conduit has to find it by trying). ``evaluate`` also
    reports it over every cheap model an operator might have picked instead."""
    quality = data.quality.mean(axis=0)
    strong = int(np.argmax(quality))
    others = _cheap_tier(data, strong) or [k for k in range(len(data.models)) if k != strong]
    weak = max(others, key=lambda k: quality[k])
    return strong, int(weak)


# -- LiteLLM's complexity_router ------------------------------------------------------------
def complexity_scores(prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: LiteLLM's heuristic complexity score, and whether its tier is COMPLEX+."""
    classifier = ComplexityRouter(model_name="bench", ctx=None)
    scores, complex_ = np.empty(len(prompts)), np.empty(len(prompts), dtype=bool)
    for i, prompt in enumerate(prompts):
        tier, score, _ = classifier.classify(prompt)
        scores[i], complex_[i] = score, str(getattr(tier, "value", tier)) in COMPLEX_TIERS
    return scores, complex_


def complexity_curve(data: ReplayData, scores: np.ndarray, strong: int, weak: int) -> list[Point]:
    """The classifier's score as a threshold: strong model at and above it, weak below."""
    rows = np.arange(len(data))
    points = []
    for threshold in [*np.unique(scores), math.inf]:
        chosen = np.where(scores >= threshold, strong, weak)
        points.append(_point(data, rows, chosen, strong))
    return points


# -- LiteLLM's adaptive_router ----------------------------------------------------------------
def adaptive_run(
    data: ReplayData, types: Sequence[object], seed: int, cost_weight: float, strong: int
) -> Point:
    """LiteLLM's adaptive-router bandit, online, with the logged quality as its feedback."""
    rng = random.Random(seed)
    order = np.random.default_rng(seed).permutation(len(data))
    mean_cost = [
        float(np.nanmean(c)) if np.isfinite(c).any() else 1.0 for c in data.cost.T
    ]  # quality-only logs: every model equally priced, as the router would see them
    ranks = np.argsort(np.argsort(mean_cost))
    tiers = {m: 1 + int(3 * ranks[k] / len(data.models)) for k, m in enumerate(data.models)}
    costs = dict(zip(data.models, mean_cost, strict=True))
    cells: dict[tuple[object, str], adaptive.BanditCell] = {}
    index = {m: k for k, m in enumerate(data.models)}
    chosen = np.empty(len(data), dtype=np.intp)
    for step, row in enumerate(order):
        kind = types[row]
        mine = {}
        for m in data.models:
            key = (kind, m)
            if key not in cells:
                prefs = AdaptiveRouterPreferences(quality_tier=tiers[m])
                cells[key] = adaptive.initial_cell(prefs, kind)  # type: ignore[arg-type]
            mine[m] = cells[key]
        model = adaptive.pick_best(
            mine, costs, quality_weight=1.0 - cost_weight, cost_weight=cost_weight, rng=rng
        )
        k = index[model]
        q = float(data.quality[row, k])
        cells[(kind, model)] = adaptive.apply_delta(cells[(kind, model)], q, 1.0 - q)
        chosen[step] = k
    return _point(data, order, chosen, strong)


# -- Conduit ----------------------------------------------------------------------------------
def conduit_points(data: ReplayData, seed: int, strong: int) -> tuple[Point, list[Point]]:
    """Conduit's default (balanced) run and its cost curve."""
    default = replay(data, seed=seed)
    k = data.models
    share = default.policy.share.get(k[strong], 0.0)
    first = Point(default.policy.mean_quality, default.policy.mean_cost, share)
    swept = sweep(data, seed=seed)
    curve = [Point(p.mean_quality, p.mean_cost, p.strong_share) for p in swept.points]
    return first, curve


# -- summaries --------------------------------------------------------------------------------
def best_within(curve: Sequence[Point], cap: float, reference: float) -> float | None:
    """The best quality a curve reaches at a mean cost of at most ``cap`` times ``reference``."""
    ok = [p.quality for p in curve if p.cost is not None and p.cost <= cap * reference]
    return max(ok) if ok else None


def pgr_area(curve: Sequence[Point], q_weak: float, q_strong: float) -> float:
    return apgr((p.strong_share, (p.quality - q_weak) / (q_strong - q_weak)) for p in curve)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.mean(known) if len(known) == len(values) and known else None


def _median(values: Sequence[object]) -> float | None:
    known = [float(v) for v in values if isinstance(v, float | int)]
    return statistics.median(known) if len(known) == len(values) and known else None


def summarise(
    per_seed: Sequence[tuple[Point, list[Point]]],
    c_strong: float | None,
    pgr: tuple[float, float] | None,
) -> dict[str, object]:
    """One router's row, the mean over seeds of its (run, cost curve) pairs; ``pgr``: the weak
    and strong models' qualities where APGR is reported (two-model logs)."""
    row: dict[str, object] = {
        "quality": statistics.mean(p.quality for p, _ in per_seed),
        "cost_vs_strong": (
            _mean([None if p.cost is None else p.cost / c_strong for p, _ in per_seed])
            if c_strong
            else None
        ),
    }
    if c_strong:
        for cap in CAPS:
            row[f"best_within_{int(cap * 100)}pct"] = _mean(
                [best_within(curve, cap, c_strong) for _, curve in per_seed]
            )
    if pgr is not None:
        row["apgr"] = statistics.mean(pgr_area(curve, *pgr) for _, curve in per_seed)
    return row


def over_choices(
    rows: dict[str, dict[str, object]], cost: dict[str, float]
) -> dict[str, dict[str, object]]:
    """The complexity router's rows over every cheap tier an operator might pick: the median
    (column by column), the worst (lowest quality) and the cheapest model's."""
    columns = next(iter(rows.values()))
    median: dict[str, object] = {
        key: _median([row[key] for row in rows.values()]) for key in columns
    }
    worst = min(rows, key=lambda m: rows[m]["quality"])  # type: ignore[arg-type,return-value]
    cheapest = min(rows, key=cost.__getitem__)
    return {
        f"{COMPLEXITY}, cheap tier: median of eligible": {**median, "eligible": len(rows)},
        f"{COMPLEXITY}, cheap tier: the worst eligible": {**rows[worst], "cheap_tier": worst},
        f"{COMPLEXITY}, cheap tier: the cheapest eligible": {
            **rows[cheapest],
            "cheap_tier": cheapest,
        },
    }


def evaluate(data: ReplayData, seeds: Sequence[int]) -> dict[str, object]:
    strong, weak = _roles(data)
    names = data.models
    q_strong = float(data.quality[:, strong].mean())
    q_weak = float(data.quality[:, weak].mean())
    priced = bool(np.isfinite(data.cost[:, strong]).any())
    c_strong = float(np.nanmean(data.cost[:, strong])) if priced else None
    pgr = (q_weak, q_strong) if len(names) == 2 else None
    scores, complex_ = complexity_scores(data.prompts)
    rows = np.arange(len(data))
    types = [classify_prompt(p) for p in data.prompts]

    routers: dict[str, Callable[[int], tuple[Point, list[Point]]]] = {
        "conduit (hybrid, balanced)": lambda s: conduit_points(data, s, strong),
        "litellm adaptive_router": lambda s: (
            adaptive_run(data, types, s, adaptive.DEFAULT_COST_WEIGHT, strong),
            [adaptive_run(data, types, s, float(w), strong) for w in ADAPTIVE_WEIGHTS],
        ),
    }
    cheap = _cheap_tier(data, strong) if priced else []
    # the complexity and quality routers only trade cost for quality; they need no seed
    complexity = {
        names[k]: (
            _point(data, rows, np.where(complex_, strong, k), strong),
            complexity_curve(data, scores, strong, k),
        )
        for k in cheap
    }
    if names[weak] in complexity:
        hindsight = complexity[names[weak]]
        routers[f"{COMPLEXITY}, cheap tier chosen in hindsight"] = lambda s: hindsight
    rng = np.random.default_rng(0)
    fixed_rows = {
        "always the strong model": _point(data, rows, np.full(len(data), strong), strong),
        "always the weak model": _point(data, rows, np.full(len(data), weak), strong),
        "random (simple-shuffle)": _point(
            data, rows, rng.integers(0, len(names), len(data)), strong
        ),
    }

    out: dict[str, object] = {
        "n": len(data),
        "models": list(names),
        "strong": names[strong],
        "weak": names[weak],
        "strong_quality": q_strong,
        "weak_quality": q_weak,
        "strong_cost": c_strong,
        "baselines": {
            name: {
                "quality": p.quality,
                "cost_vs_strong": None if p.cost is None or not c_strong else p.cost / c_strong,
            }
            for name, p in fixed_rows.items()
        },
        "complex_tier_share": float(complex_.mean()),
        "cheap_tier_choices": list(complexity),
        "routers": {
            name: summarise([run(s) for s in seeds], c_strong, pgr) for name, run in routers.items()
        },
    }
    if complexity:
        by_choice = {m: summarise([run], c_strong, pgr) for m, run in complexity.items()}
        out["complexity_router_by_cheap_tier"] = by_choice
        cost = dict(zip(names, _mean_costs(data), strict=True))
        out["routers"].update(over_choices(by_choice, cost))  # type: ignore[attr-defined]
    return out


def _fmt(value: object, pct: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if pct else f"{value:.3f}"  # type: ignore[str-format]


def report(name: str, result: dict[str, object]) -> None:
    print(
        f"\n{name}: {result['n']} queries, {len(result['models'])} models; strong "  # type: ignore[arg-type]
        f"{result['strong']} {result['strong_quality']:.3f}, weak {result['weak']} "
        f"{result['weak_quality']:.3f}; LiteLLM's classifier puts "
        f"{result['complex_tier_share']:.1%} of prompts in COMPLEX/REASONING"
    )
    caps = [f"≤{int(c * 100)}%" for c in CAPS]
    print(
        f"  {'router':60s} {'quality':>8s} {'cost':>7s} "
        + " ".join(f"{c:>6s}" for c in caps)
        + f" {'APGR':>6s}"
    )
    for router, row in result["routers"].items():  # type: ignore[attr-defined]
        within = [_fmt(row.get(f"best_within_{int(c * 100)}pct")) for c in CAPS]
        print(
            f"  {router:60s} {_fmt(row['quality']):>8s} {_fmt(row['cost_vs_strong'], True):>7s} "
            + " ".join(f"{w:>6s}" for w in within)
            + f" {_fmt(row.get('apgr')):>6s} {row.get('cheap_tier', '')}"
        )
    if result["cheap_tier_choices"]:
        choices = result["cheap_tier_choices"]
        print(f"  eligible cheap tiers ({len(choices)}): {', '.join(choices)}")  # type: ignore[arg-type]
    for baseline, row in result["baselines"].items():  # type: ignore[attr-defined]
        print(
            f"  {baseline:60s} {_fmt(row['quality']):>8s} {_fmt(row['cost_vs_strong'], True):>7s}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, seeds=True, quick="first 3,000 queries of each log")
    parser.add_argument("--model7", action="store_true", help=f"also {MODEL7.name}")
    parser.add_argument("--embedding-backend", default="auto")
    args = parser.parse_args(argv)
    limit = 3000 if args.quick else None
    paths = [shipped_log(name) for name in LOGS]
    if args.model7:
        if not MODEL7.exists():
            print(f"{MODEL7} not found: skipping it", file=sys.stderr)
        else:
            paths.append(MODEL7)
    results = {}
    for path in paths:
        data = load(path, limit=limit, embedding_backend=args.embedding_backend, progress=True)
        results[path.name] = evaluate(data, args.seeds)
        report(path.name, results[path.name])
    print(
        "\ncost: share of always-the-strongest's mean cost; ≤x%: the best quality on the "
        "router's cost curve within x% of it; APGR: two-model logs (random routing 0.5)."
    )
    _common.write_json(args.json, {"seeds": args.seeds, **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
