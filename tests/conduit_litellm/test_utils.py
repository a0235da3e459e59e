"""Model-list helpers, and the version-compatibility layer on both of LiteLLM's router APIs."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

from conduit import ConfigurationError
from conduit_litellm import _compat
from conduit_litellm.utils import (
    capabilities,
    deployment_id,
    deployment_price,
    extract_model_ids,
    get_deployments,
    query_text,
    request_needs,
)

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")


@pytest.fixture(autouse=True)
def restore_callbacks() -> Iterator[None]:
    """Routers of LiteLLM < 1.110 add callbacks per instance and never remove them; past 30,
    LiteLLM refuses more. Put every callback list back as it was after each test."""
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries


MODEL_LIST = [
    {
        "model_name": "fast",
        "model_info": {"id": "mini"},
        "litellm_params": {"model": "gpt-4o-mini"},
    },
    {"model_name": "fast", "litellm_params": {"model": "gpt-4o", "api_base": "http://a"}},
    {"model_name": "fast", "litellm_params": {"model": "gpt-4o", "api_base": "http://b"}},
]


@pytest.fixture(autouse=True)
def restore_cost_map() -> Iterator[None]:
    saved = copy.deepcopy(litellm.model_cost)
    yield
    litellm.model_cost.clear()
    litellm.model_cost.update(saved)


def test_extract_model_ids_from_a_list() -> None:
    ids = extract_model_ids(MODEL_LIST)
    assert ids[0] == "mini"
    assert len(set(ids)) == 3  # api_base tells the two gpt-4o deployments apart
    assert ids == extract_model_ids(copy.deepcopy(MODEL_LIST))


def test_extract_model_ids_from_a_router_without_deprecation_warnings() -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = extract_model_ids(router)
    assert ids[0] == "mini"
    assert len(set(ids)) == 3
    assert ids == [d["model_info"]["id"] for d in get_deployments(router)]


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ({"model_name": "x"}, "got a dict"),
        (42, "got int"),
        ([{"model_name": "x"}], "no litellm_params"),
    ],
)
def test_get_deployments_rejects(value: Any, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        get_deployments(value)


def test_deployment_id_prefers_model_info_id() -> None:
    assert deployment_id({"model_info": {"id": 7}, "litellm_params": {"model": "m"}}) == "7"
    plain = {"model_name": "g", "litellm_params": {"model": "m"}}
    assert (
        deployment_id(plain)
        == deployment_id(dict(plain))
        != deployment_id(
            {"model_name": "g", "litellm_params": {"model": "m", "api_base": "http://x"}}
        )
    )


def test_prices_from_cost_map_and_overrides() -> None:
    assert deployment_price({"litellm_params": {"model": "gpt-4o-mini"}}) == (1.5e-07, 6e-07)
    assert deployment_price({"litellm_params": {"model": "openai/gpt-4o-mini"}}) == (1.5e-07, 6e-07)
    override = {"litellm_params": {"model": "gpt-4o-mini", "input_cost_per_token": 1e-6}}
    assert deployment_price(override) == (1e-6, 6e-07)
    assert deployment_price({"litellm_params": {"model": "openai/unknown-model"}}) is None
    based = {
        "litellm_params": {"model": "azure/my-deployment"},
        "model_info": {"base_model": "gpt-4o-mini"},
    }
    assert deployment_price(based) == (1.5e-07, 6e-07)


def test_capabilities_from_cost_map_and_model_info() -> None:
    mini = capabilities({"litellm_params": {"model": "gpt-4o-mini"}})
    assert (mini.max_input_tokens, mini.function_calling, mini.vision) == (128000, True, True)
    own = capabilities(
        {"litellm_params": {"model": "gpt-4o-mini"}, "model_info": {"supports_vision": False}}
    )
    assert own.vision is False
    unknown = capabilities({"litellm_params": {"model": "openai/unknown-model"}})
    assert unknown == type(unknown)(None, None, None, None)


@pytest.mark.parametrize(
    ("messages", "input", "expected"),
    [
        (
            [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "second"},
            ],
            None,
            "second",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "look"}, {"type": "image_url"}],
                }
            ],
            None,
            "look",
        ),
        ([{"role": "system", "content": "only system"}], None, "only system"),
        (None, "embed me", "embed me"),
        ([], [1, 2], "(no text)"),
    ],
)
def test_query_text(messages: Any, input: Any, expected: str) -> None:
    assert query_text(messages, input) == expected


def test_request_needs() -> None:
    needs = request_needs(
        [{"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]}],
        {"tools": [{"type": "function"}], "response_format": {"type": "json_schema"}},
    )
    assert (needs.chars, needs.tools, needs.images, needs.response_schema) == (4, True, True, True)
    assert request_needs(None, None) == type(needs)(0, False, False, False)


# -- the compatibility layer: the new router API, and the old one by feature detection ------------
class OldRouter:
    """The members LiteLLM < 1.110 routers have (model_list, set_custom_routing_strategy, ...)."""

    def __init__(self, model_list: list[dict[str, Any]]) -> None:
        self.model_list = model_list
        real = litellm.Router(model_list=copy.deepcopy(model_list))
        self.cooldown_cache = (
            real.health().cooldowns if _compat.has_registry(real) else real.cooldown_cache
        )

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.model_list if model_name in (None, d["model_name"])]

    def set_custom_routing_strategy(self, strategy: Any) -> None:
        self.get_available_deployment = strategy.get_available_deployment
        self.async_get_available_deployment = strategy.async_get_available_deployment

    def get_available_deployment(self, model: str, **kwargs: Any) -> str:
        return "own pick"


class Strategy:
    def get_available_deployment(self, model: str, **kwargs: Any) -> str:
        return "strategy pick"

    async def async_get_available_deployment(self, model: str, **kwargs: Any) -> str:
        return "strategy pick"


def test_old_router_path() -> None:
    listed = [{"model_name": "g", "model_info": {"id": "x"}, "litellm_params": {"model": "gpt-4o"}}]
    router = OldRouter(listed)
    assert not _compat.has_registry(router)
    assert _compat.deployments(router) == listed
    assert _compat.registry_version(router) is None
    assert _compat.group_deployments(router, "g") == listed
    assert _compat.group_deployments(router, "h") == []
    strategy = Strategy()
    assert _compat.register_strategy(router, strategy) == "set_custom_routing_strategy"
    assert router.get_available_deployment("g") == "strategy pick"
    assert _compat.unregister_strategy(router, Strategy()) is False  # not the registered one
    assert _compat.unregister_strategy(router, strategy) is True
    assert router.get_available_deployment("g") == "own pick"
    router.cooldown_cache.add_deployment_to_cooldown("x", Exception("429"), 429, 60)
    assert _compat.active_cooldowns(router, ["x", "y"]) == {"x"}


async def test_new_router_path() -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST))
    if not _compat.has_registry(router):
        pytest.skip("this LiteLLM has only the old router API (tested above)")
    version = _compat.registry_version(router)
    assert isinstance(version, int)
    assert [d["model_info"]["id"] for d in _compat.deployments(router)] == extract_model_ids(router)
    assert len(_compat.group_deployments(router, "fast")) == 3
    assert _compat.group_deployments(router, "nope") == []
    strategy = Strategy()
    assert _compat.register_strategy(router, strategy) == "register_plugin"
    assert _compat.unregister_strategy(router, Strategy()) is False
    assert _compat.unregister_strategy(router, strategy) is True
    ids = extract_model_ids(router)
    router.health().cooldowns.add_deployment_to_cooldown(ids[1], Exception("429"), 429, 60)
    assert _compat.active_cooldowns(router, ids) == {ids[1]}
    assert await _compat.async_active_cooldowns(router, ids) == {ids[1]}


def test_remove_callback_from_every_list() -> None:
    marker = object()
    for name in ("callbacks", "success_callback", "_async_failure_callback"):
        getattr(litellm, name).append(marker)
    _compat.remove_callback(marker)
    assert not any(marker in getattr(litellm, name) for name in _compat._CALLBACK_LISTS)


@pytest.mark.parametrize(
    ("request_kwargs", "key"),
    [
        ({}, "metadata"),
        ({"metadata": {}}, "metadata"),
        ({"litellm_metadata": {}}, "litellm_metadata"),
    ],
)
def test_metadata_key(request_kwargs: dict[str, Any], key: str) -> None:
    assert _compat.metadata_key(request_kwargs) == key


def test_public_names_are_exported() -> None:
    import conduit_litellm

    assert conduit_litellm.__all__ == sorted(conduit_litellm.__all__)
    assert all(hasattr(conduit_litellm, name) for name in conduit_litellm.__all__)
    from conduit_litellm.utils import extract_model_ids as guide_path  # the usage guide's import

    assert guide_path is conduit_litellm.extract_model_ids
