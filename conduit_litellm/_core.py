"""What the strategy and the proxy plugin share: settings, router building, store, preferences.

:class:`~conduit_litellm.strategy.ConduitRoutingStrategy` and
:class:`~conduit_litellm.plugin.ConduitRoutingPlugin` differ only in how LiteLLM
calls them (a pick per attempt, a plugin narrowing candidates); everything
about *what* Conduit does with a request lives here once, so the two cannot
drift apart: one settings model (:func:`conduit.config.load_settings`), one
way to build the Conduit router and choose its store, one parser for
per-request ``conduit_preferences``.
"""

from __future__ import annotations

import asyncio
import logging
import reprlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from conduit import _validate
from conduit._errors import ConfigurationError, InvalidQueryError
from conduit._types import Preferences
from conduit.config import (
    MEMORY_STATE_URL,
    ConduitSettings,
    check_state_url,
    model_list_namespace,
    resolve_state_url,
)
from conduit.engines.router import Router
from conduit.judge import Judge, Regenerations
from conduit.metrics import Metrics
from conduit.stores import Store, open_store, redact
from conduit_litellm._judge import JudgeWorker
from conduit_litellm.feedback import ConduitFeedbackLogger

__all__ = [
    "PREFERENCES_KEY",
    "as_weights",
    "build_router",
    "check_arguments",
    "check_router_options",
    "learners",
    "parse_preferences",
    "request_preferences",
    "settings_preferences",
    "store_for",
]

logger = logging.getLogger("conduit_litellm")

#: Request-metadata key a caller may set to route one request with other preferences.
PREFERENCES_KEY = "conduit_preferences"

_short = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxdict = 2, 40, 40, 6


