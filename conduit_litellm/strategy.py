"""ConduitRoutingStrategy: LiteLLM's custom routing strategy, backed by a learning Conduit router.

LiteLLM calls the strategy for every attempt of every request (retries and
fallbacks included) to pick one deployment. The strategy narrows the
deployments to those that can serve the request (in scope, not cooling down,
with the context window, tools, vision and structured output it needs), asks
the Conduit router to choose among them, and stamps the decision id into the
request metadata, where :class:`~conduit_litellm.feedback.ConduitFeedbackLogger`
finds it when LiteLLM reports the outcome.

Arms are deployments, named by ``model_info.id``. Without a ``conduit_router``
one is built on first use from LiteLLM's deployments, with prices from
LiteLLM's cost map, and kept in step with deployments added or removed later.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import litellm
from litellm.exceptions import BadRequestError, ContextWindowExceededError
from litellm.types.router import CustomRoutingStrategyBase

from conduit import _validate
from conduit._errors import ConfigurationError, InvalidQueryError, UnknownDecisionError
from conduit._redact import describe_error
from conduit._types import Constraints, Explanation, Preferences, RoutingDecision
from conduit.config import load_settings
from conduit.engines.features._extractor import Backend
from conduit.engines.features._redis_cache import RedisFeatureCache
from conduit.engines.router import Router
from conduit.judge import Judge
from conduit.metrics import Metrics, MetricsServer, as_metrics
from conduit_litellm import _compat
from conduit_litellm._core import (
    PREFERENCES_KEY,
    as_weights,
    build_router,
    check_arguments,
    check_router_options,
    learners,
    request_preferences,
    settings_preferences,
)
from conduit_litellm._fallback import Fallbacks
from conduit_litellm._judge import is_judge_call
from conduit_litellm.feedback import (
    CALL_PREFIX,
    DECISION_KEY,
    DEPLOYMENT_KEY,
    JSON_KEY,
    FeedbackServer,
)
from conduit_litellm.utils import (
    Capabilities,
    RequestNeeds,
    capabilities,
    deployment_id,
    deployment_model,
    deployment_price,
    mode_family,
    model_group,
    query_text,
    request_needs,
)

__all__ = ["PREFERENCES_KEY", "ConduitRoutingStrategy"]

logger = logging.getLogger("conduit_litellm")

Scope = Literal["all", "group"] | Sequence[str]
#: Where ``cache_enabled=True`` looks for Redis without a ``redis_url`` (the usage guide's).
DEFAULT_REDIS_URL = "redis://localhost:6379"


@dataclass(slots=True)
class _Snapshot:
    """The deployments as last read, keyed so a change is noticed cheaply."""

    key: object
    deployments: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    arm_of: dict[str, str]
    capabilities: dict[str, Capabilities] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)
    """``deployment_id`` of each listed deployment, by object identity (the snapshot holds
    them, so no other object has their ``id``)."""

    def ident(self, deployment: Mapping[str, Any]) -> str:
        """``deployment_id(deployment)``: a pick reads ids about a hundred times, and reading
        one from a LiteLLM entry costs about half a microsecond."""
        found = self.ids.get(id(deployment))
        return found if found is not None else deployment_id(deployment)


@dataclass(slots=True)
class _Plan:
    text: str
    candidates: list[dict[str, Any]]
    allowed: frozenset[str] | None
    preferences: Preferences | None


class ConduitRoutingStrategy(CustomRoutingStrategyBase):
    """Route LiteLLM requests with a Conduit router that learns from every outcome.

    ``scope="all"`` (the default) lets every deployment of the model list that can
    serve the call compete for every request (the model group named in the call is
    only checked to exist); ``scope="group"`` keeps the choice inside the requested
    group; ``scope=["a", "b"]`` lets the deployments of groups a and b compete for a
    request naming either, while requests for other groups stay in their group.
    Which deployments compete for which group is logged once at setup
    (:meth:`competitors`). Whatever the scope, a deployment that cannot serve the
    call is never picked: a chat call never goes to an embedding, image, audio,
    rerank or moderation model (LiteLLM's ``mode``, from ``model_info.mode`` or the
    cost map), nor to one whose context window, tools, vision or structured output
    (as LiteLLM's ``supports_*`` helpers read them) fall short.
    ``conduit_router`` supplies a ready router whose model names match
    deployments by ``model_info.id``, ``litellm_params.model`` or model group;
    otherwise one is built at ``setup_strategy`` from ``use_hybrid``/``bandit_algorithm``,
    ``embedding_model``/``embedding_backend``, ``seed``, ``state_store``, ``state_path``
    and ``router_options`` (any other :class:`conduit.Router` argument). Each of these
    settings not given comes from its ``CONDUIT_*`` variable (:class:`conduit.config.
    ConduitSettings`); a bad one raises :class:`~conduit._errors.ConfigurationError` here,
    one that needs I/O (an embedding model, a state file) at ``setup_strategy``.

    What the router learns is kept by default in the embedded store (an SQLite file in
    the user data directory, or ``$CONDUIT_STATE_URL``), in a namespace derived from the
    deployment ids, so the next process with the same model list starts from it;
    ``state_store="memory://"`` keeps it in memory only.
    ``bandit_algorithm`` names the policy (see :data:`conduit.engines.bandits.ALGORITHMS`);
    without it ``use_hybrid`` chooses: None (the default) or True run UCB1 then LinUCB,
    False Thompson sampling. Only an explicit ``use_hybrid`` that contradicts the named
    algorithm is an error.

    Features are cached in process (``router_options={"feature_cache_size": ...}``)
    and, with ``cache_enabled``, in Redis at ``redis_url`` (default
    ``redis://localhost:6379``) for ``cache_ttl`` seconds, shared by every
    process; if Redis is unreachable routing goes on without it (one warning per
    outage). With ``metrics=True`` (or a :class:`conduit.metrics.Metrics`) it keeps
    Prometheus metrics, served by :meth:`serve_metrics`. The automatic quality of a
    successful call waits ``signal_grace`` seconds for explicit feedback, which
    takes precedence (see :mod:`conduit_litellm.feedback`). ``judge`` (a
    :class:`conduit.judge.Judge`) grades a sampled share of answers in the background;
    ``regenerations`` learns a low quality for an answer the user asked again for.

    A failure inside Conduit never fails the request: LiteLLM's default choice
    serves it (a random healthy deployment of the requested group, weighted like
    ``simple-shuffle``), with one WARNING per kind of failure and a count in
    :meth:`stats`. A request that cannot be served as asked (an unknown model
    group, a prompt beyond every context window, invalid ``conduit_preferences``)
    gets LiteLLM's own ``BadRequestError``, as LiteLLM would raise.
    """

    def __init__(
        self,
        conduit_router: Router | None = None,
        use_hybrid: bool | None = None,
        embedding_model: str | None = None,
        cache_enabled: bool = False,
        redis_url: str | None = None,
        cache_ttl: int = 3600,
        *,
        scope: Scope | None = None,
        preferences: Preferences | str | Mapping[str, float] | None = None,
        seed: int | None = None,
        embedding_backend: Backend | None = None,
        bandit_algorithm: str | None = None,
        state_store: str | None = None,
        state_path: str | Path | None = None,
        router_options: Mapping[str, Any] | None = None,
        response_ttl: float = 24 * 3600.0,
        max_responses: int = 100_000,
        signal_grace: float = 300.0,
        metrics: bool | Metrics | None = None,
        judge: Judge | None = None,
        regenerations: bool | None = None,
    ) -> None:
        check_arguments(judge=judge, conduit_router=conduit_router, use_hybrid=use_hybrid)
        if scope is not None:
            _scope_groups(scope)
        _validate.integer(
            "cache_ttl", cache_ttl, low=0, strict_low=True, what="a positive int of seconds"
        )
        #: The validated settings (keywords, else CONDUIT_* variables): see conduit.config.
        self.settings = load_settings(
            preferences=as_weights(preferences),
            bandit_algorithm=bandit_algorithm,
            use_hybrid=use_hybrid if conduit_router is None else None,
            embedding_model=embedding_model,
            embedding_backend=embedding_backend,
            seed=seed,
            scope=list(scope) if scope is not None and not isinstance(scope, str) else scope,
            state_store=state_store,
            state_path=None if state_path is None else str(state_path),
            regenerations=regenerations,
        )
        settings = self.settings
        judge = judge if judge is not None else settings.judge()  # CONDUIT_JUDGE_* variables
        self._scope_groups = _scope_groups(settings.scope)
        self.preferences = settings_preferences(settings)
        self.scope: Scope = (
            settings.scope if isinstance(settings.scope, str) else tuple(settings.scope)
        )
        self.use_hybrid = use_hybrid
        self.bandit_algorithm = settings.bandit_algorithm
        self.embedding_model = settings.embedding_model
        self.embedding_backend: Backend = settings.embedding_backend
        self.seed = settings.seed
        self.state_path = state_path
        self.router_options = check_router_options(router_options or {})
        self.cache_enabled = bool(cache_enabled)
        self.redis_url = redis_url
        self.cache_ttl = cache_ttl
        self._feature_cache: RedisFeatureCache | None = None
        if cache_enabled:
            self.redis_url = redis_url or DEFAULT_REDIS_URL
            if conduit_router is not None:
                logger.warning(
                    "cache_enabled is ignored with a given conduit_router: give its "
                    "FeatureExtractor second_level=RedisFeatureCache(...) instead"
                )
            else:
                self._feature_cache = RedisFeatureCache(url=self.redis_url, ttl=cache_ttl)
        self._conduit = conduit_router
        self._owns_router = conduit_router is None
        self._litellm_router: Any = None
        self._snapshot: _Snapshot | None = None
        self._lock = threading.RLock()
        self._server: FeedbackServer | None = None
        self._prices: dict[str, tuple[float, float]] = {}
        self._fallbacks = Fallbacks(
            logger, "LiteLLM's default choice (a random healthy deployment of the group)"
        )
        self._shuffle = random.Random(seed)
        self.metrics = as_metrics(metrics)
        self._metrics_server: MetricsServer | None = None
        if self.metrics is not None:
            self.metrics.watch(lambda: self._conduit)
        self.feedback, self.judge = learners(
            conduit=lambda: self._conduit,
            litellm_router=lambda: self._litellm_router,
            prices=self._prices,
            judge=judge,
            reference=self._dearest,
            regenerations=bool(settings.regenerations),
            metrics=self.metrics,
            feedback_options={
                "response_ttl": response_ttl,
                "max_responses": max_responses,
                "signal_grace": signal_grace,
            },
        )

    # -- wiring ------------------------------------------------------------------------------
    @staticmethod
    def setup_strategy(router: Any, strategy: ConduitRoutingStrategy) -> None:
        """Make ``strategy`` route for ``router`` and learn from its outcomes."""
        strategy.attach(router)

    def attach(self, router: Any) -> None:
        if self._litellm_router is not None and self._litellm_router is not router:
            raise ConfigurationError("this strategy already routes for another litellm.Router")
        self._litellm_router = router
        if self._scope_groups:
            known = {model_group(d) for d in _compat.deployments(router)}
            missing = sorted(set(self._scope_groups) - known)
            if missing:
                self._litellm_router = None
                raise ConfigurationError(
                    f"scope names model groups the router does not have: {missing}; "
                    f"its groups are {sorted(known)}"
                )
        if _compat.deployments(router):
            try:  # built now, so a store or embedding model that cannot work fails setup
                self._refresh()
            except Exception:
                self._litellm_router = None
                raise
            self._log_competitors()
        how = _compat.register_strategy(router, self)
        _compat.add_callback(self.feedback)
        self.judge.start()
        logger.debug("Conduit strategy registered through Router.%s", how)
        logger.info("Feedback logger registered with LiteLLM - bandit learning enabled")

    def cleanup(self) -> None:
        """Unregister from LiteLLM (callbacks and router) and save learning; safe to repeat."""
        _compat.remove_callback(self.feedback)
        if self._litellm_router is not None:
            _compat.unregister_strategy(self._litellm_router, self)
            self._litellm_router = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        self.judge.close()  # the queued grades first: they are learned below
        self.feedback.apply_due_signals(everything=True)  # no explicit feedback is coming now
        if self._conduit is not None and self._owns_router:
            self._conduit.close()
        if self._feature_cache is not None:
            self._feature_cache.close()

    def __enter__(self) -> ConduitRoutingStrategy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> ConduitRoutingStrategy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def conduit_router(self) -> Router | None:
        """The Conduit router (None until the first request when it is built lazily)."""
        return self._conduit

    # -- explicit feedback -------------------------------------------------------------------
    def record_feedback(
        self,
        response_or_id: object,
        *,
        quality: float | None = None,
        thumbs: bool | None = None,
        rating: int | None = None,
    ) -> frozenset[str]:
        """Learn a judgement of a response (object or id); thumbs -> 1/0, rating 1..5 -> 0..1.

        Works as soon as ``completion``/``acompletion`` has returned, given the
        response object (a bare response id: at once for async calls, after the
        success event for sync ones). Replaces an automatic quality still in
        its grace period. Idempotent: a second judgement of the same response
        is ignored and returns an empty set.
        """
        return self.feedback.record_feedback(
            response_or_id, quality=quality, thumbs=thumbs, rating=rating
        )

    async def arecord_feedback(
        self,
        response_or_id: object,
        *,
        quality: float | None = None,
        thumbs: bool | None = None,
        rating: int | None = None,
    ) -> frozenset[str]:
        """Async twin of :meth:`record_feedback` (in memory: it does not leave the loop)."""
        return self.record_feedback(response_or_id, quality=quality, thumbs=thumbs, rating=rating)

    def explain(self, response_or_id: object) -> Explanation:
        """Why Conduit chose the deployment that served a response (object, response id or
        decision id): every candidate's scores, the exploration bonus, what was excluded."""
        decision_id = self.feedback.decision_for(response_or_id)
        if self._conduit is None:
            raise UnknownDecisionError(f"no decision {decision_id!r}: nothing has been routed yet")
        return self._conduit.explain(decision_id)

    def serve_feedback(
        self, *, token: str, host: str = "127.0.0.1", port: int = 0
    ) -> FeedbackServer:
        """Start the HTTP feedback endpoint (:class:`FeedbackServer`); closed by :meth:`cleanup`."""
        if self._server is None:
            self._server = FeedbackServer(self.feedback, token=token, host=host, port=port).start()
        return self._server

    def serve_metrics(self, *, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve the Prometheus metrics (``metrics=True``) over HTTP; closed by :meth:`cleanup`."""
        if self.metrics is None:
            raise ConfigurationError("metrics are off: build the strategy with metrics=True")
        if self._metrics_server is None:
            self._metrics_server = self.metrics.serve(host=host, port=port)
        return self._metrics_server

    def competitors(self) -> dict[str, list[str]]:
        """For each model group, the ids of the deployments that compete for a request naming
        it under this scope: those of its own kind (chat with chat, embedding with embedding)."""
        snap = self._refresh()
        out: dict[str, list[str]] = {}
        for group in dict.fromkeys(model_group(d) for d in snap.deployments):
            members = self._members(group)
            own = {deployment_id(d) for d in members}
            kinds = {self._family(snap, d) or "chat" for d in members}
            out[group] = [
                deployment_id(d)
                for d in self._pool(snap, group, members)
                if deployment_id(d) in own or (self._family(snap, d) or "chat") in kinds
            ]
        return out

    def _log_competitors(self) -> None:
        competing = self.competitors()
        lines = [
            f"{group!r} <- {', '.join(ids)}"
            for group, ids in competing.items()
            if set(ids) != {deployment_id(d) for d in self._members(group)}
        ]
        if lines:
            logger.info(
                "Conduit scope=%r: requests for one model group may be served by deployments "
                "of other groups (set scope='group' or scope=[...] to narrow): %s",
                self.scope,
                "; ".join(lines),
            )
        else:
            logger.info("Conduit scope=%r: every request stays in its model group", self.scope)

    def _members(self, group: str) -> list[dict[str, Any]]:
        return _compat.group_deployments(self._litellm_router, group)

    def _pool(
        self, snap: _Snapshot, model: str, group: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The deployments in scope for a request naming ``model`` (group ``group``)."""
        if self.scope == "all":
            pool: Sequence[dict[str, Any]] = snap.deployments
        elif self._scope_groups and (
            model in self._scope_groups or any(model_group(d) in self._scope_groups for d in group)
        ):
            pool = [*group, *(d for d in snap.deployments if model_group(d) in self._scope_groups)]
        else:
            pool = group
        return [
            snap.by_id[i] for i in dict.fromkeys(snap.ident(d) for d in pool) if i in snap.by_id
        ]

    def _family(self, snap: _Snapshot, deployment: Mapping[str, Any]) -> str | None:
        return mode_family(self._capabilities(snap, deployment).mode)

    # -- deployments and arms ----------------------------------------------------------------
    def _router_or_raise(self) -> Any:
        if self._litellm_router is None:
            raise ConfigurationError(
                "the strategy is not attached: call "
                "ConduitRoutingStrategy.setup_strategy(router, strategy)"
            )
        return self._litellm_router

    def _refresh(self) -> _Snapshot:
        """The deployments, re-read only when LiteLLM's list changed (version, or len + ids)."""
        router = self._router_or_raise()
        version = _compat.registry_version(router)
        snap = self._snapshot
        if version is not None and snap is not None and snap.key == version:
            return snap
        listed = _compat.deployments(router)
        ids = tuple(deployment_id(d) for d in listed)
        key: object = version if version is not None else (len(listed), ids)
        if snap is not None and snap.key == key:
            return snap
        with self._lock:
            if self._snapshot is not None and self._snapshot.key == key:
                return self._snapshot
            conduit = self._ensure_router(listed, ids)
            by_id = dict(zip(ids, listed, strict=True))
            arm_of = self._map_arms(conduit, listed, ids)
            self._snapshot = _Snapshot(
                key=key,
                deployments=listed,
                by_id=by_id,
                arm_of=arm_of,
                ids={id(d): i for d, i in zip(listed, ids, strict=True)},
            )
            return self._snapshot

    def _ensure_router(self, listed: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> Router:
        """The Conduit router, built on first use and kept in step with the deployments."""
        for d, i in zip(listed, ids, strict=True):
            price = deployment_price(d)
            if price is not None:
                self._prices[i] = price
        if self._conduit is None:
            if not ids:
                raise ConfigurationError("the litellm.Router has no deployments to route between")
            self._conduit = build_router(
                list(dict.fromkeys(ids)),
                settings=self.settings,
                prices=self._prices,
                router_options=self.router_options,
            )
            extractor = self._conduit.extractor
            if self._feature_cache is not None and extractor is not None:
                extractor.second_level = self._feature_cache
        if self._owns_router:
            current = set(ids)
            arms = set(self._conduit.models)
            for new in dict.fromkeys(i for i in ids if i not in arms):
                self._conduit.add_model(new, price=self._prices.get(new))
                logger.info("Conduit arm added: %s", new)
            for gone in arms - current:
                if len(self._conduit.models) > 1:
                    self._conduit.remove_model(gone)
                    logger.info("Conduit arm removed: %s", gone)
        return self._conduit

    def _map_arms(
        self, conduit: Router, listed: Sequence[Mapping[str, Any]], ids: Sequence[str]
    ) -> dict[str, str]:
        """deployment id -> arm: the id, or (given router) the first name that matches."""
        arms = set(conduit.models)
        arm_of: dict[str, str] = {}
        for d, i in zip(listed, ids, strict=True):
            model = deployment_model(d)
            for name in (i, model, model.split("/", 1)[-1], model_group(d)):
                if name in arms:
                    arm_of[i] = name
                    break
            else:
                logger.warning(
                    "Model not in router arms: deployment %s (%s) will not be routed to", i, model
                )
        return arm_of

    # -- picking -----------------------------------------------------------------------------
    def _plan(
        self,
        snap: _Snapshot,
        model: str,
        messages: Sequence[Mapping[str, Any]] | None,
        input: object,
        specific_deployment: bool | None,
        request_kwargs: Mapping[str, Any] | None,
    ) -> _Plan:
        """Which deployments may serve this request, before cooldowns."""
        text = query_text(messages, input)
        prefs = self._request_preferences(request_kwargs)
        if specific_deployment:
            for i, d in snap.by_id.items():
                if model in (i, deployment_model(d)) and i in snap.arm_of:
                    return _Plan(text, [d], frozenset({snap.arm_of[i]}), prefs)
            for i, d in snap.by_id.items():
                if model in (i, deployment_model(d)):
                    return _Plan(text, [d], None, prefs)  # not an arm: served, nothing learned
            raise self._error(model, f"specific_deployment={model!r} names no deployment")
        group = _compat.group_deployments(self._litellm_router, model)
        if not group:
            groups = sorted({model_group(d) for d in snap.deployments})
            raise self._error(
                model, f"no deployment serves model group {model!r}; groups are {groups}"
            )
        candidates = self._servable(
            snap, self._pool(snap, model, group), group, messages, input, request_kwargs, model
        )
        routable = [d for d in candidates if snap.ident(d) in snap.arm_of]
        if not routable:
            # Conduit's configuration, not the request, is at fault: LiteLLM's choice serves it
            raise ConfigurationError(f"none of the deployments for {model!r} is a Conduit arm")
        able = self._capable(snap, routable, messages, request_kwargs, model)
        return _Plan(text, able, None, prefs)

    def _request_preferences(self, request_kwargs: Mapping[str, Any] | None) -> Preferences | None:
        if not request_kwargs:
            return None
        try:
            return request_preferences(request_kwargs.get(_compat.metadata_key(request_kwargs)))
        except InvalidQueryError as exc:
            raise self._error("", str(exc)) from None

    def _servable(
        self,
        snap: _Snapshot,
        pool: list[dict[str, Any]],
        group: Sequence[Mapping[str, Any]],
        messages: object,
        input: object,
        request_kwargs: Mapping[str, Any] | None,
        model: str,
    ) -> list[dict[str, Any]]:
        """The deployments of ``pool`` whose kind (LiteLLM's ``mode``) serves this call.

        Where the call's arguments fit two kinds (``prompt``: text completion or image
        generation; ``input``: embedding or moderation), the requested group's kind decides.
        A deployment whose mode nobody states counts as chat (LiteLLM's default), and
        always as fit for its own group.
        """
        families = _compat.call_families(messages, input, request_kwargs)
        own = {snap.ident(d) for d in group}
        if len(families) > 1:
            narrowed = families & {self._family(snap, d) or "chat" for d in group}
            families = frozenset(narrowed) or families
        keep = []
        for d in pool:
            family = self._family(snap, d)
            if family in families or (
                family is None and (snap.ident(d) in own or "chat" in families)
            ):
                keep.append(d)
        if not keep:
            kinds = " or ".join(sorted(families))
            found = sorted({str(self._capabilities(snap, d).mode) for d in group})
            raise self._error(
                model, f"no deployment for {model!r} serves a {kinds} call (its modes: {found})"
            )
        return keep

    def _capable(
        self,
        snap: _Snapshot,
        candidates: list[dict[str, Any]],
        messages: Sequence[Mapping[str, Any]] | None,
        request_kwargs: Mapping[str, Any] | None,
        model: str,
    ) -> list[dict[str, Any]]:
        """The candidates that can serve the request; raises LiteLLM's error when none can."""
        needs = request_needs(messages, request_kwargs)
        caps = [self._capabilities(snap, d) for d in candidates]
        limits = [c.max_input_tokens for c in caps if c.max_input_tokens is not None]
        tokens: int | None = None
        if limits and messages and needs.chars * 2 >= min(limits):
            try:
                tokens = int(litellm.token_counter(messages=[dict(m) for m in messages]))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed content
                logger.debug(
                    "Could not count prompt tokens (%s); context windows not checked",
                    describe_error(exc),
                )
        keep: list[dict[str, Any]] = []
        why: dict[str, str] = {}
        for d, cap in zip(candidates, caps, strict=True):
            reason = _unfit(cap, needs, tokens)
            if reason is None:
                keep.append(d)
            else:
                why[snap.ident(d)] = reason
        if keep:
            return keep
        detail = "; ".join(f"{i}: {r}" for i, r in why.items())
        message = f"no deployment for {model!r} can serve this request ({detail})"
        if all(r.startswith("prompt of") for r in why.values()):
            raise ContextWindowExceededError(
                message=f"Conduit: {message}", model=model, llm_provider=""
            )
        raise self._error(model, message)

    @staticmethod
    def _capabilities(snap: _Snapshot, deployment: Mapping[str, Any]) -> Capabilities:
        i = snap.ident(deployment)
        found = snap.capabilities.get(i)
        if found is None:
            found = snap.capabilities[i] = capabilities(deployment)
        return found

    @staticmethod
    def _error(model: str, message: str) -> Exception:
        return BadRequestError(message=f"Conduit: {message}", model=model, llm_provider="")

    def _healthy(self, candidates: list[dict[str, Any]], cooling: set[str]) -> list[dict[str, Any]]:
        """Candidates not in cooldown; all of them when every one is cooling."""
        if not cooling:
            return candidates
        healthy = [d for d in candidates if deployment_id(d) not in cooling]
        if candidates and len(healthy) < len(candidates):
            logger.debug("Skipping deployments in cooldown: %s", sorted(cooling))
        return healthy or candidates

    def _constraints(self, snap: _Snapshot, plan: _Plan, conduit: Router) -> Constraints | None:
        allowed = plan.allowed or frozenset(snap.arm_of[snap.ident(d)] for d in plan.candidates)
        if len(allowed) == len(conduit.models):
            return None
        return Constraints(allowed_models=allowed)

    def _finish(
        self,
        snap: _Snapshot,
        plan: _Plan,
        decision: RoutingDecision,
        model: str,
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The chosen deployment; its decision id goes into the request metadata."""
        arm = decision.selected_model
        chosen = next((d for d in plan.candidates if snap.arm_of.get(snap.ident(d)) == arm), None)
        if chosen is None:
            logger.warning(
                "Conduit selected %s but not found in model_list; using %s",
                arm,
                snap.ident(plan.candidates[0]),
            )
            return plan.candidates[0]
        if request_kwargs is not None:
            key = _compat.metadata_key(request_kwargs)
            old = request_kwargs.get(key)
            stamped = dict(old) if isinstance(old, Mapping) else {}
            stamped[DECISION_KEY] = decision.decision_id
            stamped[DEPLOYMENT_KEY] = snap.ident(chosen)
            stamped[JSON_KEY] = request_needs(None, request_kwargs).response_schema
            # a new dict, not an update: an earlier attempt's event keeps its own decision id
            request_kwargs[key] = stamped
            previous = old.get(DECISION_KEY) if isinstance(old, Mapping) else None
            self.feedback.link_call(request_kwargs, decision.decision_id, previous)
        if self.metrics is not None:
            prefs = plan.preferences or self.preferences
            self.metrics.decision(decision, model_group=model, preferences=prefs)
        if logger.isEnabledFor(logging.DEBUG):  # the confidence and reason are computed when read
            logger.debug("Conduit selected %s (confidence: %.2f)", arm, decision.confidence)
            logger.debug(
                "Conduit decision %s for %r: %s", decision.decision_id, model, decision.reason
            )
        return chosen

    def _route_args(self, plan: _Plan, snap: _Snapshot, conduit: Router) -> dict[str, Any]:
        return {
            "preferences": plan.preferences or self.preferences,
            "constraints": self._constraints(snap, plan, conduit),
        }

    # LiteLLM's base class annotates these picks as returning None but documents, and
    # needs, a deployment dict; hence the override ignores.
    async def async_get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Pick the deployment for one attempt (LiteLLM's async path)."""
        if is_judge_call(request_kwargs):  # the judge's own call: LiteLLM's choice, not learned
            pool, cooling = await self._adefault_pool(model, specific_deployment)
            return self._shuffled(model, pool, cooling, request_kwargs)
        try:
            return await self._apick(model, messages, input, specific_deployment, request_kwargs)
        except BadRequestError:  # the request cannot be served as asked: LiteLLM's own error
            raise
        except Exception as exc:  # a failure inside Conduit: LiteLLM's default choice serves it
            pool, cooling = await self._adefault_pool(model, specific_deployment)
            return self._fallback(exc, model, pool, cooling, request_kwargs)

    def get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Pick the deployment for one attempt (LiteLLM's sync path; uses no event loop)."""
        if is_judge_call(request_kwargs):  # the judge's own call: LiteLLM's choice, not learned
            pool, cooling = self._default_pool(model, specific_deployment)
            return self._shuffled(model, pool, cooling, request_kwargs)
        try:
            return self._pick(model, messages, input, specific_deployment, request_kwargs)
        except BadRequestError:  # the request cannot be served as asked: LiteLLM's own error
            raise
        except Exception as exc:  # a failure inside Conduit: LiteLLM's default choice serves it
            pool, cooling = self._default_pool(model, specific_deployment)
            return self._fallback(exc, model, pool, cooling, request_kwargs)

    async def _apick(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]] | None,
        input: object,
        specific_deployment: bool | None,
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        self.feedback.apply_due_signals()
        if self._conduit is None or self._snapshot is None:
            await asyncio.to_thread(self._refresh)  # the first build may load the embedding model
        snap = self._refresh()
        plan = self._plan(snap, model, messages, input, specific_deployment, request_kwargs)
        if plan.allowed is None and not specific_deployment:
            cooling = await _compat.async_active_cooldowns(
                self._litellm_router, [snap.ident(d) for d in plan.candidates]
            )
            plan.candidates = self._healthy(plan.candidates, cooling)
        conduit = self._conduit
        if conduit is None or (specific_deployment and plan.allowed is None):
            return plan.candidates[0]
        decision = await conduit.route(plan.text, **self._route_args(plan, snap, conduit))
        return self._finish(snap, plan, decision, model, request_kwargs)

    def _pick(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]] | None,
        input: object,
        specific_deployment: bool | None,
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        self.feedback.apply_due_signals()
        snap = self._refresh()
        plan = self._plan(snap, model, messages, input, specific_deployment, request_kwargs)
        if plan.allowed is None and not specific_deployment:
            cooling = _compat.active_cooldowns(
                self._litellm_router, [snap.ident(d) for d in plan.candidates]
            )
            plan.candidates = self._healthy(plan.candidates, cooling)
        conduit = self._conduit
        if conduit is None or (specific_deployment and plan.allowed is None):
            return plan.candidates[0]
        decision = conduit.route_sync(plan.text, **self._route_args(plan, snap, conduit))
        return self._finish(snap, plan, decision, model, request_kwargs)

    # -- when Conduit fails: LiteLLM's default choice ------------------------------------------
    def _fallback_pool(self, model: str, specific_deployment: bool | None) -> list[dict[str, Any]]:
        """The deployments LiteLLM itself would choose among for this request."""
        router = self._router_or_raise()
        if specific_deployment:
            pool = [
                d
                for d in _compat.deployments(router)
                if model in (deployment_id(d), deployment_model(d))
            ]
        else:
            pool = _compat.group_deployments(router, model)
        if not pool:
            raise self._error(model, f"no deployment serves model group {model!r}")
        return pool

    def _fallback(
        self,
        exc: Exception,
        model: str,
        pool: list[dict[str, Any]],
        cooling: set[str],
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A deployment as ``simple-shuffle`` picks it, with no Conduit decision attached."""
        self._fallbacks.record(exc)
        if request_kwargs is not None:
            _unstamp(request_kwargs)
        return self._shuffled(model, pool, cooling, request_kwargs)

    def _shuffled(
        self,
        model: str,
        pool: list[dict[str, Any]],
        cooling: set[str],
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The healthy deployment of ``pool`` that LiteLLM's ``simple-shuffle`` picks."""
        return _compat.simple_shuffle(
            self._litellm_router, self._healthy(pool, cooling), model, request_kwargs, self._shuffle
        )

    def _default_pool(
        self, model: str, specific_deployment: bool | None
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """LiteLLM's own candidates for ``model`` and which of them are cooling down."""
        pool = self._fallback_pool(model, specific_deployment)
        ids = [deployment_id(d) for d in pool]
        return pool, _compat.active_cooldowns(self._litellm_router, ids)

    async def _adefault_pool(
        self, model: str, specific_deployment: bool | None
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """:meth:`_default_pool` on the async path (the cooldown lookup awaited)."""
        pool = self._fallback_pool(model, specific_deployment)
        ids = [deployment_id(d) for d in pool]
        return pool, await _compat.async_active_cooldowns(self._litellm_router, ids)

    def _dearest(self) -> str | None:
        """The dearest candidate deployment (by token price): the default shadow reference."""
        with self._lock:
            prices = dict(self._prices)
        return max(prices, key=lambda i: sum(prices[i]), default=None)

    def stats(self) -> dict[str, float]:
        """The feedback logger's event counts, the requests LiteLLM routed because Conduit
        failed (``fallbacks``, ``fallbacks.<ExceptionType>``), the judge's counters and
        cost (``judge.*``) and what routing saved against the dearest model
        (``routing_saved``, USD)."""
        return {
            **self.feedback.stats(),
            **self._fallbacks.stats(),
            **self.judge.stats(self._conduit),
        }

    def __repr__(self) -> str:
        return f"ConduitRoutingStrategy(scope={self.scope!r}, router={self._conduit!r})"


def _scope_groups(scope: object) -> tuple[str, ...]:
    """The groups of a list scope (empty for "all" and "group"); refuses anything else."""
    if scope in ("all", "group"):
        return ()
    if isinstance(scope, (str, bytes)) or not isinstance(scope, Sequence) or not scope:
        raise ConfigurationError(
            f"scope must be 'all', 'group' or a non-empty list of model group names, got {scope!r}"
        )
    for name in scope:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"scope lists model group names (str), got {name!r}")
    return tuple(dict.fromkeys(scope))


def _unstamp(request_kwargs: dict[str, Any]) -> None:
    """Take an earlier attempt's decision off a retry that Conduit did not route, so the
    outcome of this attempt is not learned against that decision."""
    key = _compat.metadata_key(request_kwargs)
    old = request_kwargs.get(key)
    if not isinstance(old, Mapping) or DECISION_KEY not in old:
        return
    stale = (DECISION_KEY, DEPLOYMENT_KEY, JSON_KEY)
    request_kwargs[key] = {k: v for k, v in old.items() if k not in stale}
    if request_kwargs.get("litellm_call_id") == f"{CALL_PREFIX}{old[DECISION_KEY]}":
        request_kwargs["litellm_call_id"] = str(uuid.uuid4())


def _unfit(cap: Capabilities, needs: RequestNeeds, tokens: int | None) -> str | None:
    """Why a deployment cannot serve the request, or None when it can."""
    if tokens is not None and cap.max_input_tokens is not None and tokens > cap.max_input_tokens:
        return f"prompt of {tokens} tokens exceeds its context window of {cap.max_input_tokens}"
    if needs.tools and cap.function_calling is False:
        return "does not support function calling (tools)"
    if needs.images and cap.vision is False:
        return "does not support images (vision)"
    if needs.response_schema and cap.response_schema is False:
        return "does not support response_format (structured output)"
    return None
