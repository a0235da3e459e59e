"""Routing never picks a deployment that cannot serve the call: its kind, capabilities, scope."""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import litellm
import pytest

from conduit import ConfigurationError
from conduit_litellm import ConduitRoutingStrategy
from conduit_litellm.utils import capabilities, deployment_mode

pytestmark = [
    pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning"),
    pytest.mark.usefixtures("restore_litellm"),
]


def deployment(group: str, model: str, id: str, reply: Any = "Paris.") -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "mock_response": reply, "api_key": "sk-test"},
        "model_info": {"id": id},
    }


# The issue's model list: two chat deployments and three of other kinds, one group each.
MIXED = [
    deployment("chat", "openai/gpt-4o-mini", "mini"),
    deployment("chat", "openai/gpt-4o", "4o"),
    deployment("embed", "openai/text-embedding-3-small", "embedding"),
    deployment("img", "openai/dall-e-3", "dalle"),
    deployment("whisper", "openai/whisper-1", "whisper"),
]
CHAT = {"mini", "4o"}


@pytest.fixture
def strategies() -> Iterator[list[ConduitRoutingStrategy]]:
    made: list[ConduitRoutingStrategy] = []
    yield made
    for strategy in made:
        strategy.cleanup()


def attach(
    made: list[ConduitRoutingStrategy], model_list: list[dict[str, Any]], **kwargs: Any
) -> tuple[Any, ConduitRoutingStrategy]:
    router = litellm.Router(model_list=copy.deepcopy(model_list), num_retries=0)
    kwargs.setdefault("bandit_algorithm", "random")
    strategy = ConduitRoutingStrategy(embedding_backend="hashing", seed=0, **kwargs)
    ConduitRoutingStrategy.setup_strategy(router, strategy)
    made.append(strategy)
    return router, strategy


def test_modes_come_from_model_info_and_the_cost_map() -> None:
    modes = {d["model_info"]["id"]: deployment_mode(d) for d in MIXED}
    assert modes == {
        "mini": "chat",
        "4o": "chat",
        "embedding": "embedding",
        "dalle": "image_generation",  # mapped only under size prefixes; they agree
        "whisper": "audio_transcription",
    }


async def test_every_chat_call_lands_on_a_chat_deployment(
    strategies: list[ConduitRoutingStrategy],
) -> None:
    router, strategy = attach(strategies, MIXED)
    served: Counter[str] = Counter()
    for i in range(60):
        response = await router.acompletion(
            model="chat", messages=[{"role": "user", "content": f"question {i}"}]
        )
        served[response._hidden_params["model_id"]] += 1
    assert set(served) <= CHAT and sum(served.values()) == 60
    assert len(served) == 2  # both chat deployments compete (scope "all")
    assert strategy.stats()["fallbacks"] == 0


async def test_embedding_calls_route_among_embedding_deployments(
    strategies: list[ConduitRoutingStrategy],
) -> None:
    second = deployment("embed-b", "openai/text-embedding-3-large", "embedding-large")
    _, strategy = attach(strategies, [*MIXED, second])
    picks = {
        (
            await strategy.async_get_available_deployment(
                "embed", input=["x"], request_kwargs={"input": ["x"], "metadata": {}}
            )
        )["model_info"]["id"]
        for _ in range(30)
    }
    assert picks == {"embedding", "embedding-large"}


@pytest.mark.parametrize(
    ("group", "kwargs", "expected"),
    [
        ("img", {"prompt": "a cat"}, {"dalle"}),
        ("chat", {"prompt": "Say hi"}, CHAT),  # text completion: chat deployments only
        ("whisper", {"file": b"RIFF"}, {"whisper"}),
    ],
)
async def test_other_call_types_stay_with_their_kind(
    strategies: list[ConduitRoutingStrategy], group: str, kwargs: dict[str, Any], expected: set[str]
) -> None:
    _, strategy = attach(strategies, MIXED)
    messages = [{"role": "user", "content": "x"}]
    picks = {
        (
            await strategy.async_get_available_deployment(
                group, messages, request_kwargs={**kwargs, "metadata": {}}
            )
        )["model_info"]["id"]
        for _ in range(30)
    }
    assert picks <= expected and picks


