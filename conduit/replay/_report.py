"""What a replay reports: typed results, their JSON form and the tables the CLI prints.

Costs are USD per query, averaged over the queries whose cost the log knows;
``None`` where it knows none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from pydantic import BaseModel

from conduit._types import TargetStats

__all__ = [
    "Baselines",
    "LearningCurve",
    "Level",
    "PolicySummary",
    "ReplayResult",
    "SweepPoint",
    "SweepResult",
    "format_replay",
    "format_sweep",
]


class _ToJSON:
    """One serialiser for every result: fields as plain JSON values, recursively."""

    __slots__ = ()
    _json_keys: ClassVar[Mapping[str, str]] = {}
    """Field name -> JSON key, where they differ."""
    _omit_none: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of the JSON when they are None."""
    _omit: ClassVar[frozenset[str]] = frozenset()
    """Fields never written to the JSON."""

    def to_json(self) -> dict[str, Any]:
        """A dict of plain JSON values (what ``conduit replay --json`` writes)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self._omit:
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_none:
                continue
            out[self._json_keys.get(f.name, f.name)] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, _ToJSON):
        return value.to_json()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Level(_ToJSON):
    """Mean quality and cost of one fixed policy on the replayed queries."""

    mean_quality: float
    mean_cost: float | None
    model: str | None = None
    """The single model this level is, if it is one."""

    _omit_none: ClassVar[frozenset[str]] = frozenset({"model"})


@dataclass(frozen=True, slots=True)
class Baselines(_ToJSON):
    """Fixed policies scored exactly on the same queries (nothing simulated)."""

    oracle: Level
    """Per query the best model, the cheapest among ties."""
    best_single: Level
    """The model of highest mean quality (the cheaper among ties)."""
    cheapest: Level | None
    """The model of lowest mean cost; None when the log knows no cost."""
    random: Level
    """The expectation of a uniformly random model per query."""
    single: Mapping[str, Level]
    """Every model alone, in the log's order."""


@dataclass(frozen=True, slots=True)
class PolicySummary(_ToJSON):
    """How the learning policy did over the whole replay."""

    algorithm: str
    preferences: Mapping[str, float]
    mean_quality: float
    mean_cost: float | None
    share: Mapping[str, float]
    """Fraction of queries routed to each model."""
    regret_vs_oracle: float
    """Oracle mean quality minus the policy's."""
    switch_at: int | None
    """Query number at which the policy's phase first changed (hybrid: to LinUCB)."""
    target: TargetStats | None = None
    """The budget or quality floor routed under: its goal against what was realised."""


@dataclass(frozen=True, slots=True)
class LearningCurve(_ToJSON):
    """The policy's trailing-window mean quality and cost over time, at sampled steps."""

    window: int
    step: tuple[int, ...]
    """Queries seen so far (1-based) at each sampled point."""
    mean_quality: tuple[float, ...]
    mean_cost: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class ReplayResult(_ToJSON):
    """One policy replayed over a log, with the baselines on the same queries."""

    source: str
    n: int
    models: tuple[str, ...]
    seed: int
    policy: PolicySummary
    baselines: Baselines
    learning: LearningCurve

    _json_keys: ClassVar[Mapping[str, str]] = {"learning": "learning_curve"}


@dataclass(frozen=True, slots=True)
class SweepPoint(_ToJSON):
    """One replay of the sweep, at one cost weight."""

    cost_weight: float
    mean_quality: float
    mean_cost: float | None
    strong_share: float
    """Fraction of queries sent to the best single model."""
    pgr: float | None
    """RouteLLM's performance gap recovered (two-model logs only)."""


@dataclass(frozen=True, slots=True)
class SweepResult(_ToJSON):
    """Replays at a grid of cost weights: the policy's cost-quality curve.

    ``apgr``, ``cpt50`` and ``cpt80`` are RouteLLM's metrics, defined only for a
    log of two models of different quality (None otherwise).
    """

    source: str
    n: int
    models: tuple[str, ...]
    seed: int
    algorithm: str
    strong: str
    weak: str | None
    baselines: Baselines
    points: tuple[SweepPoint, ...]
    apgr: float | None
    cpt50: float | None
    cpt80: float | None

    _json_keys: ClassVar[Mapping[str, str]] = {"points": "curve"}


