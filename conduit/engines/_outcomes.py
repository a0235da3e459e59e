"""What the router learns besides quality: each model's cost and latency, and counts.

All statistics are additive sums per model, like the bandits', so they merge
across processes and survive adding or removing models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from conduit._errors import DuplicateModelError, StateError, UnknownModelError
from conduit.engines.bandits._base import FloatArray

__all__ = ["OutcomeStats", "Price"]

#: Keys of the per-model sums.
KEYS = (
    "decisions",
    "quality_n",
    "quality_sum",
    "cost_n",
    "cost_sum",
    "cost_tokens",
    "cost_tokens2",
    "cost_cross",
    "latency_n",
    "latency_sum",
)
#: The columns of the cost model's sums (see :meth:`OutcomeStats.predicted_costs`).
_COST_COLUMNS = [
    KEYS.index(k) for k in ("cost_n", "cost_sum", "cost_tokens", "cost_tokens2", "cost_cross")
]

#: Output tokens assumed for a known price before any cost has been observed.
DEFAULT_OUTPUT_TOKENS = 256.0
#: Prompt tokens are counted in thousands inside the cost model (conditioning).
_KTOK = 1000.0


class Price:
    """A model's list price in USD per token, input and output."""

    __slots__ = ("input", "output")

    def __init__(self, input: float, output: float) -> None:
        self.input = float(input)
        self.output = float(output)

    def predict(self, tokens: float) -> float:
        """List-price cost of a prompt of ``tokens`` with a typical answer."""
        return self.input * tokens + self.output * DEFAULT_OUTPUT_TOKENS

    def __repr__(self) -> str:
        return f"Price(input={self.input!r}, output={self.output!r})"