def test_a_chat_call_to_a_group_that_cannot_chat_is_refused(
    strategies: list[ConduitRoutingStrategy],
) -> None:
    _, strategy = attach(strategies, MIXED, scope="group")
    with pytest.raises(litellm.BadRequestError, match="no deployment for 'embed' serves a chat"):
        strategy.get_available_deployment(
            "embed", [{"role": "user", "content": "hi"}], request_kwargs={}
        )


def test_known_model_without_a_flag_does_not_support_it() -> None:
    turbo = capabilities({"litellm_params": {"model": "gpt-3.5-turbo"}})
    assert litellm.supports_vision("gpt-3.5-turbo") is False
    assert turbo.vision is False and turbo.response_schema is False
    unknown = capabilities({"litellm_params": {"model": "my-lab/never-heard-of-it"}})
    assert (unknown.vision, unknown.function_calling, unknown.mode) == (None, None, None)
    said = capabilities(
        {"litellm_params": {"model": "my-lab/x"}, "model_info": {"supports_vision": True}}
    )
    assert said.vision is True


IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]


async def test_an_image_request_never_goes_to_gpt_35_turbo(
    strategies: list[ConduitRoutingStrategy],
) -> None:
    model_list = [
        deployment("big", "openai/gpt-4o", "4o"),
        deployment("big", "openai/gpt-4-0613", "gpt4"),
        deployment("small", "openai/gpt-3.5-turbo", "turbo"),
    ]
    router, _ = attach(strategies, model_list)  # scope "all"
    served = set()
    for _ in range(20):
        response = await router.acompletion(model="big", messages=IMAGE)
        served.add(response._hidden_params["model_id"])
    assert served == {"4o"}


SCOPED = [
    deployment("a", "openai/gpt-4o-mini", "a1"),
    deployment("b", "openai/gpt-4o", "b1"),
    deployment("c", "openai/gpt-3.5-turbo", "c1"),
    deployment("c", "openai/gpt-4-turbo", "c2"),
]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("all", {"a": {"a1", "b1", "c1", "c2"}, "c": {"a1", "b1", "c1", "c2"}}),
        ("group", {"a": {"a1"}, "c": {"c1", "c2"}}),
        (["a", "b"], {"a": {"a1", "b1"}, "b": {"a1", "b1"}, "c": {"c1", "c2"}}),
    ],
)
async def test_scope_decides_who_competes(
    strategies: list[ConduitRoutingStrategy], scope: Any, expected: dict[str, set[str]]
) -> None:
    _, strategy = attach(strategies, SCOPED, scope=scope)
    for group, ids in expected.items():
        picks = {
            (
                await strategy.async_get_available_deployment(
                    group, [{"role": "user", "content": "hi"}], request_kwargs={"metadata": {}}
                )
            )["model_info"]["id"]
            for _ in range(40)
        }
        assert picks == ids, group
        assert set(strategy.competitors()[group]) == ids


def test_setup_says_once_who_competes_for_what(
    strategies: list[ConduitRoutingStrategy], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="conduit_litellm"):
        attach(strategies, MIXED)
    lines = [r.getMessage() for r in caplog.records if "scope=" in r.getMessage()]
    assert len(lines) == 1
    assert "'chat' <- mini, 4o" not in lines[0]  # the chat group competes only with itself
    with caplog.at_level(logging.INFO, logger="conduit_litellm"):
        attach(strategies, SCOPED)
    line = [r.getMessage() for r in caplog.records if "scope=" in r.getMessage()][-1]
    assert "'c' <- a1, b1, c1, c2" in line


@pytest.mark.parametrize(
    ("scope", "pattern"),
    [
        ("everything", "scope must be 'all', 'group' or a non-empty list"),
        ([], "scope must be 'all', 'group' or a non-empty list"),
        (["a", 3], "scope lists model group names"),
    ],
)
def test_invalid_scope_is_refused_at_construction(scope: Any, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        ConduitRoutingStrategy(scope=scope)


def test_a_scope_group_the_router_lacks_fails_setup(
    strategies: list[ConduitRoutingStrategy],
) -> None:
    with pytest.raises(ConfigurationError, match=r"does not have: \['nope'\]"):
        attach(strategies, SCOPED, scope=["a", "nope"])
