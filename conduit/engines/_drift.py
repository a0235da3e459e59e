"""Change detection: notice when a model's quality or cost shifts under the same name.

Providers update models and prices behind one name. Learned means weigh every
outcome since the start, so after such a change they take as many outcomes again
to follow. Per model, this module watches two streams of residuals:

- quality: the outcome's quality minus the quality the policy predicted for that
  query when it chose the model (so the policy's own learning, and which queries it
  sends where, do not look like a change);
- cost: ``log(cost / predicted cost)`` for the query.

Each stream runs a two-sided CUSUM (the Page-Hinkley test) on residuals
standardised by an exponentially weighted mean and variance (about ``memory``
outcomes): ``up = max(0, up + z - slack)``, ``down = max(0, down - z - slack)``,
an alarm when either exceeds ``threshold`` after ``warmup`` outcomes of the model
(counted again from each alarm, while the learned estimate settles on the new level).
The defaults (``slack`` 0.25, ``threshold`` 30 standard deviations) detect a shift
of half a standard deviation (a quality drop of 0.2 on 0/1 outcomes around 0.8) in
about 120 of the model's outcomes, and a larger one sooner. On a stationary stream a
false alarm comes about once per 10^5 outcomes per model and stream: 0/1 outcomes are
skewed after standardising (a rare 0 is a large step), which for a random walk of
steps ``-z - slack`` puts the alarm rate near ``exp(-0.4 * threshold)`` rather than
the Gaussian ``exp(-2 * slack * threshold)``; at 20 it was once per few thousand.

On an alarm the router forgets: it scales that model's learned statistics of that
kind (the policy's and the outcome sums for quality; the cost sums for cost) so they
weigh :data:`KEEP` outcomes (:func:`keep_factor`; 20 for quality, 2 for cost): the old
estimate stays as a weak prior, the new behaviour takes over within a few dozen
outcomes, and a false alarm costs little. The detector's state is plain arrays, part
of the router's state.

With a shared state store the forget is the store's: it scales the global sums once, at
the next sync, and every replica follows (:mod:`conduit.stores._sync`). Each replica's
detector watches its own outcomes; its alarms are counted (:meth:`DriftDetector.alarms`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conduit import _validate
from conduit._errors import DuplicateModelError, StateError, UnknownModelError
from conduit.engines.bandits._base import FloatArray

__all__ = ["KEEP", "STREAMS", "Change", "DriftDetector", "keep_factor"]

#: The two outcome streams watched per model.
STREAMS = ("quality", "cost")
#: Per stream: outcomes seen since the last alarm, EW mean and variance, the two CUSUMs,
#: alarms raised so far.
_FIELDS = ("n", "mean", "var", "up", "down", "alarms")
_N, _MEAN, _VAR, _UP, _DOWN, _ALARMS = range(len(_FIELDS))
#: Outcomes' worth of the old statistics kept after a change (a weak prior), per stream.
#: Cost is nearly deterministic per prompt length, so its old level is all but dropped.
KEEP = {"quality": 20.0, "cost": 2.0}
#: Standardised residuals are clipped to this, so one outlier (a free cached answer, an
#: error's zero cost) cannot raise an alarm alone.
_CLIP = 4.0
#: Smallest standard deviation of a stream (a model that always scores 1 has none).
_MIN_STD = 0.1
STATE_VERSION = 1


def keep_factor(n: float, keep: float) -> float:
    """The factor that scales statistics of ``n`` outcomes down to ``keep`` outcomes' worth.

    >>> keep_factor(1000.0, 20.0), keep_factor(10.0, 20.0)
    (0.02, 1.0)
    """
    return 1.0 if n <= keep else keep / n


@dataclass(frozen=True, slots=True)
class Change:
    """A detected change: which model, which stream, which way (+1 up, -1 down)."""

    model: str
    stream: str
    direction: int


class DriftDetector:
    """Two-sided CUSUM per model and stream on standardised residuals.

    >>> d = DriftDetector(warmup=20)
    >>> d.add_model("m")
    >>> rng = np.random.default_rng(0)
    >>> [d.observe("m", "quality", float(rng.random() < 0.8) - 0.8) for _ in range(300)][-1]
    >>> changes = [d.observe("m", "quality", float(rng.random() < 0.5) - 0.8) for _ in range(300)]
    >>> next(c for c in changes if c is not None)
    Change(model='m', stream='quality', direction=-1)
    """

    def __init__(
        self,
        *,
        threshold: float = 30.0,
        slack: float = 0.25,
        warmup: int = 100,
        memory: int = 500,
    ) -> None:
        self.threshold = _validate.positive("threshold", threshold)
        self.slack = _validate.positive("slack", slack)
        self.warmup = _validate.integer("warmup", warmup, low=1)
        self.memory = _validate.integer("memory", memory, low=1)
        self._models: dict[str, FloatArray] = {}

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def add_model(self, model: str) -> None:
        if model in self._models:
            raise DuplicateModelError(f"model {model!r} is already watched")
        self._models[model] = np.zeros((len(STREAMS), len(_FIELDS)))

    def remove_model(self, model: str) -> None:
        if self._models.pop(model, None) is None:
            raise UnknownModelError(f"unknown model {model!r}")

    def observe(self, model: str, stream: str, residual: float) -> Change | None:
        """Take one residual of ``model``'s ``stream``; the change it completes, if any."""
        state = self._models.get(model)
        if state is None or not math.isfinite(residual):
            return None
        s = state[STREAMS.index(stream)]
        s[_N] += 1.0
        rate = max(1.0 / s[_N], 1.0 / self.memory)
        if s[_N] == 1.0:
            s[_MEAN], s[_VAR] = residual, 0.0
            return None
        # Standardise against the mean and variance *before* this residual.
        std = max(math.sqrt(s[_VAR]), _MIN_STD)
        z = max(-_CLIP, min(_CLIP, (residual - s[_MEAN]) / std))
        diff = residual - s[_MEAN]
        s[_MEAN] += rate * diff
        s[_VAR] = (1.0 - rate) * (s[_VAR] + rate * diff * diff)
        s[_UP] = max(0.0, s[_UP] + z - self.slack)
        s[_DOWN] = max(0.0, s[_DOWN] - z - self.slack)
        if s[_N] < self.warmup or max(s[_UP], s[_DOWN]) <= self.threshold:
            return None
        direction = 1 if s[_UP] > s[_DOWN] else -1
        alarms = s[_ALARMS] + 1.0
        s[:] = 0.0
        s[_ALARMS] = alarms
        return Change(model=model, stream=stream, direction=direction)

    def alarms(self) -> dict[str, dict[str, int]]:
        """Changes detected so far, per model and stream."""
        return {
            m: {name: int(state[k, _ALARMS]) for k, name in enumerate(STREAMS)}
            for m, state in self._models.items()
        }

    # -- state -----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "slack": self.slack,
            "warmup": self.warmup,
            "memory": self.memory,
        }

    def state_dict(self) -> dict[str, Any]:
        models = list(self._models)
        state = (
            np.stack([self._models[m] for m in models])
            if models
            else np.zeros((0, len(STREAMS), len(_FIELDS)))
        )
        return {
            "version": STATE_VERSION,
            "fields": list(_FIELDS),
            "streams": list(STREAMS),
            "models": models,
            "state": state,
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Take a saved state for the models watched now (others are ignored; models not in
        it start fresh). A malformed state raises :class:`StateError` and changes nothing."""
        if (
            not isinstance(saved, Mapping)
            or saved.get("version") != STATE_VERSION
            or list(saved.get("fields", [])) != list(_FIELDS)
            or list(saved.get("streams", [])) != list(STREAMS)
        ):
            raise StateError(f"drift state must be version {STATE_VERSION} with fields {_FIELDS}")
        models = saved.get("models")
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise StateError("drift state's models must be a list of names")
        try:
            state = np.asarray(saved.get("state"), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StateError(f"drift state is not numeric: {exc}") from exc
        if state.shape != (len(models), len(STREAMS), len(_FIELDS)) or not np.all(
            np.isfinite(state)
        ):
            raise StateError(f"drift state has shape {state.shape} or non-finite values")
        counts = state[:, :, [_N, _VAR, _UP, _DOWN, _ALARMS]]
        if np.any(counts < 0):
            raise StateError("drift state holds negative counts, variances or sums")
        for i, model in enumerate(models):
            if model in self._models:
                self._models[model] = state[i].copy()
