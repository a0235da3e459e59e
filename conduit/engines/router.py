"""The Router: query -> features -> constraints -> policy -> decision; feedback -> learning.

The hot path (:meth:`Router.route` with a cached query) is a handful of numpy
products under one lock: no I/O, no network. Features of a new query are
computed once (off the event loop in the async API) and cached; the decision
keeps them, so feedback never recomputes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conduit.engines.bandits import ALGORITHMS, Bandit, make_bandit
from conduit.engines.bandits.base import FloatArray
from conduit.engines.features.extractor import Backend, FeatureExtractor, make_embedder
from conduit.engines.outcomes import OutcomeStats, Price
from conduit.errors import (
    ConfigurationError,
    DuplicateModelError,
    InvalidFeedbackError,
    InvalidQueryError,
    NoModelAvailableError,
    StateError,
    UnknownDecisionError,
    UnknownModelError,
)
from conduit.feedback import Pending, PendingDecisions
from conduit.state import read_state, write_state
from conduit.types import (
    Constraints,
    Explanation,
    ModelScore,
    ModelStats,
    Preferences,
    Query,
    RouterStats,
    RoutingDecision,
)

if TYPE_CHECKING:
    from conduit.stores import Store, StoreSync

__all__ = ["DEFAULT_ALGORITHM", "Router", "estimate_tokens"]

logger = logging.getLogger("conduit.router")

#: What ``Router(models)`` runs: UCB1 for the cold start, then LinUCB (the guide's default).
DEFAULT_ALGORITHM = "hybrid"
#: What ``use_hybrid=False`` without an explicit algorithm runs (the guide's non-hybrid default).
NON_HYBRID_ALGORITHM = "thompson"
#: Largest cost (USD) and latency (seconds) one outcome may report. Far beyond any real
#: call, and small enough that no number of them can overflow the learned sums to inf.
MAX_COST = 1e6
MAX_LATENCY = 1e6
PriceLike = Price | tuple[float, float] | Mapping[str, float]


def estimate_tokens(text: str) -> float:
    """Prompt tokens, estimated as characters / 4 (the same on both sides of the cost model)."""
    return max(len(text) / 4.0, 1.0)


def _as_price(model: str, value: PriceLike) -> Price:
    if isinstance(value, Price):
        price = value
    elif isinstance(value, Mapping):
        price = Price(value.get("input", 0.0), value.get("output", 0.0))
    else:
        try:
            price = Price(*value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"price of {model!r} must be (input, output) per token"
            ) from exc
    for part in (price.input, price.output):
        if not math.isfinite(part) or part < 0:
            raise ConfigurationError(f"price of {model!r} must be finite and >= 0, got {price}")
    return price


def _known(value: float) -> float | None:
    """A learned or predicted number, or None where it is not known yet (NaN)."""
    return None if math.isnan(value) else float(value)


def _shares(values: FloatArray) -> FloatArray:
    """Each value as a fraction of the largest known one.

    An unknown value (NaN: no price and nothing observed yet) counts as free:
    optimism in the face of uncertainty, so an untried model is tried once and
    its cost learned, rather than assumed as dear as the dearest and never tried.
    """
    known = np.isfinite(values)
    if not known.any():
        return np.zeros_like(values)
    top = float(values[known].max())
    if top <= 0:
        return np.zeros_like(values)
    return np.where(known, values / top, 0.0)


def _finite_feedback(name: str, value: object, upper: float, *, bounded: bool = False) -> float:
    """``value`` if it is a finite number in [0, ``upper``]; ``bounded``: say the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidFeedbackError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidFeedbackError(f"{name} must be finite, got {number}")
    if bounded and not 0 <= number <= upper:
        raise InvalidFeedbackError(f"{name} must be [0, {upper:g}], got {number}")
    if number < 0:
        raise InvalidFeedbackError(f"{name} must be >= 0, got {number}")
    if number > upper:
        raise InvalidFeedbackError(f"{name} must be at most {upper:g}, got {number}")
    return number


