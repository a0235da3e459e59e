"""Targets: steer the cost weight online so a budget or a quality floor is met on average.

A :class:`~conduit._types.Preferences` with ``budget``, ``budget_usd`` or
``quality_floor`` names a constraint on a running mean, not a weight. The router
still routes by ``quality * q_hat - w * cost_share - ...``; this module picks ``w``
per target by dual ascent on the running averages: after each outcome,

    log w += step * (realised - goal) / scale

where, for a budget, *realised* is the outcome's cost, *goal* its decision's budget in
USD (``budget`` x the dearest candidate's predicted cost for that query) and *scale*
the recent mean of that predicted cost (a moving average, which forgets the cold
start's estimates; a decision counts in it, and in a relative budget's goals, once every
candidate's cost is known, by a price or an outcome); for a quality floor, *realised* is the
outcome's quality, *goal* ``quality_floor`` x the best candidate's quality for that
query as the router saw it (the router passes its policy's upper bound, so a strong
model it seldom tries cannot drag the floor down), and *scale* 1. Spending above the budget (or
quality above the floor) raises the cost weight; the other way lowers it. The update
is multiplicative, so one step size serves weights from 0.001 to 100, and the
weight is clipped to that range, which stops wind-up while a target is out of reach.
One outcome moves the log weight by at most one ``step``; the part of a larger error
(an outcome costing several times the scale) is carried into the next outcomes' steps
rather than dropped, so the updates stay small and the errors' sum is kept whole.
Sum of the errors over T outcomes is ``Δ log w / step`` (plus what is still carried):
once the weight settles, the realised mean tracks the goal to within that over T.

The state (per target: the log weight and additive sums of goals, costs and
qualities) is plain JSON, part of the router's learned state. Replicas sharing a
state store exchange it as additive deltas like the policy's statistics
(:meth:`Targets.sums`, :meth:`Targets.merge_sums`): every sum adds, and so do the
controller's steps (the log weight minus its start), so the shared weight is the
start plus every replica's steps, as if one controller had seen all the outcomes
(dual ascent's updates add). The moving average of the dearest cost is each
replica's own (a scale, re-estimated within about 100 decisions). Two saved states
fold together with :meth:`Targets.merge` (sums add, log weights averaged by decisions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from cachetools import FIFOCache, LRUCache

from conduit import _validate
from conduit._types import TARGET_KINDS, Preferences, TargetStats
from conduit.engines.bandits._base import FloatArray

__all__ = [
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "SHARED",
    "TARGET_STEP",
    "Targets",
    "target_stats",
    "target_view",
]

#: Step of the dual update on the log cost weight, per outcome (errors are in [-1, 1]).
TARGET_STEP = 0.05
#: The range the controller keeps the cost weight in (Preferences' weights stop at 100).
MIN_WEIGHT, MAX_WEIGHT = 1e-3, 100.0
#: Error (in steps) a controller may carry into later outcomes' steps: one outcome's error
#: beyond one step is spread over the next ones, up to this much.
MAX_CARRY = 100.0
#: Weight of the newest decision in the moving average of the dearest candidate's cost.
RECENT = 0.01
#: Distinct targets tracked at once (least recently used forgotten beyond this).
MAX_TARGETS = 64
#: Decisions awaiting their outcome that the controller remembers (oldest dropped).
MAX_OPEN = 100_000
STATE_VERSION = 1


#: The statistics replicas share through a store, per target (all additive).
SHARED = (
    "steps",
    "decisions",
    "reference_sum",
    "reference_n",
    "goal_sum",
    "goal_n",
    "cost_sum",
    "cost_n",
    "quality_sum",
    "quality_n",
)
#: Where a controller starts when it is first met in another replica's statistics.
_DEFAULT_START = math.log(Preferences().cost)
#: The fields that are not additive sums (each replica's own).
_NOT_SUMS = ("log_weight", "log_start", "reference_recent", "carry")


@dataclass(slots=True)
class _Target:
    """One target's controller: its log cost weight and additive running sums."""

    log_weight: float
    log_start: float = _DEFAULT_START  # the log weight it started from (steps = the rest)
    decisions: float = 0.0
    reference_sum: float = 0.0  # the dearest candidate's predicted cost, where known
    reference_n: float = 0.0
    reference_recent: float = 0.0  # its moving average over about the last 1 / RECENT decisions
    carry: float = 0.0  # error still to be stepped (what one step could not take)
    goal_sum: float = 0.0  # budget in USD, or required quality, per decision where known
    goal_n: float = 0.0
    cost_sum: float = 0.0
    cost_n: float = 0.0
    quality_sum: float = 0.0
    quality_n: float = 0.0

    def goal(self) -> float | None:
        return self.goal_sum / self.goal_n if self.goal_n else None

    def reference(self) -> float | None:
        return self.reference_sum / self.reference_n if self.reference_n else None


def _kind(target: str) -> str:
    return target.split("=", 1)[0]


