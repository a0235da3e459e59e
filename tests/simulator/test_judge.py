"""The simulator's judge: judge requests graded from the log, with noise and biases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conduit import ConfigurationError
from conduit.judge import grade_messages, pairwise_messages
from conduit.simulator._catalog import Catalog
from conduit.simulator._judge import SimulatedJudge

PROMPT = "Prove Fermat's last theorem."


@pytest.fixture
def catalog(tiny_log: Path) -> Catalog:
    return Catalog.from_log(tiny_log)


def grade(judge: SimulatedJudge, catalog: Catalog, model: str, prompt: str = PROMPT) -> int:
    text = grade_messages(prompt, f"Simulated answer from {model}.")[1]["content"]
    reply = judge.reply(catalog, text)
    assert reply is not None
    return int(json.loads(reply)["grade"])


def test_a_perfect_judge_grades_the_logged_quality(catalog: Catalog) -> None:
    judge = SimulatedJudge()
    # small 0.0, medium 0.25, large 0.75 -> grades 1, 2, 4
    assert [grade(judge, catalog, m) for m in ("small", "medium", "large")] == [1, 2, 4]


def test_an_answer_it_does_not_know_gets_the_middle_grade(catalog: Catalog) -> None:
    text = grade_messages(PROMPT, "A real answer, not a simulated one.")[1]["content"]
    assert json.loads(SimulatedJudge().reply(catalog, text) or "")["grade"] == 3


def test_not_a_judge_request() -> None:
    assert SimulatedJudge().reply(Catalog.__new__(Catalog), PROMPT) is None


def test_noise_flips_that_share_of_grades(catalog: Catalog) -> None:
    prompts = [f"question {i}" for i in range(400)]  # unknown: large scores 1.0 or 0.75, never 0.5
    exact = SimulatedJudge(seed=3)
    noisy = SimulatedJudge(noise=0.25, seed=3)
    flipped = sum(grade(exact, catalog, "large", p) != grade(noisy, catalog, "large", p)
                  for p in prompts)  # fmt: skip
    assert 60 <= flipped <= 140  # a quarter of 400, give or take the draws
    assert grade(noisy, catalog, "small", "question 7") == grade(noisy, catalog, "small",
                                                                 "question 7")  # fmt: skip


def test_pairwise_verdicts_and_position_bias(catalog: Catalog) -> None:
    small, large = "Simulated answer from small.", "Simulated answer from large."

    def winner(judge: SimulatedJudge, a: str, b: str) -> str:
        reply = judge.reply(catalog, pairwise_messages(PROMPT, a, b)[1]["content"])
        return str(json.loads(reply or "")["winner"])

    assert (winner(SimulatedJudge(), small, large), winner(SimulatedJudge(), large, small)) == (
        "B", "A")  # fmt: skip
    assert winner(SimulatedJudge(), large, large) == "tie"
    assert winner(SimulatedJudge(position_bias=1.0), small, large) == "A"


def test_length_bias_favours_long_answers(catalog: Catalog) -> None:
    long = "Simulated answer from small." + " padding" * 300
    text = grade_messages(PROMPT, long)[1]["content"]
    # not a simulated answer's exact text: it is graded as unknown, then no bias applies
    assert json.loads(SimulatedJudge(length_bias=1.0).reply(catalog, text) or "")["grade"] == 3
    assert SimulatedJudge(length_bias=1.0)._quality(
        catalog, PROMPT, "Simulated answer from small."
    ) == pytest.approx(28 / 2000)


@pytest.mark.parametrize("field", ["noise", "length_bias", "position_bias"])
def test_bad_shares_are_refused(field: str) -> None:
    with pytest.raises(ConfigurationError, match="judge"):
        SimulatedJudge(**{field: 1.5})  # type: ignore[arg-type]