def parse_preferences(value: object) -> Preferences:
    """A preset name, a :class:`~conduit._types.Preferences` or a dict of weights.

    Anything else, an unknown preset or a bad weight raises
    :class:`~conduit._errors.InvalidQueryError` (shown shortened: a value nested a
    thousand levels deep must not break the error message).

    >>> parse_preferences({"cost": 2.0}).cost
    2.0
    >>> parse_preferences("cheapest")
    Traceback (most recent call last):
    conduit._errors.InvalidQueryError: conduit_preferences='cheapest' is invalid: unknown \
preference 'cheapest'; use one of ['balanced', 'cost', 'quality', 'speed'], a mapping of ...
    """
    try:
        if isinstance(value, (str, Preferences)):
            return Preferences.of(value)
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            weights = {k: v for k, v in value.items()}
            bad = {k: v for k, v in weights.items() if not _validate.is_number(v)}
            if bad:
                raise ValueError(f"weights must be numbers, got {_short.repr(bad)}")
            return Preferences(**weights)
        raise ValueError(
            "use a preset name (balanced, quality, cost, speed) or a dict of weights "
            f"(quality, cost, latency), not {type(value).__name__}"
        )
    except (ValueError, TypeError) as exc:
        detail = _first_line(exc)
        raise InvalidQueryError(
            f"{PREFERENCES_KEY}={_short.repr(value)} is invalid: {detail}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """An exception's message without pydantic's multi-line detail and links."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            found = errors(include_url=False)
        except TypeError:
            found = []
        if found:
            first = found[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def request_preferences(metadata: object) -> Preferences | None:
    """The preferences a request's metadata asks for (None: the configured ones)."""
    if not isinstance(metadata, Mapping):
        return None
    wanted = metadata.get(PREFERENCES_KEY)
    return None if wanted is None else parse_preferences(wanted)


def as_weights(preferences: object) -> object:
    """Preferences as the settings model takes them: a preset name or a dict of weights."""
    if isinstance(preferences, Preferences):
        return preferences.preset or preferences.model_dump()
    return dict(preferences) if isinstance(preferences, Mapping) else preferences


def settings_preferences(settings: ConduitSettings) -> Preferences:
    return parse_preferences(settings.preferences)


def store_for(
    settings: ConduitSettings,
    router_options: Mapping[str, Any],
    names: Collection[str],
) -> str | Store | None:
    """Where the router keeps its learning.

    ``router_options["state_store"]`` or ``state_store``/``$CONDUIT_STATE_URL`` when given,
    else the embedded SQLite store (:func:`conduit.config.resolve_state_url`); ``memory://``
    (without a name) keeps it in the process only, and so does ``state_path`` (its JSON file)
    unless a store is named too. A URL without ``?namespace=`` gets the model list's
    (:func:`conduit.config.model_list_namespace` of ``names``: every deployment id, or for
    the plugin every provider model, of the model list).
    """
    given = router_options.get("state_store")
    if isinstance(given, Store):
        return given  # the caller's own store
    if given is None and settings.state_store is None and settings.state_path is not None:
        return None
    url = resolve_state_url(given if given is not None else settings.state_store)
    if url.rstrip("/") == MEMORY_STATE_URL.rstrip("/"):
        return None
    if "namespace=" in url:
        return url
    return open_store(url, namespace=model_list_namespace(names))


def check_arguments(*, judge: object, conduit_router: object, use_hybrid: object) -> None:
    """The constructor arguments the settings model does not check, alike in both entry points."""
    if judge is not None and not isinstance(judge, Judge):
        raise ConfigurationError(f"judge must be a conduit.judge.Judge, got {judge!r}")
    if conduit_router is not None and not isinstance(conduit_router, Router):
        raise ConfigurationError(
            f"conduit_router must be a conduit.Router, got {type(conduit_router).__name__}"
        )
    if use_hybrid is not None and not isinstance(use_hybrid, bool):
        raise ConfigurationError(f"use_hybrid must be True, False or None, got {use_hybrid!r}")


def learners(
    *,
    conduit: Callable[[], Router | None],
    litellm_router: Callable[[], Any],
    prices: Mapping[str, tuple[float, float]],
    judge: Judge | None,
    reference: Callable[[], str | None],
    regenerations: bool,
    metrics: Metrics | None,
    feedback_options: Mapping[str, Any],
    loop: Callable[[], asyncio.AbstractEventLoop | None] | None = None,
) -> tuple[ConduitFeedbackLogger, JudgeWorker]:
    """The feedback logger (LiteLLM events -> outcomes; ``feedback_options``: its response
    map's ``response_ttl``/``max_responses``, ``signal_grace``) and the judge's worker, which
    it tells of every routed success."""
    feedback = ConduitFeedbackLogger(
        router=conduit, price=prices.get, metrics=metrics, **feedback_options
    )
    worker = JudgeWorker(
        judge,
        feedback=feedback,
        router=litellm_router,
        conduit=conduit,
        reference=reference,
        regenerations=Regenerations() if regenerations else None,
        metrics=metrics,
        loop=loop,
    )
    feedback.success_hook = worker.observe
    return feedback, worker


def check_router_options(router_options: Mapping[str, Any]) -> dict[str, Any]:
    """The extra :class:`conduit.Router` arguments, checked where that needs no I/O."""
    options = dict(router_options)
    store = options.get("state_store")
    if isinstance(store, str):
        check_state_url(store, "router_options['state_store']")
    return options


def build_router(
    arms: Sequence[str],
    *,
    settings: ConduitSettings,
    prices: Mapping[str, tuple[float, float]],
    router_options: Mapping[str, Any],
    model_list: Collection[str] | None = None,
) -> Router:
    """The Conduit router over ``arms``, started: its saved state loaded, its store opened
    and synced (so a corrupt state or an unreachable store fails here, at setup)."""
    options = {k: v for k, v in router_options.items() if k != "state_store"}
    store = store_for(settings, router_options, arms if model_list is None else model_list)
    router = Router(
        list(arms),
        bandit_algorithm=settings.bandit_algorithm,
        use_hybrid=settings.use_hybrid,
        embedding_model=settings.embedding_model,
        embedding_backend=settings.embedding_backend,
        seed=settings.seed,
        prices={a: p for a, p in prices.items() if a in arms},
        state_path=settings.state_path,
        state_store=store,
        **options,
    )
    router.start()
    where = (
        "memory only"
        if store is None
        else (store.url if isinstance(store, Store) else redact(str(store)))
    )
    if isinstance(store, Store):
        where = f"{where} (namespace {store.namespace!r})"
    logger.info(
        "Conduit router built: %d arms, %s; learning kept in %s",
        len(arms),
        router.algorithm,
        where,
    )
    return router