def _check_key(key: object) -> None:
    if not isinstance(key, str) or _kind(key) not in TARGET_KINDS:
        raise ValueError(f"unknown target {key!r}")


def _finite_max(values: FloatArray) -> float:
    known = values[np.isfinite(values)]
    return float(known.max()) if known.size else math.nan


def target_stats(target: str, sums: Mapping[str, float], weight: float) -> TargetStats:
    """A target's goal against what was realised, from its sums, at cost weight ``weight``."""

    def mean(total: str, n: str) -> float | None:
        return sums.get(total, 0.0) / sums[n] if sums.get(n) else None

    cost, quality = mean("cost_sum", "cost_n"), mean("quality_sum", "quality_n")
    reference = mean("reference_sum", "reference_n")
    return TargetStats(
        target=target,
        decisions=int(sums.get("decisions", 0.0)),
        goal=mean("goal_sum", "goal_n"),
        realised=quality if _kind(target) == "quality_floor" else cost,
        cost_share=None if cost is None or not reference else cost / reference,
        cost_weight=weight,
    )


def target_view(target: str, sums: Mapping[str, float]) -> dict[str, Any]:
    """:func:`target_stats` as JSON, from a store's shared sums (:data:`SHARED`): the
    weight is the default start plus every replica's steps, clipped to the range."""
    log_weight = _DEFAULT_START + sums.get("steps", 0.0)
    weight = math.exp(min(max(log_weight, math.log(MIN_WEIGHT)), math.log(MAX_WEIGHT)))
    return target_stats(target, sums, weight).model_dump()