@dataclass(frozen=True, slots=True)
class _Reasons:
    """What one decision was made of, kept for :meth:`Router.explain` in a tenth of the
    memory of its :class:`RoutingDecision` (rebuilt from this on demand)."""

    model: str
    names: tuple[str, ...]
    numbers: FloatArray
    """Rows: utility, quality, exploration bonus, predicted cost, latency (NaN: unknown)."""
    reason: str
    propensity: float
    confidence: float
    phase: str
    excluded: dict[str, str]
    exploit: int
    preferences: Preferences

    def decision(self, decision_id: str) -> RoutingDecision:
        utility, mean, bonus, costs, latency = self.numbers
        return RoutingDecision(
            decision_id=decision_id,
            selected_model=self.model,
            confidence=self.confidence,
            propensity=self.propensity,
            scores={
                name: ModelScore(
                    utility=float(utility[j]),
                    quality=float(mean[j]),
                    bonus=float(bonus[j]),
                    cost=_known(costs[j]),
                    latency=_known(latency[j]),
                )
                for j, name in enumerate(self.names)
            },
            reason=self.reason,
            algorithm=self.phase,
            excluded=dict(self.excluded),
            exploring=self.names[self.exploit] != self.model,
            exploit_model=self.names[self.exploit],
        )


class Router:
    """A router that learns, from outcomes, which model to send each query to.

    >>> router = Router(models=["small", "large"], bandit_algorithm="ucb1", seed=0,
    ...                 embedding_backend="hashing")
    >>> decision = router.route_sync("What is 2 + 2?")
    >>> decision.selected_model in ("small", "large")
    True
    >>> sorted(router.update_sync(decision.decision_id, quality=1.0, cost=0.001))
    ['cost', 'quality']
    >>> router.update_sync(decision.decision_id, quality=1.0)  # already learned: ignored
    frozenset()
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        bandit_algorithm: str | None = None,
        use_hybrid: bool | None = None,
        embedding_model: str = "all-MiniLM-L6-v2",
        embedding_backend: Backend = "auto",
        seed: int | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        switch_after: int = 100,
        bandit_params: Mapping[str, Any] | None = None,
        projection_dim: int | None = 64,
        feature_cache_size: int = 10_000,
        pending_ttl: float = 24 * 3600.0,
        max_pending: int = 100_000,
        state_path: str | Path | None = None,
        autosave_every: int = 100,
        extractor: FeatureExtractor | None = None,
        state_store: str | Store | None = None,
        sync_interval: float = 5.0,
        max_explanations: int = 1000,
    ) -> None:
        if isinstance(models, str) or not isinstance(models, Iterable):
            raise ConfigurationError("models must be a list of model names")
        models = list(models)
        if not models:
            raise ConfigurationError("models is empty: give at least one model name")
        seen: set[str] = set()
        for model in models:
            if not isinstance(model, str) or not model.strip():
                raise ConfigurationError(f"model names must be non-empty str, got {model!r}")
            if model in seen:
                raise DuplicateModelError(f"model {model!r} is listed twice")
            seen.add(model)
        if (use_hybrid and bandit_algorithm not in (None, "hybrid")) or (
            use_hybrid is False and bandit_algorithm == "hybrid"
        ):
            raise ConfigurationError(
                f"use_hybrid={use_hybrid} contradicts bandit_algorithm={bandit_algorithm!r}: "
                "use_hybrid=True means UCB1 then LinUCB"
            )
        if bandit_algorithm is not None:
            algorithm = bandit_algorithm
        elif use_hybrid is None:
            algorithm = DEFAULT_ALGORITHM
        else:
            algorithm = "hybrid" if use_hybrid else NON_HYBRID_ALGORITHM
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"unknown bandit_algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}"
            )
        params = dict(bandit_params or {})
        if algorithm == "hybrid":
            params.setdefault("switch_after", switch_after)
        contextual = ALGORITHMS[algorithm].contextual
        if extractor is None and contextual:
            extractor = FeatureExtractor(
                embedder=make_embedder(embedding_model, embedding_backend),
                projection_dim=projection_dim,
                cache_size=feature_cache_size,
            )
        self.extractor = extractor
        self.algorithm = algorithm
        self.seed = seed
        dim = extractor.dim if (extractor is not None and contextual) else 1
        self._bandit: Bandit = make_bandit(algorithm, dim=dim, seed=seed, **params)
        self._outcomes = OutcomeStats()
        self._pending = PendingDecisions(ttl=pending_ttl, maxsize=max_pending)
        self._aux_rng = np.random.default_rng(None if seed is None else seed + 7919)
        self._lock = threading.RLock()
        if (
            isinstance(max_explanations, bool)
            or not isinstance(max_explanations, int)
            or max_explanations < 0
        ):
            raise ConfigurationError(
                f"max_explanations must be an int >= 0, got {max_explanations!r}"
            )
        self.max_explanations = max_explanations
        self._recent: OrderedDict[str, _Reasons] = OrderedDict()
        price_map = dict(prices or {})
        for model in price_map:
            if model not in seen:
                raise UnknownModelError(f"prices given for {model!r}, which is not in models")
        for model in models:
            self._bandit.add_arm(model)
            self._outcomes.add_model(
                model, _as_price(model, price_map[model]) if model in price_map else None
            )
        self.state_path = Path(state_path) if state_path is not None else None
        self.autosave_every = int(autosave_every)
        self._since_save = 0
        self._save_thread: threading.Thread | None = None
        if self.state_path is not None and self.state_path.exists():
            self.load(self.state_path)
        self.store_sync: StoreSync | None = None
        if state_store is not None:  # learning shared through a store, synced in the background
            from conduit.stores import StoreSync

            self.store_sync = StoreSync(self, state_store, interval=sync_interval)
            self.store_sync.start()

    # -- models ----------------------------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        return self._bandit.arms

    @property
    def bandit(self) -> Bandit:
        return self._bandit

    def add_model(self, model: str, *, price: PriceLike | None = None) -> None:
        """Start routing to ``model`` too; what the others learned is kept."""
        with self._lock:
            converted = _as_price(model, price) if price is not None else None
            self._bandit.add_arm(model)
            self._outcomes.add_model(model, converted)

    def remove_model(self, model: str) -> None:
        """Stop routing to ``model`` and forget it; the others keep what they learned."""
        with self._lock:
            if model not in self.models:
                raise UnknownModelError(f"unknown model {model!r}; models are {list(self.models)}")
            if len(self.models) == 1:
                raise ConfigurationError("cannot remove the last model")
            self._bandit.remove_arm(model)
            self._outcomes.remove_model(model)

    def set_price(self, model: str, price: PriceLike) -> None:
        with self._lock:
            if model not in self.models:
                raise UnknownModelError(f"unknown model {model!r}")
            self._outcomes.prices[model] = _as_price(model, price)

    # -- routing ---------------------------------------------------------------------------
    @staticmethod
    def _as_query(
        query: Query | str, preferences: Preferences | str | None, constraints: Constraints | None
    ) -> Query:
        try:
            if isinstance(query, Query):
                if preferences is None and constraints is None:
                    return query
                return Query(
                    text=query.text,
                    preferences=Preferences.of(preferences) if preferences else query.preferences,
                    constraints=constraints or query.constraints,
                )
            return Query(
                text=query,
                preferences=Preferences.of(preferences),
                constraints=constraints or Constraints(),
            )
        except ValueError as exc:
            raise InvalidQueryError(str(exc)) from exc

    def features(self, text: str) -> FloatArray:
        """The (cached) feature vector the policy sees for ``text``."""
        if self.extractor is None or not self._bandit.contextual:
            return np.ones(1)
        return self.extractor.features(text)

    def route_sync(
        self,
        query: Query | str,
        *,
        preferences: Preferences | str | None = None,
        constraints: Constraints | None = None,
    ) -> RoutingDecision:
        """Choose a model for ``query`` (blocking twin of :meth:`route`)."""
        q = self._as_query(query, preferences, constraints)
        return self._decide(q, self.features(q.text))

    async def route(
        self,
        query: Query | str,
        *,
        preferences: Preferences | str | None = None,
        constraints: Constraints | None = None,
    ) -> RoutingDecision:
        """Choose a model for ``query``; a new query is embedded in a worker thread."""
        q = self._as_query(query, preferences, constraints)
        extractor = self.extractor
        if extractor is None or not self._bandit.contextual:
            return self._decide(q, np.ones(1))
        x = extractor.cached(q.text)
        if x is None and extractor.inline:
            x = extractor.compute(q.text)
        elif x is None:
            x = await asyncio.to_thread(extractor.compute, q.text)
        return self._decide(q, x)

    def _candidates(
        self, c: Constraints, predicted_cost: FloatArray, latency: FloatArray
    ) -> tuple[list[int], dict[str, str]]:
        """The indices of the models the constraints keep, and why each other one was removed."""
        models = self.models
        for name in (c.allowed_models or frozenset()) | c.denied_models:
            if name not in models:
                raise InvalidQueryError(
                    f"constraint names unknown model {name!r}; models are {list(models)}"
                )
        removed: dict[str, str] = {}
        keep: list[int] = []
        for i, model in enumerate(models):
            if c.allowed_models is not None and model not in c.allowed_models:
                removed[model] = "not in allowed_models"
            elif model in c.denied_models:
                removed[model] = "in denied_models"
            elif c.max_cost is not None and not predicted_cost[i] <= c.max_cost:
                removed[model] = (
                    "cost unknown (no price, nothing observed yet)"
                    if math.isnan(predicted_cost[i])
                    else f"predicted cost ${predicted_cost[i]:.6f} > max_cost ${c.max_cost:.6f}"
                )
            elif c.max_latency is not None and not latency[i] <= c.max_latency:
                removed[model] = (
                    "latency unknown (nothing observed yet)"
                    if math.isnan(latency[i])
                    else f"mean latency {latency[i]:.3f}s > max_latency {c.max_latency:.3f}s"
                )
            else:
                keep.append(i)
        if not keep:
            why = "; ".join(f"{m}: {r}" for m, r in removed.items())
            raise NoModelAvailableError(f"no model satisfies the constraints ({why})")
        return keep, removed

    def _decide(self, q: Query, x: FloatArray) -> RoutingDecision:
        tokens = estimate_tokens(q.text)
        prefs = q.preferences
        with self._lock:
            models = self.models
            all_costs = self._outcomes.predicted_costs(tokens)
            all_latency = self._outcomes.mean("latency")
            cands, removed = self._candidates(q.constraints, all_costs, all_latency)
            costs, latency = all_costs[cands], all_latency[cands]
            cost_share, latency_share = _shares(costs), _shares(latency)
            penalty = prefs.cost * cost_share + prefs.latency * latency_share
            choice = self._bandit.choose(
                x, cands, penalty, quality_weight=prefs.quality, cost_share=cost_share
            )
            model = models[cands[choice.index]]
            self._outcomes.add(model, decisions=1.0)
            phase = self._phase()
        decision_id = uuid.uuid4().hex
        self._pending.add(decision_id, Pending(model=model, features=x, tokens=tokens))
        names = [models[i] for i in cands]
        decision, reasons = self._explain(
            decision_id, model, names, choice, costs, latency, phase, prefs, removed
        )
        if self.max_explanations:
            with self._lock:
                self._recent[decision_id] = reasons
                if len(self._recent) > self.max_explanations:
                    self._recent.popitem(last=False)
        if self.store_sync is not None:
            self.store_sync.record_decision(decision, q.text, prefs)
        return decision

    def _phase(self) -> str:
        return str(getattr(self._bandit, "phase", self.algorithm))

    def _explain(
        self,
        decision_id: str,
        model: str,
        names: list[str],
        choice: Any,
        costs: FloatArray,
        latency: FloatArray,
        phase: str,
        prefs: Preferences,
        removed: dict[str, str],
    ) -> tuple[RoutingDecision, _Reasons]:
        """The decision, and what it was made of in the compact form :meth:`explain` keeps."""
        utility, mean, bonus = choice.utility, choice.mean, choice.bonus
        j = choice.index
        reason = f"{phase}: best score {utility[j]:.3f} (quality {mean[j]:.2f}"
        reason += f" + exploration {bonus[j]:.2f})" if abs(bonus[j]) >= 0.005 else ")"
        # Exploring: without its exploration term the chosen model would not be (among) the best.
        greedy = utility - prefs.quality * bonus
        exploit = j if greedy[j] >= greedy.max() - 1e-12 else int(np.argmax(greedy))
        if len(names) > 1:
            order = np.argsort(-utility)
            runner = int(order[1] if order[0] == j else order[0])
            reason += f"; next {names[runner]} {utility[runner]:.3f}"
            if exploit != j:
                reason += f"; exploring (by mean alone {names[exploit]} would win)"
        if removed:
            reason += f"; {len(removed)} excluded by constraints"
        reasons = _Reasons(
            model=model,
            names=tuple(names),
            numbers=np.array([utility, mean, bonus, costs, latency], dtype=np.float64),
            reason=reason,
            propensity=float(choice.propensity),
            confidence=self._confidence(choice),
            phase=phase,
            excluded=removed,
            exploit=exploit,
            preferences=prefs,
        )
        return reasons.decision(decision_id), reasons

    def explain(self, decision_id: str) -> Explanation:
        """Why decision ``decision_id`` chose its model: scores, exploration, exclusions.

        The last ``max_explanations`` decisions are kept in memory; older ones are
        looked up in the state store's history, if the router has one (a blocking read).

        >>> router = Router(models=["small", "large"], bandit_algorithm="ucb1", seed=0,
        ...                 embedding_backend="hashing")
        >>> decision = router.route_sync("Hi", constraints=Constraints(denied_models={"large"}))
        >>> explanation = router.explain(decision.decision_id)
        >>> explanation.selected_model, explanation.excluded
        ('small', {'large': 'in denied_models'})
        """
        if not isinstance(decision_id, str) or not decision_id:
            raise UnknownDecisionError(f"decision_id must be a non-empty str, got {decision_id!r}")
        with self._lock:
            found = self._recent.get(decision_id)
        if found is not None:
            return Explanation.of(found.decision(decision_id), found.preferences)
        sync = self.store_sync
        if sync is not None:
            record = sync.store.record(decision_id, namespace=sync.namespace)
            explanation = None if record is None else record.explain()
            if explanation is not None:
                return explanation
        where = " or in its store's history" if sync is not None else ""
        raise UnknownDecisionError(
            f"no explanation for decision {decision_id!r}: not among this router's last "
            f"{self.max_explanations} decisions{where}"
        )

    def _confidence(self, choice: Any) -> float:
        """Probability that the chosen model is truly the best, treating each score as
        normal around its mean with the exploration term as its spread."""
        utility, bonus = choice.utility, np.abs(choice.bonus)
        if utility.size == 1:
            return 1.0
        centre = utility - choice.bonus
        spread = np.minimum(np.maximum(bonus, 1e-9), 10.0)
        draws = centre[:, None] + spread[:, None] * self._aux_rng.standard_normal(
            (utility.size, 64)
        )
        return float(np.mean(np.argmax(draws, axis=0) == choice.index))

    # -- feedback --------------------------------------------------------------------------
    def update_sync(
        self,
        decision_id: str,
        *,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
    ) -> frozenset[str]:
        """Learn any subset of a decision's outcome; returns the parts learned now.

        A part already learned for this decision is ignored (never double
        counted). Invalid values raise before anything changes.
        """
        if not isinstance(decision_id, str) or not decision_id:
            raise InvalidFeedbackError(f"decision_id must be a non-empty str, got {decision_id!r}")
        values: dict[str, float] = {}
        if quality is not None:
            values["quality"] = _finite_feedback("quality", quality, 1.0, bounded=True)
        if cost is not None:
            values["cost"] = _finite_feedback("cost", cost, MAX_COST)
        if latency is not None:
            values["latency"] = _finite_feedback("latency", latency, MAX_LATENCY)
        if not values:
            raise InvalidFeedbackError("give at least one of quality, cost, latency")
        pending, new = self._pending.claim(decision_id, set(values))
        if not new:
            logger.debug("duplicate feedback for %s ignored", decision_id)
            return frozenset()
        with self._lock:
            if pending.model not in self.models:
                self._pending.release(decision_id, new)
                raise UnknownModelError(
                    f"decision {decision_id} chose {pending.model!r}, which has since been removed"
                )
            if "quality" in new:
                q = values["quality"]
                assert pending.features is not None  # features are dropped only after quality
                self._bandit.update(pending.model, pending.features, q)
                self._outcomes.add(pending.model, quality_n=1.0, quality_sum=q)
            if "cost" in new:
                self._outcomes.record_cost(pending.model, values["cost"], pending.tokens)
            if "latency" in new:
                self._outcomes.add(pending.model, latency_n=1.0, latency_sum=values["latency"])
            self._since_save += 1
        if "quality" in new:
            self._pending.forget_features(decision_id)
        if self.store_sync is not None:
            self.store_sync.record_outcome(decision_id, pending.model, {k: values[k] for k in new})
        self._maybe_autosave()
        return frozenset(new)

    async def update(
        self,
        decision_id: str,
        *,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
    ) -> frozenset[str]:
        """Async twin of :meth:`update_sync` (no I/O: it does not leave the loop)."""
        return self.update_sync(decision_id, quality=quality, cost=cost, latency=latency)

    # -- statistics ------------------------------------------------------------------------
    def stats(self) -> RouterStats:
        with self._lock:
            o = self._outcomes
            decisions, feedback = o.column("decisions"), o.column("quality_n")
            q, c, lat = o.mean("quality"), o.mean("cost"), o.mean("latency")
            models = {
                m: ModelStats(
                    pulls=int(decisions[i]),
                    feedback=int(feedback[i]),
                    mean_quality=_known(q[i]),
                    mean_cost=_known(c[i]),
                    mean_latency=_known(lat[i]),
                )
                for i, m in enumerate(o.models)
            }
            return RouterStats(
                algorithm=self.algorithm,
                phase=self._phase(),
                models=models,
                total_decisions=int(decisions.sum()),
                total_feedback=int(feedback.sum()),
                total_cost=float(o.column("cost_sum").sum()),
                pending=len(self._pending),
            )

    # -- state -----------------------------------------------------------------------------
    def _feature_name(self) -> str:
        return self.extractor.name if (self.extractor and self._bandit.contextual) else "none"

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "algorithm": self.algorithm,
                "features": self._feature_name(),
                "dim": self._bandit.dim,
                "bandit": self._bandit.state_dict(),
                "outcomes": self._outcomes.state_dict(),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore learning saved by :meth:`state_dict`; a mismatched state changes nothing."""
        if not isinstance(state, Mapping):
            raise StateError(f"a router state is a mapping, got {type(state).__name__}")
        if state.get("algorithm") != self.algorithm:
            raise StateError(
                f"state was learned by {state.get('algorithm')!r}, "
                f"this router runs {self.algorithm!r}"
            )
        if state.get("features") != self._feature_name():
            raise StateError(
                f"state was learned on features {state.get('features')!r}, "
                f"this router computes {self._feature_name()!r}"
            )
        saved = state.get("bandit")
        params = saved.get("params") if isinstance(saved, Mapping) else None
        if not isinstance(saved, Mapping) or not isinstance(params, Mapping):
            raise StateError("state holds no policy state with its parameters")
        try:
            bandit = make_bandit(
                self.algorithm,
                dim=self._bandit.dim,
                **{k: v for k, v in params.items() if k != "dim"},
            )
        except (TypeError, ValueError, ArithmeticError) as exc:  # ConfigurationError, or numpy's
            raise StateError(f"state's policy parameters are invalid: {exc}") from exc
        try:
            bandit.load_state_dict(saved)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as e:
            raise StateError(f"state's policy statistics are malformed: {e!r}") from e
        outcomes = OutcomeStats()
        try:
            outcomes.load_state_dict(state.get("outcomes", {}))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as e:
            raise StateError(f"state's outcome statistics are malformed: {e!r}") from e
        if list(outcomes.models) != list(bandit.arms):
            raise StateError("state's outcome statistics and policy disagree on the models")
        with self._lock:
            prices = dict(self._outcomes.prices)
            self._bandit, self._outcomes = bandit, outcomes
            for model, price in prices.items():
                if model in outcomes.models:
                    outcomes.prices.setdefault(model, price)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the learned state (atomically, mode 0600) to ``path`` or ``state_path``."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            raise ConfigurationError("no path: pass one or construct the Router with state_path=")
        write_state(target, {"router": self.state_dict()})
        with self._lock:
            self._since_save = 0
        return target

    def load(self, path: str | Path) -> None:
        state = read_state(path)
        if not isinstance(state.get("router"), dict):
            raise StateError(f"{path} holds no router state")
        self.load_state_dict(state["router"])

    def _maybe_autosave(self) -> None:
        if self.state_path is None or self._since_save < self.autosave_every:
            return
        if self._save_thread is not None and self._save_thread.is_alive():
            return
        self._save_thread = threading.Thread(
            target=self._autosave, name="conduit-save", daemon=True
        )
        self._save_thread.start()

    def _autosave(self) -> None:
        try:
            self.save()
        except (OSError, StateError) as exc:
            logger.warning("could not save router state to %s: %s", self.state_path, exc)

    def close(self) -> None:
        """Save (if ``state_path`` is set) and wait for a save in progress."""
        if self._save_thread is not None:
            self._save_thread.join()
        if self.state_path is not None:
            self.save()
        if self.store_sync is not None:  # push what is left to the store, stop the sync thread
            self.store_sync.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Router(models={list(self.models)}, algorithm={self.algorithm!r})"
