"""Reading LiteLLM's deployments and requests: ids, prices, capabilities and query text.

These helpers accept either a ``litellm.Router`` or a plain model list, and read
a router through :mod:`conduit_litellm._compat` (``registry()`` where LiteLLM has
it, ``model_list`` before), so no deprecation warning is raised.

>>> model_list = [
...     {"model_name": "fast", "model_info": {"id": "mini"},
...      "litellm_params": {"model": "gpt-4o-mini"}},
...     {"model_name": "fast", "litellm_params": {"model": "gpt-4o", "api_base": "http://x"}},
... ]
>>> ids = extract_model_ids(model_list)
>>> ids[0], len(ids[1])
('mini', 16)
>>> ids == extract_model_ids(model_list)  # stable across calls and processes
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conduit import _validate
from conduit._errors import ConfigurationError
from conduit_litellm import _compat

__all__ = [
    "Capabilities",
    "RequestNeeds",
    "capabilities",
    "deployment_id",
    "deployment_mode",
    "deployment_model",
    "deployment_price",
    "extract_model_ids",
    "get_deployments",
    "mode_family",
    "model_group",
    "query_text",
    "request_needs",
]


def get_deployments(model_list_or_router: Any) -> list[dict[str, Any]]:
    """The deployments of a ``litellm.Router`` (any supported version) or of a model list."""
    if isinstance(model_list_or_router, Mapping):
        raise ConfigurationError("expected a litellm.Router or a list of deployments, got a dict")
    if isinstance(model_list_or_router, Iterable) and not isinstance(model_list_or_router, str):
        found = list(model_list_or_router)
    elif _compat.has_registry(model_list_or_router) or hasattr(model_list_or_router, "model_list"):
        found = _compat.deployments(model_list_or_router)
    else:
        raise ConfigurationError(
            "expected a litellm.Router or a list of deployments, "
            f"got {type(model_list_or_router).__name__}"
        )
    for index, item in enumerate(found):
        if not isinstance(item, Mapping) or not isinstance(item.get("litellm_params"), Mapping):
            # Named by position and keys, not shown: a deployment may hold an api_key.
            shape = sorted(map(str, item)) if isinstance(item, Mapping) else type(item).__name__
            raise ConfigurationError(
                f"deployment {index} is not a LiteLLM deployment (no litellm_params): {shape}"
            )
    return found


def deployment_id(deployment: Mapping[str, Any]) -> str:
    """``model_info.id`` where given, else a stable hash of model group, model and api_base.

    A ``litellm.Router`` gives every deployment an id, so the hash only names
    deployments of a plain list that has none.
    """
    info = deployment.get("model_info") or {}
    given = info.get("id") if isinstance(info, Mapping) else None
    if given is not None and str(given):
        return str(given)
    params = deployment.get("litellm_params") or {}
    key = json.dumps(
        [deployment.get("model_name"), params.get("model"), params.get("api_base")], default=str
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def extract_model_ids(model_list_or_router: Any) -> list[str]:
    """The id of every deployment, in model-list order: the names Conduit learns under."""
    return [deployment_id(d) for d in get_deployments(model_list_or_router)]


def deployment_model(deployment: Mapping[str, Any]) -> str:
    """The provider model LiteLLM calls (``litellm_params.model``)."""
    return str((deployment.get("litellm_params") or {}).get("model", ""))


def model_group(deployment: Mapping[str, Any]) -> str:
    return str(deployment.get("model_name", ""))


def _cost_map_entry(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """LiteLLM's cost-map entry for the deployment's model (or its ``base_model``), or None
    when LiteLLM does not know the model."""
    import litellm

    params = deployment.get("litellm_params") or {}
    info = deployment.get("model_info") or {}
    names = [info.get("base_model"), params.get("base_model"), params.get("model")]
    for name in names:
        if not isinstance(name, str) or not name:
            continue
        for key in (name, name.split("/", 1)[-1]):
            entry = litellm.model_cost.get(key)
            # A router registers an entry for a model it does not know, holding only the
            # deployment's model_info (all None in 1.110, the id in 1.74.9): not knowledge.
            if isinstance(entry, Mapping) and (
                entry.get("litellm_provider") is not None or entry.get("mode") is not None
            ):
                return dict(entry)
    return None


#: LiteLLM modes that answer the same calls: a chat request can go to any of them.
_CHAT_MODES = frozenset({"chat", "completion", "responses"})


def mode_family(mode: str | None) -> str | None:
    """The kind of call a LiteLLM ``mode`` serves: ``chat`` for chat/completion/responses,
    else the mode itself (``embedding``, ``image_generation``, ``audio_transcription``, ...).

    >>> mode_family("completion"), mode_family("embedding"), mode_family(None)
    ('chat', 'embedding', None)
    """
    if mode is None:
        return None
    return "chat" if mode in _CHAT_MODES else mode


def _mode_by_suffix(model: str) -> str | None:
    """The mode of every cost-map entry named ``<prefix>/<model>``, when they all agree.

    LiteLLM maps some models only under provider or size prefixes (``dall-e-3`` as
    ``azure/standard/1024-x-1024/dall-e-3``, ...): they still tell what the model does.
    """
    import litellm

    bare = model.split("/", 1)[-1]
    if not bare:
        return None
    tail = "/" + bare
    modes = {
        entry.get("mode")
        for key, entry in litellm.model_cost.items()
        if key.endswith(tail) and isinstance(entry, Mapping) and entry.get("mode") is not None
    }
    return str(modes.pop()) if len(modes) == 1 else None


def deployment_mode(deployment: Mapping[str, Any]) -> str | None:
    """LiteLLM's ``mode`` of the deployment (``chat``, ``embedding``, ``image_generation``,
    ``audio_transcription``, ``audio_speech``, ``rerank``, ``moderation``, ...): its own
    ``model_info.mode``, else the cost map's; None when neither says.

    >>> deployment_mode({"litellm_params": {"model": "openai/text-embedding-3-small"}})
    'embedding'
    >>> deployment_mode({"litellm_params": {"model": "openai/dall-e-3"}})
    'image_generation'
    >>> deployment_mode({"litellm_params": {"model": "my/own"}, "model_info": {"mode": "rerank"}})
    'rerank'
    """
    info = deployment.get("model_info") or {}
    own = info.get("mode") if isinstance(info, Mapping) else None
    if isinstance(own, str) and own:
        return own
    entry = _cost_map_entry(deployment)
    if entry is not None:
        mode = entry.get("mode")
        return mode if isinstance(mode, str) and mode else None
    return _mode_by_suffix(deployment_model(deployment))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a deployment accepts, as LiteLLM's ``supports_*`` helpers read it: a model LiteLLM
    knows without the flag does not support it (False); None only for a model LiteLLM does
    not know at all and whose ``model_info`` does not say."""

    max_input_tokens: int | None
    function_calling: bool | None
    vision: bool | None
    response_schema: bool | None
    mode: str | None = None