class Targets:
    """The cost-weight controllers of every target a router has routed under.

    >>> targets = Targets()
    >>> prefs = Preferences(budget=0.5, cost=1.0)
    >>> targets.weight(prefs)
    1.0
    >>> costs, quality = np.array([1.0, 0.1]), np.array([0.9, 0.6])
    >>> targets.decided("d1", prefs, costs, quality)
    >>> targets.observe("d1", cost=1.0)  # spent the dearest model's cost: above budget
    >>> targets.weight(prefs) > 1.0
    True
    """

    def __init__(self, *, step: float = TARGET_STEP) -> None:
        self.step = _validate.number(
            "target step", step, low=0, high=1, strict_low=True, what="a number in (0, 1]"
        )
        #: target -> controller, the least recently used dropped past MAX_TARGETS
        self._targets: LRUCache[str, _Target] = LRUCache(maxsize=MAX_TARGETS)
        #: decision id -> (target, goal) until its outcome, the oldest dropped past MAX_OPEN
        self._open: FIFOCache[str, tuple[str, float]] = FIFOCache(maxsize=MAX_OPEN)

    def _get(self, prefs: Preferences, target: str) -> _Target:
        found = self._targets.get(target)
        if found is None:
            start = min(max(prefs.cost, MIN_WEIGHT), MAX_WEIGHT)
            found = self._targets[target] = _Target(
                log_weight=math.log(start), log_start=math.log(start)
            )
        return found

    def weight(self, prefs: Preferences) -> float:
        """The cost weight to route ``prefs`` with: the controller's for a target, else ``cost``."""
        target = prefs.target
        if target is None:
            return prefs.cost
        return math.exp(self._get(prefs, target).log_weight)

    def decided(
        self, decision_id: str, prefs: Preferences, costs: FloatArray, quality: FloatArray
    ) -> None:
        """Count a decision under ``prefs``; ``costs`` are the candidates' predicted costs
        and ``quality`` their learned mean quality (NaN: not known yet)."""
        target = prefs.target
        if target is None:
            return
        t = self._get(prefs, target)
        t.decisions += 1.0
        # The dearest candidate is known once every candidate's cost is (a price, or an
        # outcome): before that, the dearest known one may be a tenth of it, and a scale
        # and goals taken from it would make the first outcomes weigh ten times too much.
        dearest = float(costs.max()) if costs.size and np.isfinite(costs).all() else math.nan
        if math.isfinite(dearest) and dearest > 0:
            t.reference_sum += dearest
            t.reference_n += 1.0
            recent = t.reference_recent or dearest
            t.reference_recent = recent + RECENT * (dearest - recent)
        goal = math.nan
        if prefs.budget is not None:
            goal = prefs.budget * dearest
        elif prefs.budget_usd is not None:
            goal = prefs.budget_usd
        elif prefs.quality_floor is not None:
            goal = prefs.quality_floor * _finite_max(quality)
        if math.isfinite(goal) and goal > 0:
            t.goal_sum += goal
            t.goal_n += 1.0
        self._open[decision_id] = (target, goal)

    def observe(
        self, decision_id: str, *, quality: float | None = None, cost: float | None = None
    ) -> None:
        """Learn from a decision's outcome (either part, as it arrives)."""
        target, goal = self._open.get(decision_id, ("", math.nan))
        t = self._targets.get(target)
        if t is None:
            return
        budget = _kind(target) != "quality_floor"
        if cost is not None:
            t.cost_sum += cost
            t.cost_n += 1.0
        if quality is not None:
            t.quality_sum += quality
            t.quality_n += 1.0
        realised = cost if budget else quality
        if realised is None:
            return
        del self._open[decision_id]
        if not (math.isfinite(goal) and goal > 0):
            return  # nothing was known to aim at when it was decided
        # Each outcome against its own decision's goal: a running mean of goals would
        # carry the cold start's cost estimates for thousands of queries.
        scale = max(t.reference_recent, goal) if budget else 1.0
        # One outcome moves the weight by at most one step; the rest of a larger error
        # (a long prompt on the dearest model costs many times the mean) is carried into
        # the next outcomes' steps, not dropped: dropping it biases the realised mean
        # above the budget (on RouteLLM MMLU, half of GPT-4's spend is on prompts over
        # 1.25x its mean cost; clipped, a 20 % budget was overspent by 18-35 %).
        t.carry = max(-MAX_CARRY, min(MAX_CARRY, t.carry + (realised - goal) / scale))
        error = max(-1.0, min(1.0, t.carry))
        t.carry -= error
        t.log_weight = min(
            max(t.log_weight + self.step * error, math.log(MIN_WEIGHT)), math.log(MAX_WEIGHT)
        )

    def stats(self) -> dict[str, TargetStats]:
        return {
            target: target_stats(target, asdict(t), math.exp(t.log_weight))
            for target, t in self._targets.items()
        }

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "targets": {k: asdict(t) for k, t in self._targets.items()},
        }

    @staticmethod
    def _parse(state: Mapping[str, Any]) -> dict[str, _Target]:
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise ValueError(f"target state must be a mapping of version {STATE_VERSION}")
        raw = state.get("targets")
        if not isinstance(raw, Mapping):
            raise ValueError("target state holds no targets mapping")
        parsed: dict[str, _Target] = {}
        for key, fields in raw.items():
            _check_key(key)
            try:
                t = _Target(**{k: float(v) for k, v in dict(fields).items()})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"target {key!r} has malformed fields: {exc}") from exc
            signed = ("log_weight", "log_start", "carry")
            sums = [v for k, v in asdict(t).items() if k not in signed]
            low, high = math.log(MIN_WEIGHT), math.log(MAX_WEIGHT)
            if (
                not all(math.isfinite(v) and v >= 0 for v in sums)
                or not (low - 1e-9 <= t.log_weight <= high + 1e-9)
                or not abs(t.carry) <= MAX_CARRY
            ):
                raise ValueError(f"target {key!r} holds a weight out of range or a bad sum")
            parsed[key] = t
        return parsed

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the controllers by saved ones; a malformed state raises ValueError."""
        parsed = self._parse(state)
        self._targets.clear()
        self._targets.update(parsed)
        self._open.clear()

    def merge(self, state: Mapping[str, Any]) -> None:
        """Fold in another replica's controllers: sums add, log weights average by decisions."""
        for key, other in self._parse(state).items():
            mine = self._targets.get(key)
            if mine is None:
                self._targets[key] = other
                continue
            total = mine.decisions + other.decisions
            if total > 0:
                mine.log_weight = (
                    mine.log_weight * mine.decisions + other.log_weight * other.decisions
                ) / total
            for name in asdict(mine):
                if name not in _NOT_SUMS:
                    setattr(mine, name, getattr(mine, name) + getattr(other, name))

    # -- sharing through a store: additive deltas --------------------------------------------
    def sums(self) -> dict[str, dict[str, float]]:
        """Every controller's shared statistics (:data:`SHARED`), all additive."""
        out: dict[str, dict[str, float]] = {}
        for key, t in self._targets.items():
            fields = asdict(t)
            out[key] = {k: float(fields[k]) for k in SHARED if k != "steps"}
            out[key]["steps"] = t.log_weight - t.log_start
        return out

    def merge_sums(self, delta: Mapping[str, Mapping[str, float]]) -> None:
        """Add what other replicas' controllers learned (from :meth:`sums` differences);
        a malformed delta raises ValueError and changes nothing."""
        checked: list[tuple[str, dict[str, float]]] = []
        for key, row in delta.items():
            _check_key(key)
            if not isinstance(row, Mapping) or set(row) != set(SHARED):
                raise ValueError(f"target {key!r} delta must have keys {sorted(SHARED)}")
            values = {k: float(v) for k, v in row.items()}
            if not all(math.isfinite(v) for v in values.values()):
                raise ValueError(f"target {key!r} delta is not finite")
            checked.append((key, values))
        low, high = math.log(MIN_WEIGHT), math.log(MAX_WEIGHT)
        for key, values in checked:
            t = self._targets.get(key)
            if t is None:
                t = self._targets[key] = _Target(log_weight=_DEFAULT_START)
            for name, value in values.items():
                if name == "steps":
                    # clipped like a local step (the clip is then part of the next delta)
                    t.log_weight = min(max(t.log_weight + value, low), high)
                else:
                    setattr(t, name, max(getattr(t, name) + value, 0.0))