class OutcomeStats:
    """Per-model sums of quality, cost (with the prompt tokens it was paid for) and latency."""

    def __init__(self) -> None:
        self._models: list[str] = []
        self._index: dict[str, int] = {}
        self._sums = np.zeros((0, len(KEYS)))
        self.prices: dict[str, Price] = {}

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def add_model(self, model: str, price: Price | None = None) -> None:
        if model in self._index:
            raise DuplicateModelError(f"model {model!r} is already known")
        self._index[model] = len(self._models)
        self._models.append(model)
        self._sums = np.vstack([self._sums, np.zeros(len(KEYS))])
        if price is not None:
            self.prices[model] = price

    def remove_model(self, model: str) -> None:
        i = self._row(model)
        self._sums = np.delete(self._sums, i, axis=0)
        del self._models[i]
        self._index = {m: j for j, m in enumerate(self._models)}
        self.prices.pop(model, None)

    def _row(self, model: str) -> int:
        try:
            return self._index[model]
        except KeyError:
            raise UnknownModelError(f"unknown model {model!r}") from None

    def add(self, model: str, **values: float) -> None:
        row = self._sums[self._row(model)]
        for key, value in values.items():
            row[KEYS.index(key)] += value

    def record_cost(self, model: str, cost: float, tokens: float) -> None:
        """One observed cost of a prompt of ``tokens`` (estimated) prompt tokens."""
        t = tokens / _KTOK
        self.add(
            model, cost_n=1.0, cost_sum=cost, cost_tokens=t, cost_tokens2=t * t, cost_cross=cost * t
        )

    def predicted_costs(self, tokens: float) -> FloatArray:
        """Predicted cost of a prompt of ``tokens`` for every model (NaN where unknown).

        Cost is modelled per model as ``fixed + rate * prompt_tokens``, by least
        squares on what was observed: ``fixed`` stands for the answer (output
        tokens), ``rate`` for the prompt, so neither a short prompt with a long
        answer nor a long few-shot prompt skews the other. A known list price
        enters as two pseudo-observations on its own line (at 0 and 1,000 prompt
        tokens), so it is used from the first query and observations take over.
        Where every observation had the same length, or the fit slopes down, the
        prediction is the mean observed cost.
        """
        n, c, t, tt, ct = self._cost_sums()
        for model, price in self.prices.items():
            i = self._index[model]
            low, high = price.predict(0.0), price.predict(_KTOK)
            n[i] += 2.0
            c[i] += low + high
            t[i] += 1.0
            tt[i] += 1.0
            ct[i] += high
        return _fit_costs(n, c, t, tt, ct, tokens)

    def observed_cost(self, model: str, tokens: float) -> float:
        """``model``'s predicted cost for ``tokens`` from its observed costs alone (no list
        price; NaN before any): what change detection compares a new cost with, so the
        list price's pull, fading as observations come in, does not read as a change."""
        n, c, t, tt, ct = self._cost_sums(slice(i := self._row(model), i + 1))
        return float(_fit_costs(n, c, t, tt, ct, tokens)[0])

    def _cost_sums(self, rows: slice = slice(None)) -> tuple[FloatArray, ...]:
        """Copies of the five cost sums' columns (of ``rows``)."""
        return tuple(self._sums[rows, _COST_COLUMNS].T.copy())

    def mean(self, key: str) -> FloatArray:
        """Mean quality, cost or latency per model (NaN where nothing was observed)."""
        n = self._sums[:, KEYS.index(f"{key}_n")]
        total = self._sums[:, KEYS.index(f"{key}_sum")]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    def column(self, key: str) -> FloatArray:
        return self._sums[:, KEYS.index(key)].copy()

    # -- state, as plain arrays ------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, float]]:
        return {
            m: dict(zip(KEYS, map(float, self._sums[i]), strict=True))
            for i, m in enumerate(self._models)
        }

    def merge(self, delta: Mapping[str, Mapping[str, float]]) -> None:
        rows: list[tuple[str, FloatArray]] = []
        for model, parts in delta.items():
            if set(parts) != set(KEYS):
                raise StateError(f"outcome delta for {model!r} has keys {sorted(parts)}")
            row = np.array([float(parts[k]) for k in KEYS])
            if not np.all(np.isfinite(row)):
                raise StateError(f"outcome delta for {model!r} is not finite")
            rows.append((model, row))
        for model, row in rows:
            if model not in self._index:
                self.add_model(model)
            self._sums[self._index[model]] += row

    def state_dict(self) -> dict[str, Any]:
        return {
            "keys": list(KEYS),
            "models": list(self._models),
            "sums": self._sums.copy(),
            "prices": {m: [p.input, p.output] for m, p in self.prices.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a malformed state raises and changes nothing."""
        if not isinstance(state, Mapping) or list(state.get("keys", [])) != list(KEYS):
            raise StateError("outcome statistics were saved with other keys")
        models = state.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise StateError(f"outcome models must be a list of names, got {models!r}")
        if len(set(models)) != len(models):
            raise StateError(f"outcome statistics list a model twice: {models}")
        try:
            sums = np.asarray(state.get("sums"), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StateError(f"outcome sums are not numeric: {exc}") from exc
        if sums.shape != (len(models), len(KEYS)) or not np.all(np.isfinite(sums)):
            raise StateError(f"outcome sums have shape {sums.shape} or non-finite values")
        raw_prices = state.get("prices", {})
        prices: dict[str, Price] = {}
        if not isinstance(raw_prices, Mapping):
            raise StateError("outcome prices must map model names to (input, output)")
        for model, pair in raw_prices.items():
            try:
                price = Price(*pair)
            except (TypeError, ValueError) as exc:
                raise StateError(f"price of {model!r} is malformed: {pair!r}") from exc
            if model not in models or not all(
                np.isfinite(v) and v >= 0 for v in (price.input, price.output)
            ):
                raise StateError(f"price of {model!r} is unknown or not a finite amount >= 0")
            prices[model] = price
        self._models = list(models)
        self._index = {m: i for i, m in enumerate(models)}
        self._sums = sums.copy()
        self.prices = prices


def _fit_costs(
    n: FloatArray, c: FloatArray, t: FloatArray, tt: FloatArray, ct: FloatArray, tokens: float
) -> FloatArray:
    """``fixed + rate * prompt_tokens`` by least squares from the sums (see
    :meth:`OutcomeStats.predicted_costs`), the mean where the fit is flat or slopes down."""
    x = tokens / _KTOK
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = c / n
        det = n * tt - t * t
        rate = (n * ct - t * c) / det
        fixed = (c - rate * t) / n
        fitted = fixed + rate * x
    flat = ~(det > 1e-12 * np.maximum(n * n, 1.0)) | ~(rate >= 0)
    predicted = np.where(flat, mean, np.maximum(fitted, 0.0))
    return np.where(n > 0, predicted, np.nan)