# -- tables ------------------------------------------------------------------------------------
def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _relative(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference <= 0:
        return "-"
    return f"{100.0 * value / reference:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_replay(result: ReplayResult) -> str:
    """The replay as a table: the policy, the oracle, random and every single model."""
    p, b = result.policy, result.baselines
    best = b.best_single
    prefs = ", ".join(f"{k} {v:g}" for k, v in p.preferences.items() if v is not None)
    title = (
        f"{result.source}: {result.n} queries, {len(result.models)} models, "
        f"policy {p.algorithm} ({prefs}), seed {result.seed}"
    )
    header = ["policy", "quality", "cost/query", "cost vs best", "routed"]

    def row(name: str, level: Level, routed: str = "") -> list[str]:
        return [
            name,
            f"{level.mean_quality:.3f}",
            _cost(level.mean_cost),
            _relative(level.mean_cost, best.mean_cost),
            routed,
        ]

    rows = [
        row(f"conduit ({p.algorithm})", Level(p.mean_quality, p.mean_cost)),
        row("oracle (best per query)", b.oracle),
        row("random model", b.random),
    ]
    marks = {best.model: "best single"}
    if b.cheapest is not None and b.cheapest.model is not None:
        marks[b.cheapest.model] = (
            "best single, cheapest" if b.cheapest.model == best.model else "cheapest"
        )
    ordered = sorted(b.single.values(), key=lambda lv: -lv.mean_quality)
    for level in ordered:
        name = str(level.model)
        label = f"{name} ({marks[name]})" if name in marks else name
        rows.append(row(label, level, f"{100.0 * p.share.get(name, 0.0):.1f}%"))
    gap = p.mean_quality - best.mean_quality
    summary = [
        f"regret vs oracle: {p.regret_vs_oracle:.3f}",
        f"quality vs {best.model}: {gap:+.3f}"
        + (
            f" at {_relative(p.mean_cost, best.mean_cost)} of its cost"
            if _relative(p.mean_cost, best.mean_cost) != "-"
            else ""
        ),
    ]
    if p.switch_at is not None:
        summary.append(f"phase switch at query {p.switch_at}")
    lines = [title, "", _table(header, rows), "", "; ".join(summary)]
    if p.target is not None:
        lines.append(format_target(p.target))
    return "\n".join(lines)


def format_target(t: TargetStats) -> str:
    """One line: a target's goal against what was realised, and the cost weight it holds.

    >>> print(format_target(TargetStats(target="budget=0.2", decisions=10, goal=0.002,
    ...     realised=0.0019, cost_share=0.19, cost_weight=1.5)))  # doctest: +NORMALIZE_WHITESPACE
    target budget=0.2: goal $0.002000/query,
    realised $0.001900/query (19.0% of the dearest), cost weight now 1.5
    """
    floor = t.target.startswith("quality_floor")
    if floor:
        goal = "-" if t.goal is None else f"quality {t.goal:.3f}"
        realised = "-" if t.realised is None else f"quality {t.realised:.3f}"
    else:
        goal = "-" if t.goal is None else f"{_cost(t.goal)}/query"
        realised = "-" if t.realised is None else f"{_cost(t.realised)}/query"
        if t.cost_share is not None:
            realised += f" ({100.0 * t.cost_share:.1f}% of the dearest)"
    return (
        f"target {t.target}: goal {goal}, realised {realised}, cost weight now {t.cost_weight:.3g}"
    )


def format_sweep(result: SweepResult) -> str:
    """The sweep as a table: one row per cost weight, then APGR and CPT where defined."""
    best = result.baselines.best_single
    title = (
        f"cost-weight sweep of {result.algorithm}: {result.n} queries, seed {result.seed}; "
        f"strong model {result.strong}" + (f", weak {result.weak}" if result.weak else "")
    )
    header = ["cost weight", "quality", "cost/query", "cost vs best", "strong share"]
    with_pgr = any(pt.pgr is not None for pt in result.points)
    if with_pgr:
        header.append("PGR")
    rows = []
    for pt in result.points:
        cells = [
            f"{pt.cost_weight:g}",
            f"{pt.mean_quality:.3f}",
            _cost(pt.mean_cost),
            _relative(pt.mean_cost, best.mean_cost),
            f"{100.0 * pt.strong_share:.1f}%",
        ]
        if with_pgr:
            cells.append("-" if pt.pgr is None else f"{pt.pgr:.3f}")
        rows.append(cells)
    lines = [title, "", _table(header, rows)]
    if result.apgr is not None and result.cpt50 is not None and result.cpt80 is not None:
        lines += [
            "",
            f"APGR {result.apgr:.3f} (random routing: 0.500); "
            f"CPT(50%) {100.0 * result.cpt50:.1f}%, CPT(80%) {100.0 * result.cpt80:.1f}% "
            f"(random routing: 50.0%, 80.0%)",
        ]
    return "\n".join(lines)
