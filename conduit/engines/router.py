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
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import FIFOCache

from conduit import _reward as reward
from conduit import _validate
from conduit._counters import KEY as COUNTERS_KEY
from conduit._counters import PART as COUNTERS_PART
from conduit._counters import SOURCES, Counters
from conduit._errors import (
    ConfigurationError,
    DuplicateModelError,
    InvalidFeedbackError,
    InvalidQueryError,
    NoModelAvailableError,
    StateError,
    UnknownDecisionError,
    UnknownModelError,
)
from conduit._pending import Pending, PendingDecisions
from conduit._state import read_state, write_state
from conduit._types import (
    Constraints,
    Explanation,
    ModelScore,
    ModelStats,
    Preferences,
    Query,
    RouterStats,
    RoutingDecision,
)
from conduit.engines._drift import KEEP as KEEP_AFTER_CHANGE
from conduit.engines._drift import DriftDetector
from conduit.engines._outcomes import OutcomeStats, Price
from conduit.engines._targets import Targets
from conduit.engines.bandits import ALGORITHMS, Bandit, make_bandit
from conduit.engines.bandits._base import FloatArray
from conduit.engines.features._extractor import Backend, FeatureExtractor, make_embedder

if TYPE_CHECKING:
    from conduit.stores import Store, StoreSync
    from conduit.stores._base import Meta, Sums

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


