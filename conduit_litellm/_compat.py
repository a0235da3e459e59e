"""Every LiteLLM-version-dependent call, in one place, chosen by feature detection.

LiteLLM 1.110 moved the router's members behind entry points: ``registry()`` for
deployments (``model_list`` is deprecated), ``health().cooldowns`` for the
cooldown store (``cooldown_cache`` before), ``register_plugin`` for a custom
strategy (``set_custom_routing_strategy`` before). Older releases (1.74.9 on)
have only the old members. Each helper below asks the router what it has
instead of comparing version strings, so a release in between works too.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import litellm

__all__ = [
    "active_cooldowns",
    "add_callback",
    "async_active_cooldowns",
    "call_families",
    "deployments",
    "group_deployments",
    "has_registry",
    "hidden_param",
    "logging_object",
    "metadata_key",
    "mount_on_proxy",
    "plugin_signals",
    "proxy_router",
    "register_strategy",
    "registry_version",
    "remove_callback",
    "simple_shuffle",
    "unregister_strategy",
]

logger = logging.getLogger("conduit_litellm")

#: The callback lists LiteLLM copies an entry of ``litellm.callbacks`` into on first use.
_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def has_registry(router: Any) -> bool:
    """Whether the router serves ``registry()`` (LiteLLM >= 1.110)."""
    try:
        return callable(router.registry)
    except AttributeError:
        return False


def deployments(router: Any) -> list[dict[str, Any]]:
    """The router's live deployment list, without touching the deprecated ``model_list``."""
    if has_registry(router):
        return list(router.registry().all())
    return list(router.model_list or [])


def registry_version(router: Any) -> int | None:
    """A number that changes whenever the deployments change, or None where LiteLLM has none."""
    if has_registry(router):
        return int(router.registry().version)
    return None


def group_deployments(router: Any, model: str) -> list[dict[str, Any]]:
    """The deployments LiteLLM itself would consider for ``model`` (aliases and wildcards too)."""
    if has_registry(router):
        found = router.registry().deployments(model_name=model)
    else:
        found = router.get_model_list(model_name=model)
    return list(found or [])


def register_strategy(router: Any, strategy: Any) -> str:
    """Make ``strategy`` pick every deployment; returns the LiteLLM call used."""
    if callable(getattr(router, "register_plugin", None)):
        router.register_plugin(strategy)
        return "register_plugin"
    router.set_custom_routing_strategy(strategy)
    return "set_custom_routing_strategy"


def unregister_strategy(router: Any, strategy: Any) -> bool:
    """Give the router its own strategy back, if ``strategy`` is the one registered.

    LiteLLM has no public call for this. 1.110 drops a custom strategy when the
    routing strategy changes, by clearing ``_custom_strategy`` and the assigned
    sync pick on its core; we do the same two steps. Older releases assigned the
    two pick methods on the instance, so deleting them restores the class's.
    """
    core = getattr(router, "__dict__", {}).get("_core")
    if core is not None and hasattr(core, "_custom_strategy"):
        if core._custom_strategy is not strategy:
            return False
        core._custom_strategy = None
        core.__dict__.pop("get_available_deployment", None)
        core.__dict__.pop("_core_async_get_available_deployment", None)
        router.__dict__.pop("get_available_deployment", None)
        return True
    removed = False
    for name in ("get_available_deployment", "async_get_available_deployment"):
        bound = router.__dict__.get(name)
        if getattr(bound, "__self__", None) is strategy:
            del router.__dict__[name]
            removed = True
    return removed


def active_cooldowns(router: Any, ids: Sequence[str]) -> set[str]:
    """The ids among ``ids`` LiteLLM has in cooldown now."""
    cache = _cooldown_cache(router)
    if cache is None or not ids:
        return set()
    return {model_id for model_id, _ in cache.get_active_cooldowns(list(ids), None)}


async def async_active_cooldowns(router: Any, ids: Sequence[str]) -> set[str]:
    """:func:`active_cooldowns` without blocking the loop when the cooldowns live in Redis."""
    cache = _cooldown_cache(router)
    if cache is None or not ids:
        return set()
    return {model_id for model_id, _ in await cache.async_get_active_cooldowns(list(ids), None)}


def _cooldown_cache(router: Any) -> Any:
    if callable(getattr(router, "health", None)):
        health = router.health()
        if hasattr(health, "cooldowns"):
            return health.cooldowns
    return getattr(router, "cooldown_cache", None)


def add_callback(callback: Any) -> None:
    """Put ``callback`` in ``litellm.callbacks`` once, even past LiteLLM's callback limit.

    LiteLLM's manager refuses a callback once a list holds ``MAX_CALLBACKS``
    (30) entries, with only a log line; routers of LiteLLM < 1.110 add their own
    callbacks per instance and never remove them, so a long-lived process can
    reach it. Losing the feedback logger would silently stop all learning.
    """
    manager = getattr(litellm, "logging_callback_manager", None)
    if manager is not None and callable(getattr(manager, "add_litellm_callback", None)):
        manager.add_litellm_callback(callback)
    if not any(entry is callback for entry in litellm.callbacks):
        logger.warning(
            "LiteLLM refused the Conduit feedback logger (%d callbacks registered); "
            "adding it anyway",
            len(litellm.callbacks),
        )
        litellm.callbacks.append(callback)


def remove_callback(callback: object) -> None:
    """Take ``callback`` out of every LiteLLM callback list it was copied into."""
    manager = getattr(litellm, "logging_callback_manager", None)
    remove_all = getattr(manager, "remove_callback_from_all_lists", None)
    if callable(remove_all):
        remove_all(callback)
    for name in _CALLBACK_LISTS:
        entries = getattr(litellm, name, None)
        if isinstance(entries, list):
            entries[:] = [entry for entry in entries if entry is not callback]


