"""What a store says about one router: the numbers behind ``conduit stats`` and the dashboard.

Totals per model (traffic, mean quality, cost and latency) come from the learned
state, which counts every decision of every replica; what happened *when* (traffic
over time, savings over time, preferences and kinds of query, exploration, recent
reasons) comes from the history's most recent ``history_limit`` records.

Savings are measured against the model you would otherwise send every query to: by
default the dearest candidate (the highest mean cost per query), as in "against always
GPT-4", or the ``baseline_model`` you name. Over the decisions whose cost is known,
``savings = baseline's mean cost * decisions - actual cost``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from conduit import _validate
from conduit._counters import source_counts
from conduit._errors import ConfigurationError, StateError
from conduit._types import Explanation, Preferences, TargetStats
from conduit.stores import Store
from conduit.stores._base import HistoryRecord

__all__ = [
    "HISTORY_LIMIT",
    "ModelLine",
    "QualitySources",
    "RecentDecision",
    "Savings",
    "Summary",
    "Timeline",
    "format_summary",
    "summarize",
]

#: History records a summary reads (the most recent ones).
HISTORY_LIMIT = 5000
#: Time bins of the traffic-over-time chart, and points of the savings curve at most.
TIME_BINS = 40
CURVE_POINTS = 200
#: Characters of a prompt shown (only when the store keeps prompts, by opt-in).
PROMPT_CHARS = 160


@dataclass(frozen=True, slots=True)
class ModelLine:
    """One model's totals, from the learned state (or the history, if there is no state)."""

    model: str
    decisions: int
    share: float
    feedback: int
    mean_quality: float | None
    mean_cost: float | None
    mean_latency: float | None


@dataclass(frozen=True, slots=True)
class Savings:
    """Cost against always sending every query to one baseline model."""

    baseline: str
    baseline_quality: float | None
    baseline_mean_cost: float
    decisions: int
    """Decisions whose cost is known: the ones compared."""
    actual_cost: float
    baseline_cost: float
    saved: float
    percent: float | None


