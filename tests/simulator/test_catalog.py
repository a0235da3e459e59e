from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from conduit._errors import ConfigurationError, UnknownModelError
from conduit.replay.log import read_log, shipped_log
from conduit.simulator._catalog import Catalog, count_tokens

from .conftest import TINY_LOG


def test_known_prompt_answers_with_the_logged_outcome(tiny_log: Path) -> None:
    catalog = Catalog.from_log(tiny_log)
    for prompt, outcomes in TINY_LOG.items():
        for model, (quality, cost) in outcomes.items():
            answer = catalog.answer(model, prompt)
            assert (answer.quality, answer.cost) == (quality, cost)
            assert answer.known_prompt and answer.record_id is not None
            assert answer.prompt_tokens == math.ceil(len(prompt) / 4)
            assert 1 <= answer.completion_tokens <= 16


def test_unknown_prompt_draws_a_logged_quality_deterministically(tiny_log: Path) -> None:
    catalog = Catalog.from_log(tiny_log)
    drawn = {catalog.answer("small", f"unseen question {i}").quality for i in range(50)}
    assert drawn == {q for q, _ in (o["small"] for o in TINY_LOG.values())}
    first = catalog.answer("medium", "unseen question")
    again = Catalog.from_log(tiny_log).answer("medium", "unseen question")
    assert first == again
    assert not first.known_prompt and first.record_id is None
    assert first.cost == pytest.approx(
        catalog.price_per_token["medium"] * (first.prompt_tokens + first.completion_tokens)
    )


def test_price_per_token_reproduces_the_total_logged_cost() -> None:
    records = read_log(shipped_log(), limit=300)
    catalog = Catalog(records=records)
    for model in catalog.models:
        priced = sum(
            catalog.price_per_token[model]
            * (count_tokens(r.prompt) + catalog.answer(model, r.prompt).completion_tokens)
            for r in records
        )
        logged = sum(r.outcomes[model].cost or 0.0 for r in records)
        assert priced == pytest.approx(logged, rel=1e-9)


def test_aliases_answer_with_their_target(tiny_log: Path) -> None:
    catalog = Catalog.from_log(tiny_log, aliases={"gpt-4o-mini": "small"})
    assert catalog.models == ("large", "medium", "small", "gpt-4o-mini")
    assert catalog.answer("gpt-4o-mini", "Name a colour.").quality == 0.5
    assert catalog.resolve("gpt-4o-mini") == "small"


@pytest.mark.parametrize(
    ("kwargs", "exception", "pattern"),
    [
        ({"records": []}, ConfigurationError, "at least one logged record"),
        ({"aliases": {"x": "nope"}}, ConfigurationError, "alias 'x' points to 'nope'"),
    ],
)
def test_invalid_catalogs(
    tiny_log: Path, kwargs: dict[str, object], exception: type[Exception], pattern: str
) -> None:
    arguments: dict[str, object] = {"records": read_log(tiny_log)} | kwargs
    with pytest.raises(exception, match=re.escape(pattern)):
        Catalog(**arguments)  # type: ignore[arg-type]


def test_unknown_model_is_a_lookup_error(tiny_log: Path) -> None:
    with pytest.raises(UnknownModelError, match="'huge' does not exist"):
        Catalog.from_log(tiny_log).answer("huge", "What is 2 + 2?")