def metadata_key(request_kwargs: Mapping[str, Any]) -> str:
    """Where LiteLLM keeps a request's metadata: ``litellm_metadata`` for some endpoints."""
    return "litellm_metadata" if "litellm_metadata" in request_kwargs else "metadata"


def call_families(
    messages: object, input: object, request_kwargs: Mapping[str, Any] | None
) -> frozenset[str]:
    """The kinds of deployment (see :func:`conduit_litellm.utils.mode_family`) that can serve a
    pick, read from what LiteLLM's router hands a custom strategy for each call type.

    LiteLLM passes no call type, only the call's arguments: ``file`` (transcription),
    ``voice`` (speech), ``query`` and ``documents`` (rerank), ``prompt`` (text completion or
    image generation: both pass it alone), ``input`` without messages (embedding or
    moderation), and ``messages`` for chat. Where two kinds are possible the caller narrows
    them by the requested group.

    >>> sorted(call_families(None, ["a"], {"input": ["a"]}))
    ['embedding', 'moderation']
    >>> sorted(call_families([{"role": "user", "content": "hi"}], None, {}))
    ['chat']
    """
    kwargs: Mapping[str, Any] = request_kwargs if isinstance(request_kwargs, Mapping) else {}
    if "file" in kwargs:
        return frozenset({"audio_transcription"})
    if "voice" in kwargs:
        return frozenset({"audio_speech"})
    if "documents" in kwargs and "query" in kwargs:
        return frozenset({"rerank"})
    if "prompt" in kwargs and "messages" not in kwargs:
        return frozenset({"chat", "image_generation"})
    if messages is None and (input is not None or "input" in kwargs):
        return frozenset({"embedding", "moderation"})
    return frozenset({"chat"})


def hidden_param(response: object, name: str) -> object:
    """A field of LiteLLM's ``response._hidden_params`` (a dict, or a HiddenParams object)."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, Mapping):
        return hidden.get(name)
    return getattr(hidden, name, None)


def logging_object(event_kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """LiteLLM's ``standard_logging_object`` of a logged event ({} where it has none)."""
    found = event_kwargs.get("standard_logging_object")
    return found if isinstance(found, Mapping) else {}


def plugin_signals(metadata: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """What routing plugin ``name`` returned as signals, as LiteLLM keeps them in the request
    metadata (``routing_plugin_signals``; {} where there are none)."""
    signals = metadata.get("routing_plugin_signals")
    found = signals.get(name) if isinstance(signals, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def proxy_router() -> Any:
    """The LiteLLM proxy's router, if this process is a proxy that has built one (None else)."""
    import sys

    proxy = sys.modules.get("litellm.proxy.proxy_server")
    return getattr(proxy, "llm_router", None) if proxy is not None else None


def simple_shuffle(
    router: Any,
    deployments: Sequence[dict[str, Any]],
    model: str,
    request_kwargs: Mapping[str, Any] | None,
    rng: random.Random,
) -> dict[str, Any]:
    """A deployment as LiteLLM's own ``simple-shuffle`` picks it.

    LiteLLM 1.110's takes a model-alias resolver and the request (it honours per-request
    ``_router_weights`` too); older releases take the router; where neither is found, the
    same rule by hand: weighted by ``weight``, else ``rpm``, else ``tpm``, else uniform.
    """
    listed = list(deployments)
    theirs: Any = None
    try:
        from litellm.router_strategy import simple_shuffle as module

        theirs = module.simple_shuffle
    except ImportError:  # pragma: no cover - every supported LiteLLM has the module
        pass
    params = list(inspect.signature(theirs).parameters) if callable(theirs) else []
    if params[:1] == ["resolve_model_alias"]:  # 1.110: the group name is already resolved
        return dict(theirs(lambda _name: None, listed, model, request_kwargs))
    if params[:1] == ["llm_router_instance"]:
        return dict(theirs(router, listed, model))
    for metric in ("weight", "rpm", "tpm"):
        weights = [
            float(w) if isinstance(w, (int, float)) and 0 < w < math.inf else 0.0
            for w in ((d.get("litellm_params") or {}).get(metric) for d in listed)
        ]
        if sum(weights) > 0:
            return rng.choices(listed, weights=weights)[0]
    return rng.choice(listed)


def mount_on_proxy(
    path: str, answer: Callable[[bytes], Awaitable[tuple[int, dict[str, Any]]]]
) -> bool:
    """Serve ``POST path`` on the LiteLLM proxy's own FastAPI app, behind the proxy's key auth
    (``user_api_key_auth``: the master key or a virtual key), if this process is a proxy.

    ``answer`` maps a request body to (status, JSON body). The route goes first in the
    app's routes, so none of the proxy's catch-all routes shadows it. Returns whether it was
    mounted (False outside a proxy, or when the route is there already).
    """
    import sys

    proxy = sys.modules.get("litellm.proxy.proxy_server")
    app = getattr(proxy, "app", None) if proxy is not None else None
    if app is None:
        return False
    if any(getattr(route, "path", None) == path for route in app.router.routes):
        return False
    from fastapi import Depends, Request
    from fastapi.responses import JSONResponse
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

    async def endpoint(request: Request) -> JSONResponse:
        status, body = await answer(await request.body())
        return JSONResponse(body, status_code=status)

    # FastAPI reads the annotations; under postponed evaluation they are strings naming
    # this function's local imports, which it cannot resolve: give it the classes.
    endpoint.__annotations__ = {"request": Request, "return": JSONResponse}

    app.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        dependencies=[Depends(user_api_key_auth)],
        include_in_schema=False,
    )
    app.router.routes.insert(0, app.router.routes.pop())
    logger.info("Conduit feedback endpoint mounted on the proxy: POST %s", path)
    return True