@dataclass(frozen=True, slots=True)
class QualitySources:
    """Where the quality labels came from and what judging cost (the router's stored counters).

    ``labels``: per source (explicit, judge, shadow, regeneration, automatic), and ``none``:
    answers no automatic signal graded. ``judge_dropped``: judge outputs dropped (garbage,
    errors, timeouts); ``judge_share_of_saved``: judge cost over what routing saved.
    """

    labels: dict[str, int]
    judge_calls: int
    judge_cost: float
    judge_paused_budget: int
    judge_paused_queue: int
    judge_garbage: int
    judge_dropped: int
    judge_share_of_saved: float | None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Decisions per model in equal time bins; ``edges`` has one more entry than each row."""

    edges: tuple[float, ...]
    counts: dict[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class RecentDecision:
    decision_id: str
    time: float
    model: str | None
    reason: str | None
    exploring: bool | None
    preset: str | None
    kind: str | None
    quality: float | None
    cost: float | None
    latency: float | None
    prompt: str | None
    """The start of the prompt, only if the store keeps prompts (opt-in)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything ``conduit stats`` prints and the dashboard draws, for one namespace."""

    store: str
    namespace: str
    namespaces: tuple[str, ...]
    generated: float
    algorithm: str | None
    revision: int | None
    models: tuple[ModelLine, ...]
    targets: tuple[TargetStats, ...]
    total_decisions: int
    total_feedback: int
    total_cost: float
    savings: Savings | None
    savings_note: str
    savings_curve: tuple[tuple[float, float], ...]
    """(time, cumulative savings) over the history window, against the same baseline model."""
    exploration_share: float | None
    explained: int
    """History records in the window that carry an explanation (the exploration share's base)."""
    history_rows: int
    timeline: Timeline
    by_preference: dict[str, dict[str, int]]
    by_kind: dict[str, dict[str, int]]
    recent: tuple[RecentDecision, ...]
    quality_sources: QualitySources | None = None
    """None for a state stored before the counters existed."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; every number finite (JSON has no NaN)."""
        plain: dict[str, Any] = _finite(
            asdict(self) | {"targets": [t.model_dump() for t in self.targets]}
        )
        return plain


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _check_int(name: str, value: object, low: int) -> int:
    return _validate.integer(name, value, low=low)


def summarize(
    store: Store,
    *,
    namespace: str | None = None,
    history_limit: int = HISTORY_LIMIT,
    recent: int = 20,
    baseline_model: str | None = None,
) -> Summary:
    """Read the namespace's state and recent history from ``store`` and summarise them.

    Savings are against ``baseline_model`` if given, else against the dearest model.
    """
    history_limit = _check_int("history_limit", history_limit, 0)
    recent = _check_int("recent", recent, 0)
    if baseline_model is not None and (not isinstance(baseline_model, str) or not baseline_model):
        raise ConfigurationError(f"baseline_model must be a model name, got {baseline_model!r}")
    ns = namespace or store.namespace
    snapshot = store.pull(ns)
    history = store.history(namespace=ns, limit=history_limit)  # newest first
    explained = [(r, _explanation(r)) for r in history]
    state = None if snapshot is None else snapshot.summary()
    models = _model_lines(state, history)
    savings, note = _savings(state, models, baseline_model)
    known = [e for _, e in explained if e is not None]
    exploring = sum(e.exploring for e in known)
    return Summary(
        store=store.url,
        namespace=ns,
        namespaces=tuple(store.namespaces()),
        generated=time.time(),
        algorithm=None if state is None else str(state["algorithm"]),
        revision=None if state is None else int(state["revision"]),
        models=models,
        targets=_target_lines(state),
        total_decisions=sum(m.decisions for m in models),
        total_feedback=sum(m.feedback for m in models),
        total_cost=_total_cost(state, history),
        savings=savings,
        savings_note=note,
        savings_curve=_savings_curve(history, savings),
        exploration_share=exploring / len(known) if known else None,
        explained=len(known),
        history_rows=len(history),
        timeline=_timeline(history),
        by_preference=_groups(history, _preset_of),
        by_kind=_groups(history, lambda r: r.kind or "unknown"),
        recent=tuple(_recent(r, e) for r, e in explained[:recent]),
        quality_sources=_quality_sources(state, savings),
    )


def _quality_sources(
    state: dict[str, Any] | None, savings: Savings | None
) -> QualitySources | None:
    counters: dict[str, float] = {} if state is None else state.get("counters", {})
    if not counters:
        return None

    def n(name: str) -> int:
        return int(counters.get(name, 0.0))

    cost = float(counters.get("judge_cost", 0.0))
    saved = None if savings is None else savings.saved
    return QualitySources(
        labels=source_counts(counters),
        judge_calls=n("judge_calls"),
        judge_cost=cost,
        judge_paused_budget=n("judge_paused_budget"),
        judge_paused_queue=n("judge_paused_queue"),
        judge_garbage=n("judge_garbage"),
        judge_dropped=n("judge_garbage") + n("judge_errors") + n("judge_timeouts"),
        judge_share_of_saved=cost / saved if saved is not None and saved > 0 else None,
    )


def _target_lines(state: dict[str, Any] | None) -> tuple[TargetStats, ...]:
    targets = {} if state is None else state.get("targets", {})
    return tuple(TargetStats.model_validate(t) for t in targets.values())


def _explanation(record: HistoryRecord) -> Explanation | None:
    try:
        return record.explain()
    except StateError:  # one malformed row must not hide the rest; it shows without a reason
        return None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _model_lines(
    state: dict[str, Any] | None, history: Sequence[HistoryRecord]
) -> tuple[ModelLine, ...]:
    rows: dict[str, dict[str, Any]]
    if state is not None:
        rows = state["models"]
    else:  # history alone (a store that keeps history but no state yet)
        rows = {}
        for model in dict.fromkeys(r.model for r in history if r.model):
            mine = [r for r in history if r.model == model]
            qualities = [r.quality for r in mine if r.quality is not None]
            rows[model] = {
                "decisions": len(mine),
                "feedback": len(qualities),
                "mean_quality": _mean(qualities),
                "mean_cost": _mean([r.cost for r in mine if r.cost is not None]),
                "mean_latency": _mean([r.latency for r in mine if r.latency is not None]),
            }
    total = sum(int(v["decisions"]) for v in rows.values())
    lines = [
        ModelLine(
            model=model,
            decisions=int(v["decisions"]),
            share=int(v["decisions"]) / total if total else 0.0,
            feedback=int(v["feedback"]),
            mean_quality=v["mean_quality"],
            mean_cost=v["mean_cost"],
            mean_latency=v["mean_latency"],
        )
        for model, v in rows.items()
    ]
    return tuple(sorted(lines, key=lambda m: (-m.decisions, m.model)))


def _total_cost(state: dict[str, Any] | None, history: Sequence[HistoryRecord]) -> float:
    if state is not None:
        return float(sum(v.get("cost_sum", 0.0) for v in state["models"].values()))
    return float(sum(r.cost for r in history if r.cost is not None))


def _savings(
    state: dict[str, Any] | None, models: Sequence[ModelLine], baseline_model: str | None
) -> tuple[Savings | None, str]:
    if state is None:
        return None, "no learned state in this namespace yet"
    by_name = {m.model: m for m in models}
    if baseline_model is not None:
        if baseline_model not in by_name:
            raise ConfigurationError(
                f"unknown baseline model {baseline_model!r}; the models are "
                f"{', '.join(sorted(by_name)) or '(none)'}"
            )
        baseline = by_name[baseline_model]
        why = "the baseline asked for"
    else:
        priced = [m for m in models if m.mean_cost is not None]
        if not priced:
            return None, "no model has a known cost yet"
        baseline = max(priced, key=lambda m: (m.mean_cost, m.model))
        why = "the dearest model"
    mean_cost = baseline.mean_cost
    if mean_cost is None:
        return None, f"{baseline.model}'s cost is not known yet"
    rows = state["models"].values()
    n = int(sum(v.get("cost_n", 0) for v in rows))
    actual = float(sum(v.get("cost_sum", 0.0) for v in rows))
    expected = mean_cost * n
    saved = expected - actual
    return (
        Savings(
            baseline=baseline.model,
            baseline_quality=baseline.mean_quality,
            baseline_mean_cost=mean_cost,
            decisions=n,
            actual_cost=actual,
            baseline_cost=expected,
            saved=saved,
            percent=100.0 * saved / expected if expected > 0 else None,
        ),
        f"against always {baseline.model} ({why})",
    )


def _savings_curve(
    history: Sequence[HistoryRecord], savings: Savings | None
) -> tuple[tuple[float, float], ...]:
    if savings is None:
        return ()
    costed = sorted((r.time, r.cost) for r in history if r.cost is not None)
    points: list[tuple[float, float]] = []
    total = 0.0
    for when, cost in costed:
        total += savings.baseline_mean_cost - cost
        points.append((when, total))
    if len(points) > CURVE_POINTS:  # evenly thinned; the last point always kept
        step = len(points) / CURVE_POINTS
        points = [points[int(i * step)] for i in range(CURVE_POINTS - 1)] + [points[-1]]
    return tuple(points)


def _timeline(history: Sequence[HistoryRecord]) -> Timeline:
    dated = [(r.time, r.model) for r in history if r.model]
    if not dated:
        return Timeline(edges=(), counts={})
    first, last = min(t for t, _ in dated), max(t for t, _ in dated)
    bins = max(1, min(TIME_BINS, len(dated) // 5))
    width = (last - first) / bins or 1.0
    edges = tuple(first + i * width for i in range(bins + 1))
    counts: dict[str, list[int]] = {}
    for when, model in dated:
        row = counts.setdefault(str(model), [0] * bins)
        row[min(int((when - first) / width), bins - 1)] += 1
    return Timeline(edges=edges, counts={m: tuple(c) for m, c in sorted(counts.items())})


def _preset_of(record: HistoryRecord) -> str:
    weights = (record.pref_quality, record.pref_cost, record.pref_latency)
    if any(w is None for w in weights):
        return "unknown"
    try:
        preset = Preferences(
            quality=record.pref_quality or 0.0,
            cost=record.pref_cost or 0.0,
            latency=record.pref_latency or 0.0,
        ).preset
    except ValueError:  # weights no Preferences accepts (written by something else)
        return "custom"
    return preset or "custom"


def _groups(history: Sequence[HistoryRecord], key: Any) -> dict[str, dict[str, int]]:
    """Decisions per model within each group (preference preset or kind of query)."""
    groups: dict[str, Counter[str]] = {}
    for record in history:
        if record.model:
            groups.setdefault(key(record), Counter())[record.model] += 1
    return {g: dict(c.most_common()) for g, c in sorted(groups.items())}


def _recent(record: HistoryRecord, explanation: Explanation | None) -> RecentDecision:
    prompt = record.prompt
    if prompt is not None and len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    return RecentDecision(
        decision_id=record.decision_id,
        time=record.time,
        model=record.model,
        reason=None if explanation is None else explanation.reason,
        exploring=None if explanation is None else explanation.exploring,
        preset=_preset_of(record),
        kind=record.kind,
        quality=record.quality,
        cost=record.cost,
        latency=record.latency,
        prompt=prompt,
    )


# -- the terminal ------------------------------------------------------------------------------
def _num(value: float | None, spec: str, prefix: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else prefix + format(value, spec)


def format_summary(summary: Summary) -> str:
    """The summary as ``conduit stats`` prints it."""
    s = summary
    head = f"{s.store} namespace {s.namespace!r}"
    if s.algorithm is None and not s.history_rows:
        return f"{head}: nothing learned or recorded yet"
    lines = [
        f"{head}: {s.algorithm or 'no learned state'}, {s.total_decisions} decisions, "
        f"{s.total_feedback} quality feedbacks, total cost {_num(s.total_cost, '.4f', '$')}",
        "",
        f"  {'model':<32} {'share':>6} {'decisions':>9} {'feedback':>8} {'quality':>7} "
        f"{'mean cost':>10} {'latency':>7}",
    ]
    for m in s.models:
        lines.append(
            f"  {m.model:<32} {100 * m.share:>5.1f}% {m.decisions:>9} {m.feedback:>8} "
            f"{_num(m.mean_quality, '.3f'):>7} {_num(m.mean_cost, '.6f', '$'):>10} "
            f"{_num(m.mean_latency, '.2f'):>7}"
        )
    if s.targets:
        lines += [
            "",
            f"  {'target':<24} {'decisions':>9} {'goal':>10} {'realised':>10} "
            f"{'cost share':>10} {'cost weight':>11}  met",
        ]
        for t in s.targets:
            usd = not t.target.startswith("quality_floor=")
            spec, prefix = (".6f", "$") if usd else (".3f", "")
            met = "-" if t.met is None else "yes" if t.met else "no"
            lines.append(
                f"  {t.target:<24} {t.decisions:>9} {_num(t.goal, spec, prefix):>10} "
                f"{_num(t.realised, spec, prefix):>10} {_num(t.cost_share, '.1%'):>10} "
                f"{_num(t.cost_weight, '.4g'):>11}  {met}"
            )
    lines.append("")
    if s.savings is None:
        lines.append(f"savings: not yet ({s.savings_note})")
    else:
        v = s.savings
        lines.append(
            f"savings: {_num(v.saved, '.4f', '$')} ({_num(v.percent, '.1f')}%) against always "
            f"{v.baseline} (quality {_num(v.baseline_quality, '.3f')}, "
            f"{_num(v.baseline_mean_cost, '.6f', '$')} a query): "
            f"{_num(v.actual_cost, '.4f', '$')} spent instead of "
            f"{_num(v.baseline_cost, '.4f', '$')} over {v.decisions} decisions with a known cost"
        )
    if s.exploration_share is None:
        lines.append("exploration: no explained decisions in the history")
    else:
        lines.append(
            f"exploration: {100 * s.exploration_share:.1f}% of the last {s.explained} "
            "explained decisions chose a model for its exploration bonus"
        )
    lines += format_quality_sources(s.quality_sources)
    if s.recent:
        lines += ["", "recent decisions:"]
        for r in s.recent:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.time))
            outcome = f"quality {_num(r.quality, '.2f')}, cost {_num(r.cost, '.6f', '$')}"
            lines.append(f"  {when} {r.decision_id[:12]} {r.model or '-'} ({outcome})")
            lines.append(f"      {r.reason or '(no explanation recorded)'}")
            if r.prompt is not None:
                lines.append(f"      prompt: {r.prompt!r}")
    return "\n".join(lines)


def format_quality_sources(sources: QualitySources | None) -> list[str]:
    """The lines of ``conduit stats`` on where quality labels came from and judge cost."""
    if sources is None:
        return []
    labels = sources.labels
    given = ", ".join(f"{k} {v}" for k, v in labels.items() if k != "none")
    lines = [
        f"quality labels by source: {given}; "
        f"{labels.get('none', 0)} answers had no automatic signal"
    ]
    if sources.judge_calls or sources.judge_paused_budget or sources.judge_paused_queue:
        share = sources.judge_share_of_saved
        versus = "" if share is None else f" ({100 * share:.1f}% of what routing saved)"
        lines.append(
            f"judge: {_num(sources.judge_cost, '.4f', '$')} over {sources.judge_calls} calls"
            f"{versus}; paused by budget {sources.judge_paused_budget}, by a full queue "
            f"{sources.judge_paused_queue}; dropped {sources.judge_dropped} "
            f"({sources.judge_garbage} bad outputs)"
        )
    return lines
