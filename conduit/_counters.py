"""Where a router's quality labels came from, and what judging cost: additive counters.

Counted by the router (:meth:`conduit.Router.count`, and each quality learned, by its
source) and stored with its learning, as a third group of statistics next to the
policy's and the outcome sums (``sums["counters"]["*"]``), so they are summed across
replicas and restarts and ``conduit stats`` and the dashboard read them from the store.

>>> counters = Counters()
>>> counters.add("quality_judge", 2)
>>> counters.add("judge_cost", 0.25)
>>> counters.snapshot()["quality_judge"], counters.snapshot()["judge_cost"]
(2.0, 0.25)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conduit._errors import ValidationError

if TYPE_CHECKING:
    from conduit._types import RouterStats

__all__ = [
    "COUNTERS", "KEY", "PART", "SOURCES", "Counters", "routing_saved", "source_counts"
]  # fmt: skip

#: Where quality labels come from: a person, the judge, a pairwise shadow comparison, a
#: regeneration, or LiteLLM's automatic signals (errors, truncation, refusals, bad JSON).
SOURCES = ("explicit", "judge", "shadow", "regeneration", "automatic")
#: Every counter: labels by source; ``no_signal``: successful answers no automatic signal
#: graded (only a judge, a regeneration or a person can grade them); the judge's calls,
#: cost (USD) and what it dropped or skipped.
COUNTERS = (
    *(f"quality_{s}" for s in SOURCES),
    "no_signal",
    "judge_sampled",
    "judge_calls",
    "judge_cost",
    "judge_paused_budget",
    "judge_paused_queue",
    "judge_garbage",
    "judge_errors",
    "judge_timeouts",
)
#: The statistics group (``Sums`` part) and its one entry that hold the counters in a store.
PART, KEY = "counters", "*"


class Counters:
    """A fixed set of non-negative, additive counters (thread-safe)."""

    def __init__(self) -> None:
        self._values = dict.fromkeys(COUNTERS, 0.0)
        self._lock = threading.Lock()

    def add(self, name: str, amount: float = 1.0) -> None:
        """Add ``amount`` (finite, >= 0) to counter ``name`` (one of :data:`COUNTERS`)."""
        if name not in self._values:
            raise ValidationError(f"unknown counter {name!r}; counters are {list(COUNTERS)}")
        amount = float(amount)
        if not math.isfinite(amount) or amount < 0:
            raise ValidationError(f"a counter grows by a finite amount >= 0, got {amount!r}")
        with self._lock:
            self._values[name] += amount

    def merge(self, delta: Mapping[str, Any]) -> None:
        """Add counts learned elsewhere (unknown names, from a newer version, are ignored)."""
        with self._lock:
            for name, value in delta.items():
                if name in self._values:
                    self._values[name] = max(self._values[name] + float(value), 0.0)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)

    def load(self, values: Mapping[str, Any]) -> None:
        """Replace the counts (a saved state); unknown names are ignored."""
        with self._lock:
            for name in self._values:
                value = float(values.get(name, 0.0))
                self._values[name] = value if math.isfinite(value) and value > 0 else 0.0


def source_counts(counters: Mapping[str, float]) -> dict[str, int]:
    """Quality labels by source, and ``none``: answers with no automatic signal."""
    out = {s: int(counters.get(f"quality_{s}", 0.0)) for s in SOURCES}
    out["none"] = int(counters.get("no_signal", 0.0))
    return out


def routing_saved(stats: RouterStats) -> float | None:
    """USD routing saved against sending every decision to the dearest model (by mean cost).

    Over the models whose mean cost is known: ``sum(decisions * (dearest - own mean cost))``.
    """
    costs = {m: s.mean_cost for m, s in stats.models.items() if s.mean_cost is not None}
    if not costs:
        return None
    dearest = max(costs.values())
    return sum(stats.models[m].decisions * (dearest - c) for m, c in costs.items())
