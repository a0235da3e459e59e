"""ConduitModel over PydanticAI FunctionModels: learning, retries, failover, streaming, tools."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.exceptions import FallbackExceptionGroup, UnexpectedModelBehavior
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

import conduit.pydantic_ai
from conduit._errors import (
    ConfigurationError,
    DuplicateModelError,
    InvalidFeedbackError,
    UnknownDecisionError,
)
from conduit.engines.router import Router
from conduit.pydantic_ai import ConduitModel, decision_ids, record_feedback

RouterFactory = Callable[..., Router]


def served(messages: list[ModelMessage]) -> list[str]:
    """The model Conduit chose for each response of a run, in order."""
    return [
        m.metadata["conduit"]["model"]
        for m in messages
        if isinstance(m, ModelResponse) and m.metadata
    ]


def test_public_names_are_complete() -> None:
    assert conduit.pydantic_ai.__all__ == ["ConduitModel", "decision_ids", "record_feedback"]
    assert sorted(conduit.pydantic_ai.__all__) == conduit.pydantic_ai.__all__


async def test_learning_shifts_traffic_to_the_model_whose_output_validates(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("valid", "flaky", "broken")
    model = ConduitModel(
        {"valid": kit.valid(), "flaky": kit.flaky(), "broken": kit.broken()}, router=router
    )
    agent = Agent(model, output_type=kit.Invoice, retries=3)
    early: Counter[str] = Counter()
    late: Counter[str] = Counter()
    for i in range(120):
        result = await agent.run(f"Invoice {i} for {i % 7} widgets")
        assert result.output == kit.Invoice(**kit.VALID)
        (early if i < 30 else late).update(served(result.new_messages()))

    stats = router.stats().models
    assert early["flaky"] >= 1 and stats["broken"].decisions >= 1  # each was tried
    # and, once learned, the valid model answers (nearly) everything
    assert late["valid"] / late.total() > max(0.9, early["valid"] / early.total())
    assert stats["valid"].mean_quality == 1.0
    assert stats["broken"].mean_quality == 0.0
    assert stats["flaky"].mean_quality is not None and stats["flaky"].mean_quality < 1.0


async def test_a_validation_retry_is_low_quality_for_the_model_that_caused_it(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("invalid", "valid", algorithm="ucb1")
    model = ConduitModel({"invalid": kit.invalid(), "valid": kit.valid()}, router=router)
    agent = Agent(model, output_type=kit.Invoice, retries=3)
    chains = [served((await agent.run(f"Invoice {i}")).new_messages()) for i in range(4)]

    assert any(chain[:1] == ["invalid"] for chain in chains)  # the bad model answered first once
    assert all(chain[-1] == "valid" for chain in chains)  # and every run ended on the good one
    stats = router.stats().models
    pulls = Counter(name for chain in chains for name in chain)
    assert (stats["invalid"].feedback, stats["invalid"].mean_quality) == (pulls["invalid"], 0.0)
    assert (stats["valid"].feedback, stats["valid"].mean_quality) == (pulls["valid"], 1.0)


async def test_a_retry_from_an_output_validator_is_learned_too(
    router_factory: RouterFactory,
) -> None:
    router = router_factory("shouty", "calm", algorithm="ucb1")

    def text(words: str) -> FunctionModel:
        return FunctionModel(lambda m, i: ModelResponse(parts=[TextPart(words)]), model_name=words)

    model = ConduitModel({"shouty": text("HELLO!!!"), "calm": text("hello")}, router=router)
    agent = Agent(model, retries=3)

    @agent.output_validator
    def no_shouting(output: str) -> str:
        if output.isupper():
            raise ModelRetry("do not shout")
        return output

    results = [(await agent.run(f"Greet user {i}")) for i in range(3)]
    assert {r.output for r in results} == {"hello"}
    retried = [
        m
        for r in results
        for m in r.new_messages()
        if isinstance(m, ModelRequest) and any(isinstance(p, RetryFeedbackPart) for p in m.parts)
    ]
    assert retried  # the validator did reject the shouting model at least once
    stats = router.stats().models
    assert stats["shouty"].mean_quality == 0.0 and stats["calm"].mean_quality == 1.0


async def test_a_run_the_agent_gives_up_on_is_learned_as_low_quality(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("invalid")
    agent = Agent(
        ConduitModel({"invalid": kit.invalid()}, router=router), output_type=kit.Invoice, retries=1
    )
    with pytest.raises(UnexpectedModelBehavior):
        (await agent.run("Invoice 1"))
    stats = router.stats().models["invalid"]
    assert (stats.decisions, stats.feedback, stats.mean_quality) == (2, 2, 0.0)


async def test_costs_and_latencies_are_recorded(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("valid")
    model = ConduitModel({"valid": kit.valid()}, router=router, prices={"valid": (1e-6, 2e-6)})
    result = await Agent(model, output_type=kit.Invoice).run("Invoice 7")
    (response,) = [m for m in result.new_messages() if isinstance(m, ModelResponse)]
    expected = response.usage.input_tokens * 1e-6 + response.usage.output_tokens * 2e-6
    stats = router.stats()
    assert response.usage.input_tokens > 0
    assert stats.models["valid"].mean_cost == pytest.approx(expected)
    assert stats.total_cost == pytest.approx(expected)
    latency = stats.models["valid"].mean_latency
    assert latency is not None and latency > 0 and math.isfinite(latency)


async def test_without_a_price_the_cost_comes_from_genai_prices(
    router_factory: RouterFactory,
) -> None:
    router = router_factory("openai:gpt-4o-mini")

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("4")], provider_name="openai")

    wrapped = FunctionModel(answer, model_name="gpt-4o-mini")
    model = ConduitModel({"openai:gpt-4o-mini": wrapped}, router=router)
    result = await Agent(model).run("What is 2 + 2?")
    (response,) = [m for m in result.new_messages() if isinstance(m, ModelResponse)]
    assert router.stats().total_cost == pytest.approx(float(response.cost().total_price))
    assert router.stats().total_cost > 0


async def test_a_provider_error_fails_over_to_the_next_best_model(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("broken", "valid", algorithm="ucb1")
    model = ConduitModel({"broken": kit.broken(), "valid": kit.valid()}, router=router)
    agent = Agent(model, output_type=kit.Invoice)
    for i in range(5):
        assert (await agent.run(f"Invoice {i}")).output == kit.Invoice(**kit.VALID)
    stats = router.stats().models
    assert stats["broken"].decisions >= 1
    broken = stats["broken"]
    assert (broken.feedback, broken.mean_quality) == (broken.decisions, 0.0)
    assert stats["broken"].mean_latency is not None  # each failed attempt learned from
    assert stats["valid"].decisions == 5


async def test_when_every_model_fails_the_errors_come_back_together(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("a", "b")
    model = ConduitModel({"a": kit.broken("a"), "b": kit.broken("b", status=429)}, router=router)
    with pytest.raises(FallbackExceptionGroup) as caught:
        (await Agent(model).run("Hi"))
    assert sorted(e.status_code for e in caught.value.exceptions) == [429, 500]
    assert {n: s.mean_quality for n, s in router.stats().models.items()} == {"a": 0.0, "b": 0.0}


async def test_an_error_outside_fallback_on_is_raised_at_once(
    router_factory: RouterFactory,
) -> None:
    router = router_factory("bug", "fine", algorithm="ucb1")

    def bug(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise KeyError("a bug, not an outage")

    model = ConduitModel({"bug": FunctionModel(bug), "fine": TestModel()}, router=router)
    agent = Agent(model)
    outcomes = []
    for i in range(2):  # UCB1 tries each model once: one of the two runs hits the bug
        try:
            (await agent.run(f"Hi {i}"))
            outcomes.append("ok")
        except KeyError:
            outcomes.append("bug")
    assert sorted(outcomes) == ["bug", "ok"]
    stats = router.stats().models["bug"]
    assert (stats.decisions, stats.feedback) == (1, 0)  # not the model's quality: not learned


async def test_streaming_routes_learns_and_fails_over(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("broken", "valid", algorithm="ucb1")
    model = ConduitModel(
        {"broken": kit.broken(), "valid": kit.valid()},
        router=router,
        prices={"valid": (1e-6, 1e-6)},
    )
    agent = Agent(model, output_type=kit.Invoice)
    for i in range(3):
        async with agent.run_stream(f"Invoice {i}") as run:
            assert await run.get_output() == kit.Invoice(**kit.VALID)
        assert served(run.new_messages()) == ["valid"]
    stats = router.stats().models
    assert stats["broken"].decisions >= 1
    broken = stats["broken"]
    assert (broken.feedback, broken.mean_quality) == (broken.decisions, 0.0)
    assert stats["valid"].decisions == 3 and stats["valid"].mean_quality == 1.0
    assert stats["valid"].mean_cost is not None and stats["valid"].mean_cost > 0


async def test_streaming_text(kit: SimpleNamespace, router_factory: RouterFactory) -> None:
    router = router_factory("valid")
    agent = Agent(ConduitModel({"valid": kit.valid()}, router=router))
    async with agent.run_stream("Say hello") as run:
        chunks = [chunk async for chunk in run.stream_text(delta=True)]
    assert "".join(chunks).strip() == "valid says hello"
    assert router.stats().models["valid"].feedback == 1


async def test_tools_work_and_each_step_is_a_decision(router_factory: RouterFactory) -> None:
    router = router_factory("m")

    def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [
            p
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("add", {"a": 2, "b": 3})])
        return ModelResponse(parts=[TextPart(f"the sum is {returns[-1].content}")])

    agent = Agent(ConduitModel({"m": FunctionModel(plan)}, router=router))

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        return a + b

    result = await agent.run("What is 2 + 3?")
    assert result.output == "the sum is 5"
    ids = decision_ids(result)
    assert len(ids) == 2 and len(set(ids)) == 2
    stats = router.stats().models["m"]
    assert (stats.decisions, stats.feedback, stats.mean_quality) == (2, 2, 1.0)


async def test_tool_arguments_that_fail_validation_are_learned_as_low_quality(
    router_factory: RouterFactory,
) -> None:
    router = router_factory("sloppy", "careful", algorithm="ucb1")

    def sloppy(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("add", {"a": "two", "b": 3})])

    def careful(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) and p.outcome == "success" for p in last.parts
        ):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("add", {"a": 2, "b": 3})])

    model = ConduitModel(
        {"sloppy": FunctionModel(sloppy), "careful": FunctionModel(careful)}, router=router
    )
    agent = Agent(model, retries=3)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        return a + b

    for i in range(3):
        assert (await agent.run(f"Add {i}")).output == "done"
    stats = router.stats().models
    assert stats["sloppy"].decisions >= 1 and stats["sloppy"].mean_quality == 0.0
    assert stats["careful"].mean_quality == 1.0


async def test_a_tools_own_model_retry_is_not_held_against_the_model(
    router_factory: RouterFactory,
) -> None:
    router = router_factory("m")
    attempts = iter([True, False])

    def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) and p.outcome == "success" for p in last.parts
        ):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("lookup", {"key": "x"})])

    agent = Agent(ConduitModel({"m": FunctionModel(plan)}, router=router), retries=3)

    @agent.tool_plain
    def lookup(key: str) -> str:
        if next(attempts):
            raise ModelRetry("the database is busy, try again")
        return "found"

    assert (await agent.run("Look up x")).output == "done"
    stats = router.stats().models["m"]
    assert (stats.decisions, stats.mean_quality) == (3, 1.0)


async def test_record_feedback_teaches_the_decisions_of_that_run_only(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("valid")
    model = ConduitModel({"valid": kit.valid()}, router=router, success_quality=None)
    agent = Agent(model, output_type=kit.Invoice)
    first, second = (await agent.run("Invoice 1")), (await agent.run("Invoice 2"))
    assert router.stats().total_feedback == 0  # nothing judged without success_quality

    assert record_feedback(first, quality=0.25) == 1
    assert record_feedback(first, quality=1.0) == 0  # already learned: not counted twice
    stats = router.stats().models["valid"]
    assert (stats.feedback, stats.mean_quality) == (1, 0.25)
    assert model.record_feedback(second, quality=0.75) == 1
    assert router.stats().models["valid"].mean_quality == pytest.approx(0.5)
    assert router.explain(decision_ids(second)[0]).selected_model == "valid"


@pytest.mark.parametrize("quality", [-0.1, 1.5, float("nan"), "good", True])
async def test_record_feedback_refuses_bad_quality_and_changes_nothing(
    kit: SimpleNamespace, router_factory: RouterFactory, quality: object
) -> None:
    router = router_factory("valid")
    model = ConduitModel({"valid": kit.valid()}, router=router, success_quality=None)
    result = await Agent(model, output_type=kit.Invoice).run("Invoice 1")
    with pytest.raises(InvalidFeedbackError):
        record_feedback(result, quality=quality)  # type: ignore[arg-type]
    assert router.stats().total_feedback == 0


async def test_record_feedback_needs_a_run_conduit_routed() -> None:
    result = await Agent(TestModel()).run("Hi")
    with pytest.raises(UnknownDecisionError, match="routed by a live ConduitModel"):
        record_feedback(result, quality=1.0)
    with pytest.raises(UnknownDecisionError, match="agent run result"):
        record_feedback(object(), quality=1.0)  # type: ignore[arg-type]


async def test_from_router_is_one_line_and_shares_the_router(router_factory: RouterFactory) -> None:
    router = router_factory("a", "b")
    model = ConduitModel.from_router(
        router, {"a": TestModel(), "b": TestModel()}, preferences="cost"
    )
    assert model.router is router and model.names == ("a", "b")
    (await Agent(model).run("Hi"))
    assert router.stats().total_decisions == 1
    assert model.model_name == "conduit:a,b" and model.system == "conduit"


def test_model_names_default_to_each_models_id() -> None:
    model = ConduitModel(
        [TestModel(), FunctionModel(lambda m, i: ModelResponse(parts=[]), model_name="f")]
    )
    assert model.names == ("test:test", "function:f")
    assert model.router.models == ("test:test", "function:f")
    model.router.close()


BAD = [
    ({"models": []}, ConfigurationError, "models is empty"),
    ({"models": "test"}, ConfigurationError, "must be a list"),
    ({"models": [TestModel(), TestModel()]}, DuplicateModelError, "listed twice"),
    ({"models": {"a": 3}}, ConfigurationError, "expected a PydanticAI Model"),
    ({"models": {"": TestModel()}}, ConfigurationError, "non-empty str"),
    ({"models": ["nosuchprovider:x"]}, ConfigurationError, "cannot build model"),
    ({"router": "r"}, ConfigurationError, "must be a conduit Router"),
    ({"preferences": "fastest"}, ConfigurationError, "unknown preference"),
    ({"prices": {"b": (1e-6, 1e-6)}}, ConfigurationError, "not among the models"),
    ({"prices": {"a": (-1, 0)}}, ConfigurationError, "finite and >= 0"),
    ({"success_quality": 2.0}, ConfigurationError, "success_quality"),
    ({"retry_quality": None}, ConfigurationError, "retry_quality"),
    ({"error_quality": float("nan")}, ConfigurationError, "error_quality"),
    ({"fallback_on": [ValueError]}, ConfigurationError, "tuple of exception classes"),
]


@pytest.mark.parametrize(("changes", "error", "message"), BAD)
def test_bad_arguments_are_refused(
    changes: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {"models": {"a": TestModel()}} | changes
    models = arguments.pop("models")
    with pytest.raises(error, match=message):
        ConduitModel(models, **arguments)  # type: ignore[arg-type]


def test_a_router_over_other_models_is_refused(router_factory: RouterFactory) -> None:
    router = router_factory("a", "c")
    with pytest.raises(ConfigurationError, match="give both the same names"):
        ConduitModel({"a": TestModel(), "b": TestModel()}, router=router)
    assert router.models == ("a", "c")


async def test_concurrent_runs_keep_their_own_decisions(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    router = router_factory("invalid", "valid", algorithm="ucb1")
    model = ConduitModel({"invalid": kit.invalid(), "valid": kit.valid()}, router=router)
    agent = Agent(model, output_type=kit.Invoice, retries=3)
    results = await asyncio.gather(*(agent.run(f"Invoice {i}") for i in range(8)))
    ids = [i for r in results for i in decision_ids(r)]
    assert len(ids) == len(set(ids)) == router.stats().total_decisions
    stats = router.stats()
    assert stats.total_feedback == stats.total_decisions  # every response judged once
    assert stats.models["valid"].mean_quality == 1.0
    assert stats.models["invalid"].decisions == 0 or stats.models["invalid"].mean_quality == 0.0


async def test_a_state_store_shares_what_conduit_model_learned(
    kit: SimpleNamespace, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"

    def router() -> Router:
        return Router(
            ["valid", "invalid"],
            embedding_backend="hashing",
            seed=0,
            state_store=url,
            sync_interval=3600.0,
        )

    first = router()
    agent = Agent(
        ConduitModel({"valid": kit.valid(), "invalid": kit.invalid()}, router=first),
        output_type=kit.Invoice,
        retries=3,
    )
    results = [await agent.run(f"Invoice {i}") for i in range(3)]
    assert first.store_sync is not None
    first.store_sync.sync_now()
    first.close()

    later = router().start()  # another process, say: it starts from what the first one learned
    try:
        assert later.store_sync is not None
        later.store_sync.sync_now()
        assert later.stats().total_decisions == sum(len(decision_ids(r)) for r in results)
        explained = later.explain(decision_ids(results[0])[-1])  # from the store's history
        assert explained.selected_model == "valid"
    finally:
        later.close()
