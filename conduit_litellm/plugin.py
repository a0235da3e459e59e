"""ConduitRoutingPlugin: Conduit inside the LiteLLM proxy, as a routing plugin.

The proxy cannot load a custom routing strategy class, but it runs the routing
plugins listed in ``router_settings.plugins`` (LiteLLM >= 1.110, async calls
only). A plugin sees the provider models (``litellm_params.model``) that serve
the requested model name and narrows them: this one narrows them to the single
model Conduit chooses. So the arms are the provider models of one model name;
two deployments of the same provider model are one arm (LiteLLM then picks
between them).

A plugin cannot write the request metadata, only its signals, which LiteLLM
stores under ``metadata["routing_plugin_signals"]["conduit"]``: the decision id
travels there to :class:`~conduit_litellm.feedback.ConduitFeedbackLogger`,
which the plugin registers when it is built.

The proxy names a plugin by a dotted path to an instance. ``conduit_litellm.plugin.default``
is one built on first access from environment variables (see :func:`from_env`);
for other settings, build a ``ConduitRoutingPlugin`` in your own module. See
docs/proxy.md and examples/proxy_config.yaml.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litellm.exceptions import BadRequestError

from conduit._errors import ConduitError, ConfigurationError, InvalidQueryError
from conduit._types import Constraints, Preferences
from conduit.config import load_settings
from conduit.engines.bandits import ALGORITHMS
from conduit.engines.features._extractor import Backend, make_embedder
from conduit.engines.router import Router
from conduit.judge import Judge
from conduit.metrics import Metrics, MetricsServer, as_metrics
from conduit_litellm import _compat
from conduit_litellm._core import (
    as_weights,
    build_router,
    check_arguments,
    check_router_options,
    learners,
    request_preferences,
    settings_preferences,
)
from conduit_litellm._fallback import Fallbacks
from conduit_litellm._judge import JUDGE_KEY
from conduit_litellm.feedback import (
    DECISION_KEY,
    MODEL_KEY,
    SIGNALS_KEY,
    FeedbackServer,
    _mapping,
    answer_feedback,
)
from conduit_litellm.utils import deployment_id, deployment_model, deployment_price, query_text

if TYPE_CHECKING:
    from litellm.types.router import RoutingContext

__all__ = ["FEEDBACK_PATH", "ConduitRoutingPlugin", "from_env"]

logger = logging.getLogger("conduit_litellm")

#: Where the plugin serves explicit feedback on the proxy's own app.
FEEDBACK_PATH = "/conduit/feedback"


class ConduitRoutingPlugin:
    """A LiteLLM routing plugin (``async run(context)``) that learns which model to narrow to.

    ``feedback_port`` starts :class:`~conduit_litellm.feedback.FeedbackServer`
    on ``feedback_host`` (127.0.0.1 by default) with ``feedback_token``, so
    clients of the proxy can post thumbs or ratings by response id.

    ``metrics=True`` (or a :class:`conduit.metrics.Metrics`) keeps Prometheus
    metrics, added to prometheus_client's default registry, which the proxy's own
    ``/metrics`` serves when LiteLLM's ``prometheus`` callback is on;
    ``metrics_port`` (which implies ``metrics=True``) also serves them on
    ``metrics_host`` (127.0.0.1 by default).

    ``judge`` (a :class:`conduit.judge.Judge`), or ``judge_model`` and the other
    ``judge_*`` settings (also ``CONDUIT_JUDGE_*``: see :class:`conduit.config.ConduitSettings`),
    grades a sampled share of answers in the background.

    With a ``state_path``, what was learned is saved every ``save_interval``
    seconds (when something changed) and at exit: the proxy never tells a plugin
    it is stopping, and on SIGTERM uvicorn ends the process by re-raising the
    signal, so no exit handler runs there.
    """

    def __init__(
        self,
        *,
        conduit_router: Router | None = None,
        use_hybrid: bool | None = None,
        bandit_algorithm: str | None = None,
        embedding_model: str | None = None,
        embedding_backend: Backend | None = None,
        seed: int | None = None,
        preferences: Preferences | str | Mapping[str, float] | None = None,
        state_store: str | None = None,
        state_path: str | Path | None = None,
        router_options: Mapping[str, Any] | None = None,
        feedback_port: int | None = None,
        feedback_host: str | None = None,
        feedback_token: str | None = None,
        response_ttl: float = 24 * 3600.0,
        max_responses: int = 100_000,
        save_interval: float | None = None,
        metrics: bool | Metrics | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        judge: Judge | None = None,
        judge_model: str | None = None,
        judge_sample_rate: float | None = None,
        judge_shadow_rate: float | None = None,
        judge_max_cost_per_hour: float | None = None,
        judge_max_cost_per_day: float | None = None,
        regenerations: bool | None = None,
    ) -> None:
        check_arguments(judge=judge, conduit_router=conduit_router, use_hybrid=use_hybrid)
        if isinstance(save_interval, bool):
            raise ConfigurationError(f"save_interval must be a number, got {save_interval!r}")
        #: The validated settings (keywords, else CONDUIT_* variables): see conduit.config.
        self.settings = load_settings(
            preferences=as_weights(preferences),
            bandit_algorithm=bandit_algorithm,
            use_hybrid=use_hybrid if conduit_router is None else None,
            embedding_model=embedding_model,
            embedding_backend=embedding_backend,
            seed=seed,
            state_store=state_store,
            state_path=None if state_path is None else str(state_path),
            save_interval=save_interval,
            feedback_token=feedback_token,
            feedback_port=feedback_port,
            feedback_host=feedback_host,
            metrics=metrics if isinstance(metrics, bool) else None,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            judge_model=judge_model,
            judge_sample_rate=judge_sample_rate,
            judge_shadow_rate=judge_shadow_rate,
            judge_max_cost_per_hour=judge_max_cost_per_hour,
            judge_max_cost_per_day=judge_max_cost_per_day,
            regenerations=regenerations,
        )
        settings = self.settings
        if judge is not None and judge_model is not None:
            raise ConfigurationError("give judge or judge_model, not both")
        judge = judge if judge is not None else settings.judge()  # judge_* or CONDUIT_JUDGE_*
        self.preferences = settings_preferences(self.settings)
        self._conduit = conduit_router
        self._owns_router = conduit_router is None
        self.save_interval = self.settings.save_interval
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._options = check_router_options(router_options or {})
        self._prices: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._fallbacks = Fallbacks(logger, "LiteLLM's own choice among the candidates")
        wanted: bool | Metrics = (
            metrics
            if isinstance(metrics, Metrics)
            else settings.metrics or settings.metrics_port is not None
        )
        self.metrics = as_metrics(wanted)
        self.feedback, self.judge = learners(
            conduit=lambda: self._conduit,
            litellm_router=lambda: self.litellm_router or _compat.proxy_router(),
            prices=self._prices,
            judge=judge,
            reference=self._dearest,
            regenerations=bool(settings.regenerations),
            metrics=self.metrics,
            feedback_options={"response_ttl": response_ttl, "max_responses": max_responses},
            loop=lambda: self._loop,  # a router with routing plugins refuses sync calls
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._registered = False
        self.litellm_router: Any = None
        # Now, not on the first request: LiteLLM fixes a call's callbacks before routing it,
        # so a logger added during the first pick would miss that call's outcome.
        self.register_feedback()
        self.server: FeedbackServer | None = None
        self.metrics_server: MetricsServer | None = None
        if self.metrics is not None:
            self._start_metrics(self.metrics, settings.metrics_port, settings.metrics_host)
        if settings.feedback_port is not None:
            if settings.feedback_token is None:
                raise ConfigurationError("feedback_port needs feedback_token (a shared secret)")
            self.server = FeedbackServer(
                self.feedback,
                token=settings.feedback_token,
                host=settings.feedback_host,
                port=settings.feedback_port,
            ).start()

    def check(self) -> ConduitRoutingPlugin:
        """Load the embedding model now, so one that cannot be loaded fails the proxy's start
        (:func:`from_env` calls it) rather than every request; then, inside a LiteLLM proxy,
        mount the feedback endpoint on its app (:meth:`mount_feedback`). Returns the plugin."""
        if self._conduit is None and self.settings.algorithm not in _CONTEXT_FREE:
            make_embedder(self.settings.embedding_model, self.settings.embedding_backend)
        self.mount_feedback()
        return self

    def mount_feedback(self, path: str = FEEDBACK_PATH) -> bool:
        """Serve explicit feedback as ``POST <path>`` on the LiteLLM proxy's own app: the
        proxy's port and its key auth (master key or a virtual key). Whether it was mounted
        (False outside a proxy)."""
        feedback = self.feedback

        async def answer(body: bytes) -> tuple[int, dict[str, Any]]:
            return answer_feedback(feedback, body)

        return _compat.mount_on_proxy(path, answer)

    @property
    def conduit_router(self) -> Router | None:
        return self._conduit

    def bind(self, router: Any) -> None:
        """Read cooldowns from ``router``; in the proxy, its router is found without this."""
        self.litellm_router = router

    async def _cooling(
        self, models: Sequence[str], deployments: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        """The models whose every deployment LiteLLM has in cooldown."""
        router = self.litellm_router or _compat.proxy_router()
        if router is None:
            return set()
        ids: dict[str, list[str]] = {}
        for d in deployments:
            ids.setdefault(deployment_model(d), []).append(deployment_id(d))
        wanted = [i for m in models for i in ids.get(m, [])]
        cooling = await _compat.async_active_cooldowns(router, wanted)
        return {m for m in models if ids.get(m) and all(i in cooling for i in ids[m])}

    def register_feedback(self) -> None:
        """Put the feedback logger in ``litellm.callbacks`` once (built and each request do it)."""
        if self._registered:
            return
        _compat.add_callback(self.feedback)
        self._registered = True
        logger.info("Feedback logger registered with LiteLLM - bandit learning enabled")

    def cleanup(self) -> None:
        """Take the logger out of LiteLLM, stop the endpoint, save learning; safe to repeat."""
        _compat.remove_callback(self.feedback)
        self._registered = False
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        if self.metrics is not None:
            self.metrics.close()
        self.judge.close()  # the queued grades first: they are learned below
        self.feedback.apply_due_signals(everything=True)  # no explicit feedback is coming now
        self._stop.set()
        saver, self._saver = self._saver, None
        if saver is not None:
            saver.join()
        atexit.unregister(self.cleanup)
        if self._conduit is not None and self._owns_router:
            self._conduit.close()

    def _start_metrics(self, metrics: Metrics, port: int | None, host: str) -> None:
        """Read the router at scrape time; show in LiteLLM's ``/metrics``; serve on ``port``."""
        metrics.watch(lambda: self._conduit)
        try:
            metrics.expose_in_default_registry()
        except ConfigurationError as exc:  # another plugin's metrics are there already
            logger.warning("Conduit metrics not added to LiteLLM's /metrics: %s", exc)
        if port is not None:
            self.metrics_server = metrics.serve(host=host, port=port)

    def _start_saving(self, router: Router) -> None:
        """Save ``router`` periodically and at exit, if it has a state file."""
        if router.state_path is None:
            return
        self._stop.clear()
        self._saver = threading.Thread(
            target=self._save_periodically, args=(router,), name="conduit-plugin-save", daemon=True
        )
        self._saver.start()
        atexit.register(self.cleanup)

    def _save_periodically(self, router: Router) -> None:
        saved = router.stats()
        while not self._stop.wait(self.save_interval):
            now = router.stats()
            if now == saved:
                continue
            try:
                router.save()
            except (OSError, ConduitError) as exc:  # a full disk must not end the thread
                logger.warning("Could not save Conduit state to %s: %s", router.state_path, exc)
                continue
            saved = now

    def record_feedback(
        self,
        response_or_id: object,
        *,
        quality: float | None = None,
        thumbs: bool | None = None,
        rating: int | None = None,
    ) -> frozenset[str]:
        """Learn a judgement of a response; see ConduitRoutingStrategy.record_feedback."""
        return self.feedback.record_feedback(
            response_or_id, quality=quality, thumbs=thumbs, rating=rating
        )

    def _deployments(self, metadata: Mapping[str, object]) -> list[dict[str, Any]]:
        """The deployments of the requested model name, read from LiteLLM's router."""
        router = self.litellm_router or _compat.proxy_router()
        if router is None:
            return []
        group = metadata.get("model_group")
        return (
            _compat.group_deployments(router, group)
            if isinstance(group, str)
            else _compat.deployments(router)
        )

    def _arms(self, models: Sequence[str], deployments: Sequence[Mapping[str, Any]]) -> Router:
        """The Conduit router, built on first use; new provider models become arms.

        A model's price is its deployment's ``input_cost_per_token`` and
        ``output_cost_per_token`` where the config sets them, else LiteLLM's
        cost map: the price LiteLLM itself bills the call at.
        """
        with self._lock:
            for model in models:
                if model in self._prices:
                    continue
                own = [d for d in deployments if deployment_model(d) == model]
                for deployment in own or [{"litellm_params": {"model": model}}]:
                    price = deployment_price(deployment)
                    if price is not None:
                        self._prices[model] = price
                        break
            if self._conduit is None:
                router = self.litellm_router or _compat.proxy_router()
                listed = _compat.deployments(router) if router is not None else deployments
                self._conduit = build_router(
                    list(models),
                    settings=self.settings,
                    prices=self._prices,
                    router_options=self._options,
                    # the namespace: every provider model of the model list, not just the
                    # first request's group, so a restart finds its learning whatever comes first
                    model_list=sorted({deployment_model(d) for d in listed} | set(models)),
                )
                if self._owns_router:
                    self._start_saving(self._conduit)
            elif self._owns_router:
                known = set(self._conduit.models)
                for model in models:
                    if model not in known:
                        self._conduit.add_model(model, price=self._prices.get(model))
                        logger.info("Conduit arm added: %s", model)
            return self._conduit

    async def run(self, context: RoutingContext) -> RoutingContext:
        """Narrow ``context.candidate_models`` to the one Conduit chooses.

        If Conduit fails, the context goes back as it came, so LiteLLM chooses among
        the candidates as it would without the plugin: one WARNING per kind of
        failure, counted in :meth:`stats`.
        """
        candidates = getattr(context, "candidate_models", None)
        try:
            return await self._run(context)
        except InvalidQueryError as exc:  # the request is at fault: a 400, as the strategy's
            raise BadRequestError(
                message=f"Conduit: {exc}", model=_group(context) or "", llm_provider=""
            ) from None
        except Exception as exc:  # a failure inside Conduit must not fail the request
            self._fallbacks.record(exc)
            if candidates is not None:
                context.candidate_models = candidates
            return context

    def stats(self) -> dict[str, float]:
        """The feedback logger's event counts and the requests LiteLLM routed alone because
        Conduit failed: ``fallbacks`` and ``fallbacks.<ExceptionType>``."""
        return {
            **self.feedback.stats(),
            **self._fallbacks.stats(),
            **self.judge.stats(self._conduit),
        }

    def _dearest(self) -> str | None:
        """The dearest provider model (by token price): the default shadow reference."""
        with self._lock:
            prices = dict(self._prices)
        return max(prices, key=lambda m: sum(prices[m]), default=None)

    async def _run(self, context: RoutingContext) -> RoutingContext:
        if _mapping(context.metadata).get(JUDGE_KEY) is True:  # the judge's call: not routed
            return context
        self.register_feedback()
        self._loop = asyncio.get_running_loop()
        self.judge.start()
        self.feedback.apply_due_signals()
        models = list(dict.fromkeys(context.candidate_models))
        if not models:
            return context
        deployments = self._deployments(context.metadata)
        if self._conduit is None:  # may load the embedding model
            conduit = await asyncio.to_thread(self._arms, models, deployments)
        else:
            conduit = self._arms(models, deployments)
        known = set(conduit.models)
        allowed = frozenset(m for m in models if m in known)
        if not allowed:
            logger.warning(
                "Model not in router arms: none of %s; leaving the choice to LiteLLM", models
            )
            return context
        cooling = await self._cooling(sorted(allowed), deployments)
        if cooling and cooling != allowed:
            logger.debug("Skipping models in cooldown: %s", sorted(cooling))
            allowed = allowed - cooling
        prefs = request_preferences(context.metadata) or self.preferences
        decision = await conduit.route(
            query_text(_as_messages(context.structured_messages)),
            preferences=prefs,
            constraints=None if allowed == known else Constraints(allowed_models=allowed),
        )
        context.candidate_models = [decision.selected_model]
        if self.metrics is not None:
            self.metrics.decision(decision, model_group=_group(context), preferences=prefs)
        context.signals[SIGNALS_KEY] = {
            DECISION_KEY: decision.decision_id,
            MODEL_KEY: decision.selected_model,
            "confidence": decision.confidence,
        }
        logger.debug(
            "Conduit selected %s (confidence: %.2f)", decision.selected_model, decision.confidence
        )
        return context


#: Algorithms that route without query features: no embedding model to check.
_CONTEXT_FREE = frozenset(name for name, cls in ALGORITHMS.items() if not cls.contextual)


def _group(context: object) -> str | None:
    metadata = getattr(context, "metadata", None)
    group = metadata.get("model_group") if isinstance(metadata, Mapping) else None
    return group if isinstance(group, str) else None


def _as_messages(messages: object) -> list[Mapping[str, Any]]:
    return [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []


def from_env() -> ConduitRoutingPlugin:
    """A plugin configured by the ``CONDUIT_*`` environment variables alone (the fields of
    :class:`conduit.config.ConduitSettings`); a bad value raises ConfigurationError, which
    fails the proxy's start with its message."""
    return ConduitRoutingPlugin().check()


_default: ConduitRoutingPlugin | None = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``conduit_litellm.plugin.default``, built from the environment on first access."""
    global _default
    if name != "default":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _default_lock:
        if _default is None:
            _default = from_env()
        return _default