def _check_model_name(model: object) -> str:
    """``model`` if it is a usable model name: a non-empty str that is valid Unicode text.

    A lone surrogate (from a JSON ``"\\ud800"`` escape) cannot be encoded as UTF-8,
    so no store, log or metric could write it.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(f"model names must be non-empty str, got {model!r}")
    try:
        model.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"model name {model!r} is not valid Unicode text (it holds a lone surrogate)"
        ) from None
    return model


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
        _validate.number(f"price of {model!r}", part, low=0.0, what="finite and >= 0")
    return price


def _known(value: float) -> float | None:
    """A learned or predicted number, or None where it is not known yet (NaN)."""
    return None if math.isnan(value) else float(value)


@dataclass(slots=True)
class _Reasons:
    """What one decision was made of, kept for :meth:`Router.explain` in a tenth of the
    memory of its :class:`RoutingDecision` (rebuilt from this on demand). The reason text,
    the confidence and the scores are computed from it when first read, not on the request
    path."""

    model: str
    names: tuple[str, ...]
    numbers: FloatArray
    """Rows: utility, quality, exploration, sampled noise, predicted cost, latency (NaN:
    unknown)."""
    propensity: float
    phase: str
    excluded: dict[str, str]
    exploit: int
    preferences: Preferences
    sample: tuple[int, int]
    """Seed of the confidence's Monte-Carlo draws: the same value whenever it is read."""
    _why: tuple[str, float] | None = None

    def why(self) -> tuple[str, float]:
        """The reason text and the confidence (computed once)."""
        if self._why is None:
            self._why = (self._reason(), self._confidence())
        return self._why

    def _reason(self) -> str:
        utility, mean, exploration, noise = self.numbers[:4]
        names, j = self.names, self.names.index(self.model)
        reason = f"{self.phase}: best score {utility[j]:.3f} (quality {mean[j]:.2f}"
        if abs(noise[j]) >= 0.005:
            reason += f" + sampled noise {noise[j]:.2f})"
        elif abs(exploration[j]) >= 0.005:
            reason += f" + exploration {exploration[j]:.2f})"
        else:
            reason += ")"
        if len(names) > 1:
            order = np.argsort(-utility)
            runner = int(order[1] if order[0] == j else order[0])
            reason += f"; next {names[runner]} {utility[runner]:.3f}"
            if self.exploit != j:
                reason += f"; exploring (by mean alone {names[self.exploit]} would win)"
        if self.excluded:
            reason += f"; {len(self.excluded)} excluded by constraints"
        return reason

    def _confidence(self) -> float:
        utility, _, exploration, noise = self.numbers[:4]
        rng = np.random.default_rng(self.sample)
        return reward.confidence(utility, exploration + noise, self.names.index(self.model), rng)

    def decision(self, decision_id: str) -> RoutingDecision:
        return RoutingDecision.deferred(
            self._deferred,
            decision_id=decision_id,
            selected_model=self.model,
            propensity=self.propensity,
            algorithm=self.phase,
            excluded=dict(self.excluded),
            exploring=self.names[self.exploit] != self.model,
            exploit_model=self.names[self.exploit],
        )

    def _deferred(self) -> dict[str, Any]:
        """The decision's fields computed when first read: its reason, confidence and scores."""
        reason, confidence = self.why()
        utility, mean, exploration, noise, costs, latency = self.numbers
        scores = {
            name: ModelScore.model_construct(
                utility=float(utility[j]),
                quality=float(mean[j]),
                exploration=float(exploration[j]),
                noise=float(noise[j]),
                cost=_known(costs[j]),
                latency=_known(latency[j]),
            )
            for j, name in enumerate(self.names)
        }
        return {"reason": reason, "confidence": confidence, "scores": scores}


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
        preferences: Preferences | str | None = None,
        drift_detection: bool | DriftDetector = True,
    ) -> None:
        if isinstance(models, str) or not isinstance(models, Iterable):
            raise ConfigurationError("models must be a list of model names")
        models = list(models)
        if not models:
            raise ConfigurationError("models is empty: give at least one model name")
        seen: set[str] = set()
        for model in models:
            _check_model_name(model)
            if model in seen:
                raise DuplicateModelError(f"model {model!r} is listed twice")
            seen.add(model)
        if seed is not None:
            _validate.integer("seed", seed, low=0, what="an int >= 0 or None")
        from conduit.stores._sync import check_interval

        sync_interval = check_interval(sync_interval)
        if isinstance(state_store, str):
            from conduit.stores import check_url

            check_url(state_store)
        elif state_store is not None:
            from conduit.stores._base import Store as _Store

            if not isinstance(state_store, _Store):
                raise ConfigurationError(
                    f"state_store must be a URL or a Store, got {type(state_store).__name__}"
                )
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
        try:  # the default of queries that carry none; a target's controller is learned state
            self.preferences = Preferences.of(preferences)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self._targets = Targets()
        #: where quality labels came from and what judging cost (stored with the learning)
        self.counters = Counters()
        if not isinstance(drift_detection, (bool, DriftDetector)):
            raise ConfigurationError(
                f"drift_detection must be a bool or a DriftDetector, got {drift_detection!r}"
            )
        if drift_detection is True:
            drift_detection = DriftDetector()
        self._drift: DriftDetector | None = drift_detection or None
        self._pending = PendingDecisions(ttl=pending_ttl, maxsize=max_pending)
        # Seeds the confidence's draws, with a decision counter (see _Reasons.sample).
        self._sample_seed = secrets.randbits(64) if seed is None else seed + 7919
        self._decisions_made = 0
        self._lock = threading.RLock()
        self.max_explanations = _validate.integer("max_explanations", max_explanations, low=0)
        self._recent: FIFOCache[str, _Reasons] = FIFOCache(max(max_explanations, 1))
        price_map = dict(prices or {})
        for model in price_map:
            if model not in seen:
                raise UnknownModelError(f"prices given for {model!r}, which is not in models")
        for model in models:
            self._bandit.add_arm(model)
            self._outcomes.add_model(
                model, _as_price(model, price_map[model]) if model in price_map else None
            )
            if self._drift is not None:
                self._drift.add_model(model)
        self.state_path = Path(state_path) if state_path is not None else None
        self.autosave_every = int(autosave_every)
        self._since_save = 0
        self._save_thread: threading.Thread | None = None
        self.state_store = state_store
        self.sync_interval = float(sync_interval)
        self.store_sync: StoreSync | None = None
        self._started = False
        self._start_lock = threading.Lock()

    # -- lifecycle: construction does no I/O; start() loads, opens and starts -------------
    def start(self, *, wait: float = 10.0, clock: Callable[[], float] | None = None) -> Router:
        """Load ``state_path`` (if the file exists), open ``state_store`` and start its sync
        thread, waiting up to ``wait`` s for the first pull of what other replicas learned.

        Called by ``with`` / ``async with``, and by the first :meth:`route`,
        :meth:`update` or :meth:`stats` if not before; calling it again does nothing.
        ``clock`` stamps history records (a replay gives them synthetic times).
        """
        with self._start_lock:
            if self._started:
                return self
            if self.state_path is not None and self.state_path.exists():
                self.load(self.state_path)
            if self.state_store is not None:
                from conduit.stores import StoreSync

                self.store_sync = StoreSync(
                    self, self.state_store, interval=self.sync_interval, clock=clock or time.time
                )
            self._started = True
        if self.store_sync is not None:
            self.store_sync.start(wait=wait)
        return self

    def _ensure_started(self) -> None:
        if not self._started:
            self.start()

    def sync(self) -> None:
        """Sync with the state store at once (learning and history); raises
        :class:`~conduit._errors.StoreError` or :class:`~conduit._errors.StateError` on failure."""
        self._ensure_started()
        if self.store_sync is None:
            raise ConfigurationError("this router has no state_store to sync with")
        self.store_sync.sync_now()

    # -- the learner interface a store sync uses (conduit.stores._base.Learner) -------------
    def meta(self) -> Meta:
        """Which kind of learner this is: two routers may share learning only if these agree."""
        from conduit.stores._base import Meta

        return Meta(
            algorithm=self.algorithm,
            features=self._feature_name(),
            dim=self._bandit.dim,
            params={k: v for k, v in self._bandit.params().items() if k != "seed"},
        )

    def snapshot(self) -> Sums:
        """The additive statistics learned so far, per model (a copy, taken atomically)."""
        from conduit.stores._base import as_sums

        with self._lock:
            sums = as_sums(self._bandit.stats(), self._outcomes.stats())
            sums["targets"] = {
                t: {k: np.array(v) for k, v in row.items()}
                for t, row in self._targets.sums().items()
            }
            sums[COUNTERS_PART] = {
                COUNTERS_KEY: {k: np.array(v) for k, v in self.counters.snapshot().items()}
            }
            return sums

    def merge_delta(self, delta: Sums) -> None:
        """Add statistics learned elsewhere; models this router does not route to are ignored."""
        with self._lock:
            arms = set(self.models)
            self._bandit.merge({a: s for a, s in delta.get("bandit", {}).items() if a in arms})
            self._outcomes.merge(
                {
                    a: {k: float(v) for k, v in s.items()}
                    for a, s in delta.get("outcomes", {}).items()
                    if a in arms
                }
            )
            try:
                self._targets.merge_sums(
                    {
                        t: {k: float(v) for k, v in s.items()}
                        for t, s in delta.get("targets", {}).items()
                    }
                )
            except ValueError as exc:
                raise StateError(f"shared target statistics are malformed: {exc}") from exc
            counted = delta.get(COUNTERS_PART, {}).get(COUNTERS_KEY)
            if counted:
                self.counters.merge({k: float(v) for k, v in counted.items()})

    def count(self, name: str, amount: float = 1.0) -> None:
        """Add to one of :data:`conduit._counters.COUNTERS` (judge calls, cost, ...): kept
        with the learning, so ``conduit stats`` and the dashboard report it."""
        self.counters.add(name, amount)

    # -- models ----------------------------------------------------------------------------
    @property
    def models(self) -> tuple[str, ...]:
        return self._bandit.arms

    @property
    def bandit(self) -> Bandit:
        return self._bandit

    def add_model(self, model: str, *, price: PriceLike | None = None) -> None:
        """Start routing to ``model`` too; what the others learned is kept."""
        _check_model_name(model)
        with self._lock:
            converted = _as_price(model, price) if price is not None else None
            self._bandit.add_arm(model)
            self._outcomes.add_model(model, converted)
            if self._drift is not None:
                self._drift.add_model(model)

    def remove_model(self, model: str) -> None:
        """Stop routing to ``model`` and forget it; the others keep what they learned."""
        with self._lock:
            if model not in self.models:
                raise UnknownModelError(f"unknown model {model!r}; models are {list(self.models)}")
            if len(self.models) == 1:
                raise ConfigurationError("cannot remove the last model")
            self._bandit.remove_arm(model)
            self._outcomes.remove_model(model)
            if self._drift is not None:
                self._drift.remove_model(model)

    def set_price(self, model: str, price: PriceLike) -> None:
        with self._lock:
            if model not in self.models:
                raise UnknownModelError(f"unknown model {model!r}")
            self._outcomes.prices[model] = _as_price(model, price)

    # -- routing ---------------------------------------------------------------------------
    def _as_query(
        self,
        query: Query | str,
        preferences: Preferences | str | None,
        constraints: Constraints | None,
    ) -> Query:
        try:
            if isinstance(query, Query):
                if preferences is None and "preferences" not in query.model_fields_set:
                    preferences = self.preferences  # the router's default
                if preferences is None and constraints is None:
                    return query
                return Query(
                    text=query.text,
                    preferences=Preferences.of(preferences) if preferences else query.preferences,
                    constraints=constraints or query.constraints,
                )
            return Query(
                text=query,
                preferences=Preferences.of(preferences or self.preferences),
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
        self._ensure_started()
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
        if not self._started:
            if self.state_path is None and self.state_store is None:
                self.start()  # nothing to load or open: no I/O
            else:  # loading state and the first pull block: not on the event loop
                await asyncio.to_thread(self.start)
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
            cost_share, latency_share = reward.shares(costs), reward.shares(latency)
            cost_weight = self._targets.weight(prefs)  # a target's: steered by its controller
            penalty = reward.penalty(
                cost_share, latency_share, cost_weight=cost_weight, latency_weight=prefs.latency
            )
            choice = self._bandit.choose(
                x, cands, penalty, quality_weight=prefs.quality, cost_share=cost_share
            )
            model = models[cands[choice.index]]
            self._outcomes.add(model, decisions=1.0)
            phase = self._phase()
            self._decisions_made += 1
            sample = (self._sample_seed, self._decisions_made)
            decision_id = uuid.uuid4().hex
            if prefs.target is not None:
                # optimistic: a strong model seldom chosen is learned low (chosen on hard
                # queries, few samples); its upper bound keeps a quality floor from sinking
                upper = np.asarray(choice.mean) + np.abs(np.asarray(choice.deviation))
                self._targets.decided(decision_id, prefs, costs, np.minimum(upper, 1.0))
        j = choice.index
        self._pending.add(
            decision_id,
            Pending(
                model=model,
                features=x,
                tokens=tokens,
                expected_quality=float(choice.mean[j]),
            ),
        )
        # Exploring: without its exploration term (or sampled noise) the chosen model would
        # not be (among) the best.
        greedy = choice.utility - prefs.quality * choice.deviation
        exploit = j if greedy[j] >= greedy.max() - 1e-12 else int(np.argmax(greedy))
        reasons = _Reasons(
            model=model,
            names=tuple(models[i] for i in cands),
            numbers=np.array(
                [choice.utility, choice.mean, choice.exploration, choice.noise, costs, latency],
                dtype=np.float64,
            ),
            propensity=float(choice.propensity),
            phase=phase,
            excluded=removed,
            exploit=exploit,
            preferences=prefs,
            sample=sample,
        )
        decision = reasons.decision(decision_id)
        if self.max_explanations:
            with self._lock:
                self._recent[decision_id] = reasons
        if self.store_sync is not None:
            self.store_sync.record_decision(decision, q.text, prefs)
        return decision

    def _phase(self) -> str:
        return str(getattr(self._bandit, "phase", self.algorithm))

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

    # -- feedback --------------------------------------------------------------------------
    def update_sync(
        self,
        decision_id: str,
        *,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        source: str = "explicit",
    ) -> frozenset[str]:
        """Learn any subset of a decision's outcome; returns the parts learned now.

        A part already learned for this decision is ignored (never double
        counted). Invalid values raise before anything changes. ``source`` says
        where a quality came from (counted: ``stats().counters``): ``explicit`` (a
        person), ``judge``, ``shadow``, ``regeneration`` or ``automatic``.
        """
        if not isinstance(decision_id, str) or not decision_id:
            raise InvalidFeedbackError(f"decision_id must be a non-empty str, got {decision_id!r}")
        if source not in SOURCES:
            raise InvalidFeedbackError(f"source must be one of {list(SOURCES)}, got {source!r}")
        self._ensure_started()
        values: dict[str, float] = {}
        if quality is not None:
            values["quality"] = _validate.outcome("quality", quality, 1.0, bounded=True)
        if cost is not None:
            values["cost"] = _validate.outcome("cost", cost, MAX_COST)
        if latency is not None:
            values["latency"] = _validate.outcome("latency", latency, MAX_LATENCY)
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
            expected_cost = math.nan
            if "cost" in new:
                if self._drift is not None:  # before this cost joins the sums
                    expected_cost = self._outcomes.observed_cost(pending.model, pending.tokens)
                self._outcomes.record_cost(pending.model, values["cost"], pending.tokens)
            if "latency" in new:
                self._outcomes.add(pending.model, latency_n=1.0, latency_sum=values["latency"])
            if self._drift is not None:
                self._watch(pending, values, new, expected_cost)
            if "quality" in new or "cost" in new:
                self._targets.observe(
                    decision_id,
                    quality=values["quality"] if "quality" in new else None,
                    cost=values["cost"] if "cost" in new else None,
                )
            self._since_save += 1
        if "quality" in new:
            self._pending.forget_features(decision_id)
            self.counters.add(f"quality_{source}")
        if self.store_sync is not None:
            self.store_sync.record_outcome(decision_id, pending.model, {k: values[k] for k in new})
        self._maybe_autosave()
        return frozenset(new)

    def _watch(
        self, pending: Pending, values: Mapping[str, float], new: set[str], expected_cost: float
    ) -> None:
        """Feed the change detector (quality against the policy's prediction at decision
        time, cost against the model's observed costs so far); on a detected change, forget
        what no longer holds."""
        assert self._drift is not None
        model = pending.model
        residuals: dict[str, float] = {}
        if "quality" in new:
            residuals["quality"] = values["quality"] - pending.expected_quality
        expected = expected_cost
        if "cost" in new and expected > 0:  # NaN (unknown) compares False
            floor = 0.01 * expected  # a free answer reads as 1/100 of the price, not -inf
            residuals["cost"] = math.log((values["cost"] + floor) / (expected + floor))
        for stream, residual in residuals.items():
            change = self._drift.observe(model, stream, residual)
            if change is None:
                continue
            keep = KEEP_AFTER_CHANGE[stream]
            if self.store_sync is not None:
                # forgotten in the global sums, once, at the next sync, for every replica
                self.store_sync.forget(model, stream, keep)
                done = "will be discounted in the state store at the next sync"
            else:
                self._forget(model, stream)
                done = "were discounted"
            logger.info(
                "%s of %s changed (%s); its learned %s statistics %s to %g outcomes' worth",
                stream,
                model,
                "up" if change.direction > 0 else "down",
                stream,
                done,
                keep,
            )

    def _forget(self, model: str, stream: str) -> None:
        """Scale ``model``'s learned statistics of ``stream`` down to a weak prior: the same
        forget a store applies (:func:`conduit.stores._base.forget_sums`), merged as a delta."""
        from conduit.stores._base import as_sums, forget_sums, subtract_sums

        with self._lock:
            own = as_sums(
                {model: self._bandit.stats()[model]}, {model: self._outcomes.stats()[model]}
            )
            forgotten, _ = forget_sums(own, model, stream, KEEP_AFTER_CHANGE[stream])
            self.merge_delta(subtract_sums(forgotten, own))

    @property
    def drift(self) -> DriftDetector | None:
        """The change detector (None when ``drift_detection=False``)."""
        return self._drift

    async def update(
        self,
        decision_id: str,
        *,
        quality: float | None = None,
        cost: float | None = None,
        latency: float | None = None,
        source: str = "explicit",
    ) -> frozenset[str]:
        """Async twin of :meth:`update_sync` (no I/O: it does not leave the loop)."""
        return self.update_sync(
            decision_id, quality=quality, cost=cost, latency=latency, source=source
        )

    # -- statistics ------------------------------------------------------------------------
    def stats(self) -> RouterStats:
        self._ensure_started()
        with self._lock:
            o = self._outcomes
            decisions, feedback = o.column("decisions"), o.column("quality_n")
            q, c, lat = o.mean("quality"), o.mean("cost"), o.mean("latency")
            models = {
                m: ModelStats(
                    decisions=int(decisions[i]),
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
                pending=self._pending.waiting(),
                targets=self._targets.stats(),
                counters=self.counters.snapshot(),
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
                "targets": self._targets.state_dict(),
                "counters": self.counters.snapshot(),
                **({"drift": self._drift.state_dict()} if self._drift is not None else {}),
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
        targets = Targets(step=self._targets.step)
        if "targets" in state:  # absent from states saved before targets existed
            try:
                targets.load_state_dict(state["targets"])
            except (TypeError, ValueError) as exc:
                raise StateError(f"state's target controllers are malformed: {exc}") from exc
        counters = Counters()
        counted = state.get("counters")  # absent from states saved before counters existed
        if counted is not None and not isinstance(counted, Mapping):
            raise StateError("state's counters are malformed: not a mapping")
        try:
            if counted is not None:
                counters.load(counted)
        except (TypeError, ValueError) as exc:
            raise StateError(f"state's counters are malformed: {exc}") from exc
        drift = None
        if self._drift is not None:
            drift = DriftDetector(**self._drift.params())
            for model in self.models:
                drift.add_model(model)
            if "drift" in state:  # absent from states saved before change detection existed
                drift.load_state_dict(state["drift"])
        with self._lock:
            # The models given win: learning of those still present is kept, new ones start
            # fresh, models no longer given are dropped.
            given, saved = list(self.models), list(bandit.arms)
            dropped = [m for m in saved if m not in given]
            added = [m for m in given if m not in saved]
            for model in added:
                bandit.add_arm(model)
                outcomes.add_model(model, None)
            for model in dropped:
                bandit.remove_arm(model)
                outcomes.remove_model(model)
            if dropped or added:
                logger.info(
                    "restored state learned for %d model(s); %d new start fresh (%s); "
                    "%d no longer given dropped (%s)",
                    len(saved) - len(dropped),
                    len(added),
                    ", ".join(added) or "-",
                    len(dropped),
                    ", ".join(dropped) or "-",
                )
            self._targets = targets
            self._drift = drift
            self.counters = counters
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
        if path is None:
            self._ensure_started()  # load state_path first, rather than overwrite it
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
        """Save (if ``state_path`` is set) and wait for a save in progress.

        A router never started learned nothing: its state file is left as it is.
        """
        if self._save_thread is not None:
            self._save_thread.join()
        if self.state_path is not None and self._started:
            self.save()
        if self.store_sync is not None:  # push what is left to the store, stop the sync thread
            self.store_sync.close()

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"Router(models={list(self.models)}, algorithm={self.algorithm!r})"
