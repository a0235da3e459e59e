"""ConduitModel(judge=Judge(...)): a sampled final answer is graded by a judge model."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from conduit._errors import ConfigurationError
from conduit.engines.router import Router
from conduit.judge import ANSWER_OPEN, Judge
from conduit.pydantic_ai import ConduitModel, record_feedback

RouterFactory = Callable[..., Router]


def grader(reply: str, seen: list[str] | None = None) -> FunctionModel:
    """A judge model that answers ``reply`` and remembers the requests it saw."""

    def grade(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if seen is not None:
            seen.append(str(messages[-1].parts[-1].content))  # type: ignore[union-attr]
        return ModelResponse(parts=[TextPart(reply)])

    return FunctionModel(grade, model_name="grader")


def make(
    kit: SimpleNamespace, router_factory: RouterFactory, judge: Judge, judge_model: FunctionModel
) -> tuple[ConduitModel, Router]:
    router = router_factory("cheap", "dear")
    model = ConduitModel(
        {"cheap": kit.valid("cheap"), "dear": kit.valid("dear")},
        router=router,
        judge=judge,
        judge_models={"grader": judge_model},
    )
    return model, router


async def test_sampled_final_answers_get_the_judges_grade(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    seen: list[str] = []
    judge = Judge("grader", sample_rate=1.0, seed=0)
    model, router = make(kit, router_factory, judge, grader('{"grade": 4, "reason": "ok"}', seen))
    agent = Agent(model)
    for i in range(4):
        result = await agent.run(f"Question {i}: say hello")
        assert result.output.endswith("says hello")  # the run never waits for the judge
    await model.judged()
    stats = router.stats()
    assert stats.total_feedback == 4
    assert all(s.mean_quality == 0.75 for s in stats.models.values() if s.feedback)
    assert stats.counters["quality_judge"] == 4 and stats.counters["quality_automatic"] == 0
    assert stats.counters["judge_calls"] == 4 and stats.counters["judge_sampled"] == 4
    # the judge saw the question and the answer between the rubric's markers, nothing else
    assert len(seen) == 4 and all(ANSWER_OPEN in text and "says hello" in text for text in seen)
    assert "Question 3: say hello" in seen[-1]


async def test_unsampled_answers_keep_the_runs_own_verdict(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    seen: list[str] = []
    judge = Judge("grader", sample_rate=0.0, seed=0)
    model, router = make(kit, router_factory, judge, grader('{"grade": 1, "reason": "bad"}', seen))
    for i in range(3):
        await Agent(model).run(f"Question {i}")
    await model.judged()
    stats = router.stats()
    assert seen == [] and stats.counters["quality_automatic"] == 3
    assert all(s.mean_quality == 1.0 for s in stats.models.values() if s.feedback)


async def test_explicit_feedback_before_the_grade_wins(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    judge = Judge("grader", sample_rate=1.0, seed=0)
    model, router = make(kit, router_factory, judge, grader('{"grade": 5, "reason": "great"}'))
    result = await Agent(model).run("Question: say hello")
    assert record_feedback(result, quality=0.125) == 1  # before the judge's task has run
    await model.judged()
    stats = router.stats()
    assert stats.total_feedback == 1
    assert [s.mean_quality for s in stats.models.values() if s.feedback] == [0.125]
    assert stats.counters["quality_explicit"] == 1 and stats.counters["quality_judge"] == 0


@pytest.mark.parametrize(
    ("judge_model", "counter"),
    [
        (grader("The answer is fine."), "judge_garbage"),
        (grader('{"grade": 9, "reason": "wow"}'), "judge_garbage"),
        (
            FunctionModel(
                lambda m, i: (_ for _ in ()).throw(ModelHTTPError(500, "grader")),
                model_name="grader",
            ),
            "judge_errors",
        ),
    ],
)
async def test_a_failing_or_garbage_judge_never_affects_a_run(
    kit: SimpleNamespace, router_factory: RouterFactory, judge_model: FunctionModel, counter: str
) -> None:
    judge = Judge("grader", sample_rate=1.0, seed=0)
    model, router = make(kit, router_factory, judge, judge_model)
    for i in range(3):
        result = await Agent(model).run(f"Question {i}")
        assert result.output.endswith("says hello")
    await model.judged()
    stats = router.stats()
    assert stats.counters[counter] == 3 and stats.counters["quality_judge"] == 0
    # the run's own verdict stands for an answer the judge could not grade
    assert stats.counters["quality_automatic"] == 3


async def test_structured_output_is_judged_by_its_arguments(
    kit: SimpleNamespace, router_factory: RouterFactory
) -> None:
    seen: list[str] = []
    judge = Judge("grader", sample_rate=1.0, seed=0)
    model, router = make(kit, router_factory, judge, grader('{"grade": 3, "reason": "ok"}', seen))
    result = await Agent(model, output_type=kit.Invoice).run("Bill me")
    assert result.output.number == "INV-1"
    await model.judged()
    assert router.stats().counters["quality_judge"] == 1
    assert '"INV-1"' in seen[0]


def test_a_judge_must_be_a_judge(kit: SimpleNamespace) -> None:
    with pytest.raises(ConfigurationError, match=r"judge must be a conduit\.judge\.Judge"):
        ConduitModel([kit.valid()], judge="grader")  # type: ignore[arg-type]
