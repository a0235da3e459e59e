"""Bad values for the public types raise one of Conduit's errors, in plain words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conduit import (
    ConduitError,
    Constraints,
    Feedback,
    InvalidFeedbackError,
    InvalidQueryError,
    Preferences,
    Query,
)

NAN = float("nan")

#: (constructor, arguments, error, pattern the message must match)
BAD: list[tuple[Callable[..., Any], dict[str, Any], type[ConduitError], str]] = [
    (Query, {"text": "hi", "preferences": "fast"}, InvalidQueryError, "unknown preference 'fast'"),
    (Query, {"text": "hi", "preferences": 5}, InvalidQueryError, r"Query\.preferences: .*got 5"),
    (Query, {"text": "  "}, InvalidQueryError, "empty or only whitespace"),
    (Query, {"text": "hi", "colour": "red"}, InvalidQueryError, r"Query\.colour: Extra inputs"),
    (Constraints, {"max_cost": -1}, InvalidQueryError, r"max_cost: .*greater than 0, got -1"),
    (Constraints, {"max_cost": NAN}, InvalidQueryError, r"max_cost: .*finite number, got nan"),
    (Constraints, {"max_latency": 0}, InvalidQueryError, r"max_latency: .*greater than 0"),
    (Preferences, {"cost": -2}, InvalidQueryError, r"Preferences\.cost: .*got -2"),
    (Preferences, {"quality": 0, "cost": 0, "latency": 0}, InvalidQueryError, "at least one"),
    (Feedback, {"decision_id": "d", "quality": 2}, InvalidFeedbackError, r"quality: .*got 2"),
]


@pytest.mark.parametrize(("make", "kwargs", "error", "pattern"), BAD)
def test_bad_values_raise_conduit_errors_in_plain_words(
    make: Callable[..., Any], kwargs: dict[str, Any], error: type[ConduitError], pattern: str
) -> None:
    with pytest.raises(error, match=pattern) as caught:
        make(**kwargs)
    assert isinstance(caught.value, ValueError), "validation errors stay ValueErrors"
    message = str(caught.value)
    for internal in ("pydantic", "errors.pydantic.dev", "type=", "input_value", "**"):
        assert internal not in message, f"{internal!r} leaks into {message!r}"


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("fast", "unknown preference 'fast'"),
        (5, "unknown preference 5; use one of .*, a mapping of weights or Preferences"),
        ({"cost": "lots"}, r"Preferences\.cost: "),
        ({"speedy": 1.0}, r"Preferences\.speedy: Extra inputs"),
    ],
)
def test_preferences_of_refuses_what_it_cannot_read(value: Any, pattern: str) -> None:
    with pytest.raises(InvalidQueryError, match=pattern) as caught:
        Preferences.of(value)
    assert "argument after **" not in str(caught.value)


def test_preferences_of_reads_presets_weights_and_values() -> None:
    assert Preferences.of("cost") == Preferences(quality=1.0, cost=2.0, latency=0.1)
    assert Preferences.of({"cost": 0.7}) == Preferences(cost=0.7)
    assert Preferences.of(None).preset == "balanced"


def test_good_values_still_build() -> None:
    query = Query(text="hi", preferences="quality", constraints=Constraints(max_cost=0.01))
    assert query.preferences.preset == "quality" and query.constraints.max_cost == 0.01