def capabilities(deployment: Mapping[str, Any]) -> Capabilities:
    """The deployment's limits: its own ``model_info`` first, then LiteLLM's cost map."""
    entry = _cost_map_entry(deployment)
    known = entry is not None
    merged = dict(entry or {})
    own = deployment.get("model_info") or {}
    merged.update({k: v for k, v in own.items() if v is not None})
    limit = merged.get("max_input_tokens") or merged.get("max_tokens")

    def flag(name: str) -> bool | None:
        value = merged.get(name)
        if isinstance(value, bool):
            return value
        return False if known else None

    return Capabilities(
        max_input_tokens=int(limit) if _validate.is_number(limit) and limit > 0 else None,
        function_calling=flag("supports_function_calling"),
        vision=flag("supports_vision"),
        response_schema=flag("supports_response_schema"),
        mode=deployment_mode(deployment),
    )


def deployment_price(deployment: Mapping[str, Any]) -> tuple[float, float] | None:
    """USD per (input, output) token: ``litellm_params`` overrides, else the cost map."""
    params = deployment.get("litellm_params") or {}
    entry = _cost_map_entry(deployment) or {}
    prices = []
    for key in ("input_cost_per_token", "output_cost_per_token"):
        value = params.get(key, entry.get(key))
        if not _validate.is_number(value) or value < 0:
            return None
        prices.append(float(value))
    return prices[0], prices[1]


def _content_text(content: object) -> tuple[str, bool]:
    """The text of one message's content and whether it carries an image."""
    if isinstance(content, str):
        return content, False
    texts: list[str] = []
    image = False
    if isinstance(content, Sequence):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind in ("text", "input_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("image_url", "input_image", "image"):
                image = True
    return "\n".join(texts), image


def _messages(messages: object) -> list[Mapping[str, Any]]:
    """The well-formed messages of a request: a list of dicts, anything else dropped.

    LiteLLM rejects a malformed request itself; routing it must not fail first.
    """
    if not isinstance(messages, (list, tuple)):
        return []
    return [m for m in messages if isinstance(m, Mapping)]


def query_text(messages: object, input: object = None) -> str:
    """What Conduit routes on: the last user message (the question), else any text at all.

    Malformed messages (not a list, items that are not dicts, content of an
    unknown shape) are skipped; with no text at all it is ``"(no text)"``.

    >>> query_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    'Hi'
    >>> query_text(None, input=["a", "b"])
    'a\\nb'
    >>> query_text("not a list of messages")
    '(no text)'
    """
    listed = _messages(messages)
    for message in reversed(listed):
        if message.get("role") == "user":
            text, _ = _content_text(message.get("content"))
            if text.strip():
                return text
    for message in reversed(listed):
        text, _ = _content_text(message.get("content"))
        if text.strip():
            return text
    if isinstance(input, str) and input.strip():
        return input
    if isinstance(input, Sequence):
        joined = "\n".join(item for item in input if isinstance(item, str))
        if joined.strip():
            return joined
    return "(no text)"


@dataclass(frozen=True, slots=True)
class RequestNeeds:
    """What a request needs from a deployment."""

    chars: int
    tools: bool
    images: bool
    response_schema: bool


def request_needs(messages: object, request_kwargs: Mapping[str, Any] | None) -> RequestNeeds:
    """Tools, images and structured output asked for, and the prompt's size in characters."""
    kwargs = request_kwargs if isinstance(request_kwargs, Mapping) else {}
    chars = 0
    images = False
    for message in _messages(messages):
        text, image = _content_text(message.get("content"))
        chars += len(text)
        images = images or image
    response_format = kwargs.get("response_format")
    schema = isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_schema",
        "json_object",
    )
    if isinstance(response_format, type):  # a pydantic model class
        schema = True
    return RequestNeeds(
        chars=chars,
        tools=bool(kwargs.get("tools") or kwargs.get("functions")),
        images=images,
        response_schema=schema,
    )
