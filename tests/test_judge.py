"""The engine side of the judge: sampling, budget, queue, parsing, pairwise, regenerations."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from conduit import ConduitError, Router
from conduit._types import ModelScore, RoutingDecision
from conduit.judge import (
    GRADE_SCHEMA,
    PAIRWISE_SCHEMA,
    Judge,
    JudgeOutputError,
    JudgeReply,
    Regenerations,
    Sampler,
    pairwise_quality,
    parse_grade,
    parse_verdict,
    read_judge_request,
)


def decision(confidence: float, exploring: bool = False) -> RoutingDecision:
    score = ModelScore(utility=0.5, quality=0.5, bonus=0.1, cost=None, latency=None)
    return RoutingDecision(
        decision_id="d", selected_model="m", confidence=confidence, propensity=1.0,
        scores={"m": score}, reason="", algorithm="ucb1", exploring=exploring,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replying(*texts: str, cost: float = 0.01) -> tuple[Any, list[tuple[str, Any, Any]]]:
    """An ``ask`` that answers with ``texts`` in turn, and the calls it received."""
    calls: list[tuple[str, Any, Any]] = []
    replies = iter(texts)

    async def ask(model: str, messages: Any, fmt: Any) -> JudgeReply:
        calls.append((model, messages, fmt))
        return JudgeReply(next(replies), cost)

    return ask, calls


GOOD = json.dumps({"grade": 5, "reason": "right"})


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_uniform_sampling_takes_the_rate_of_decisions_within_one(rate: float) -> None:
    sampler = Sampler(rate, uncertain=False, seed=3)
    taken = sum(sampler.sample() for _ in range(2000))
    assert abs(taken - 2000 * rate) <= 1


def test_uncertain_sampling_keeps_the_mean_rate_and_prefers_unsure_decisions() -> None:
    sampler = Sampler(0.2, seed=0)
    sure, unsure = decision(0.99), decision(0.3, exploring=True)
    taken = {"sure": 0, "unsure": 0}
    for i in range(4000):
        which = "sure" if i % 2 else "unsure"
        taken[which] += sampler.sample(sure if which == "sure" else unsure)
    assert abs(sum(taken.values()) - 800) <= 20  # the mean weight is learned as it goes
    assert taken["unsure"] > 3 * taken["sure"] > 0  # the floor keeps sampling sure ones


def test_same_seed_samples_the_same_decisions() -> None:
    def picks(seed: int) -> list[bool]:
        sampler = Sampler(0.1, seed=seed)
        return [sampler.sample(decision(c / 100)) for c in range(100)]

    assert picks(7) == picks(7)


def test_grade_becomes_quality_with_a_json_schema_asked_for() -> None:
    judge = Judge(model="judge", sample_rate=1.0, seed=0)
    job = judge.offer("d1", "2 + 2?", "4", model="small")
    assert job is not None
    ask, calls = replying(json.dumps({"grade": 4, "reason": "ok"}))
    grade = asyncio.run(judge.grade(job, ask))
    assert grade is not None and grade.quality == 0.75 and grade.source == "judge"
    model, messages, fmt = calls[0]
    assert model == "judge" and fmt == GRADE_SCHEMA
    assert read_judge_request(messages[1]["content"]) == ("2 + 2?", ("4",))
    assert judge.stats()["graded"] == 1 and judge.stats()["cost"] == pytest.approx(0.01)


def test_without_structured_output_no_response_format_is_sent() -> None:
    judge = Judge(model="judge", sample_rate=1.0, structured=False, seed=0)
    job = judge.offer("d1", "q", "a", model="small")
    assert job is not None
    ask, calls = replying(GOOD)
    assert asyncio.run(judge.grade(job, ask)) is not None
    assert calls[0][2] is None


@pytest.mark.parametrize(
    "text",
    ["Grade: 5", '{"grade": 7, "reason": "x"}', '{"score": 5}', '["grade", 5]',
     '{"grade": true}', '{"grade": 4.5}', ""],
)  # fmt: skip
def test_garbage_is_counted_and_dropped(text: str) -> None:
    judge = Judge(model="judge", sample_rate=1.0, seed=0)
    job = judge.offer("d1", "q", "a", model="small")
    assert job is not None
    ask, _ = replying(text)
    assert asyncio.run(judge.grade(job, ask)) is None
    stats = judge.stats()
    assert stats["garbage"] == 1 and stats["graded"] == 0 and stats["queued"] == 0
    with pytest.raises(JudgeOutputError):
        parse_grade(text)


def test_a_failing_judge_is_counted_not_raised() -> None:
    judge = Judge(model="judge", sample_rate=1.0, seed=0)
    job = judge.offer("d1", "q", "a", model="small")
    assert job is not None

    async def fail(model: str, messages: Any, fmt: Any) -> JudgeReply:
        raise ConnectionError("judge down")

    assert asyncio.run(judge.grade(job, fail)) is None
    assert judge.stats()["errors"] == 1 and judge.stats()["queued"] == 0


def test_a_slow_judge_times_out_counted() -> None:
    judge = Judge(model="judge", sample_rate=1.0, timeout=0.01, seed=0)
    job = judge.offer("d1", "q", "a", model="small")
    assert job is not None

    async def slow(model: str, messages: Any, fmt: Any) -> JudgeReply:
        await asyncio.sleep(5)
        return JudgeReply(GOOD)

    assert asyncio.run(judge.grade(job, slow)) is None
    assert judge.stats()["timeouts"] == 1


def test_budget_pauses_sampling_until_the_hour_has_passed() -> None:
    clock = Clock()
    judge = Judge(model="judge", sample_rate=1.0, max_cost_per_hour=0.025, seed=0, clock=clock)
    graded = 0
    for i in range(5):
        job = judge.offer(f"d{i}", "q", "a", model="small")
        if job is not None:
            ask, _ = replying(GOOD, cost=0.01)
            graded += asyncio.run(judge.grade(job, ask)) is not None
    assert graded == 3  # 0.00, 0.01, 0.02 spent before each: the fourth finds 0.03
    assert judge.stats()["paused_budget"] == 2
    clock.now = 3601.0
    assert judge.offer("d9", "q", "a", model="small") is not None


def test_daily_budget_of_zero_never_samples() -> None:
    judge = Judge(model="judge", sample_rate=1.0, max_cost_per_day=0.0, seed=0)
    assert judge.offer("d1", "q", "a", model="small") is None
    assert judge.stats()["paused_budget"] == 1


def test_full_queue_pauses_sampling() -> None:
    judge = Judge(model="judge", sample_rate=1.0, max_queue=2, seed=0)
    jobs = [judge.offer(f"d{i}", "q", "a", model="small") for i in range(4)]
    assert [j is not None for j in jobs] == [True, True, False, False]
    assert judge.stats()["paused_queue"] == 2
    first = jobs[0]
    assert first is not None
    judge.release(first)
    assert judge.offer("d5", "q", "a", model="small") is not None


def test_shadow_comparison_asks_the_reference_and_swaps_positions() -> None:
    judge = Judge(model="judge", sample_rate=1.0, shadow_rate=1.0, seed=0)
    job = judge.offer("d1", "2 + 2?", "4", model="small", reference="large")
    assert job is not None and job.shadow == "large"
    # routed first: A wins; routed second: the judge still says A (position bias) -> 0.5
    ask, calls = replying("Four.", '{"winner": "A", "reason": ""}', '{"winner": "A", "reason": ""}')
    grade = asyncio.run(judge.grade(job, ask))
    assert grade is not None and grade.source == "shadow" and grade.quality == 0.5
    assert [c[0] for c in calls] == ["large", "judge", "judge"]
    assert calls[0][1] == [{"role": "user", "content": "2 + 2?"}]
    assert read_judge_request(calls[1][1][1]["content"]) == ("2 + 2?", ("4", "Four."))
    assert read_judge_request(calls[2][1][1]["content"]) == ("2 + 2?", ("Four.", "4"))
    assert calls[1][2] == PAIRWISE_SCHEMA
    assert judge.stats()["cost"] == pytest.approx(0.03)  # the reference answer is judge cost


def test_no_shadow_comparison_of_the_reference_with_itself() -> None:
    judge = Judge(model="judge", sample_rate=1.0, shadow_rate=1.0, seed=0)
    job = judge.offer("d1", "q", "a", model="large", reference="large")
    assert job is not None and job.shadow is None


def test_pairwise_quality_table() -> None:
    assert pairwise_quality("A", "B") == 1.0
    assert pairwise_quality("B", "A") == 0.0
    assert pairwise_quality("tie", "tie") == 0.5
    assert pairwise_quality("B", "B") == 0.5
    with pytest.raises(JudgeOutputError):
        parse_verdict('{"winner": "C"}')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model group"),
        ({"model": "j", "sample_rate": 1.5}, "sample_rate"),
        ({"model": "j", "shadow_rate": -0.1}, "shadow_rate"),
        ({"model": "j", "max_cost_per_hour": -1}, "max_cost_per_hour"),
        ({"model": "j", "max_cost_per_day": float("nan")}, "max_cost_per_day"),
        ({"model": "j", "max_queue": 0}, "max_queue"),
        ({"model": "j", "timeout": 0}, "timeout"),
        ({"model": "j", "rubric": " "}, "rubric"),
        ({"model": "j", "floor": 0.0}, "floor"),
    ],
)
def test_bad_settings_raise_a_conduit_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConduitError, match=message):
        Judge(**kwargs)


def test_regeneration_in_a_session_marks_the_earlier_answer() -> None:
    clock = Clock()
    regen = Regenerations(window=60, clock=clock)
    ask = [{"role": "user", "content": "Explain monads simply please"}]
    assert regen.observe("s1", ask, "d1") is None
    assert regen.observe("s2", ask, "d2") is None  # another conversation
    assert regen.observe("s1", ask, "d3") == "d1"
    clock.now = 120.0
    assert regen.observe("s1", ask, "d4") is None  # too late: a new question


@pytest.mark.parametrize(
    ("key", "first", "second"),
    [
        ("s1", [{"role": "user", "content": "yes"}], [{"role": "user", "content": "yes"}]),
        (None, [{"role": "user", "content": "Summarise this text"}],
         [{"role": "user", "content": "Summarise this text"}]),
        ("s1", [{"role": "user", "content": "Explain monads simply"}],
         [{"role": "user", "content": "Explain functors simply"}]),
    ],
)  # fmt: skip
def test_regeneration_is_not_trusted(key: str | None, first: Any, second: Any) -> None:
    regen = Regenerations()
    assert regen.observe(key, first, "d1") is None
    assert regen.observe(key, second, "d2") is None


def test_regeneration_without_a_session_needs_the_same_conversation_prefix() -> None:
    regen = Regenerations()
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    again = [*history, {"role": "user", "content": "What is a monad exactly?"}]
    assert regen.observe(None, again, "d1") is None
    assert regen.observe(None, again, "d2") == "d1"


def test_sampler_weights_a_real_router_decision() -> None:
    router = Router(
        ["small", "large"], bandit_algorithm="ucb1", seed=0, embedding_backend="hashing"
    )
    d = router.route_sync("What is 2 + 2?")
    assert Sampler(0.1, seed=0).weight(d) >= 0.25
