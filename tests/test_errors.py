"""One exception tree: every error is a ConduitError, and input errors keep the builtin bases."""

from __future__ import annotations

import inspect

import pytest

import conduit._errors as errors
from conduit._errors import (
    ConduitError,
    ConfigurationError,
    DuplicateModelError,
    FeedbackError,
    InvalidFeedbackError,
    InvalidQueryError,
    LogFormatError,
    MissingDependencyError,
    NoModelAvailableError,
    StateError,
    StoreError,
    UnknownDecisionError,
    UnknownModelError,
    ValidationError,
)

# (error, what it must also be, what it must not be)
TREE: list[
    tuple[type[Exception], tuple[type[BaseException], ...], tuple[type[BaseException], ...]]
] = [
    (ValidationError, (ValueError,), (LookupError,)),
    (ConfigurationError, (ValidationError, ValueError), ()),
    (InvalidQueryError, (ValidationError, ValueError), ()),
    (DuplicateModelError, (ConfigurationError, ValueError), ()),
    (LogFormatError, (ValidationError, ValueError), ()),
    (UnknownModelError, (LookupError,), (ValueError,)),
    (NoModelAvailableError, (), (ValueError, LookupError)),
    (FeedbackError, (), (ValueError, LookupError)),
    (InvalidFeedbackError, (FeedbackError, ValueError), (LookupError,)),
    (UnknownDecisionError, (FeedbackError, LookupError), (ValueError,)),
    (StateError, (), (ValueError, LookupError)),
    (StoreError, (), (ValueError, LookupError)),
    (MissingDependencyError, (ImportError,), (ValueError,)),
]


@pytest.mark.parametrize(
    ("error", "bases", "not_bases"), TREE, ids=[e.__name__ for e, _, _ in TREE]
)
def test_error_tree(
    error: type[Exception],
    bases: tuple[type[BaseException], ...],
    not_bases: tuple[type[BaseException], ...],
) -> None:
    assert issubclass(error, ConduitError)
    for base in bases:
        assert issubclass(error, base), f"{error.__name__} should be a {base.__name__}"
    for base in not_bases:
        assert not issubclass(error, base), f"{error.__name__} should not be a {base.__name__}"
    with pytest.raises(ConduitError, match="boom"):
        raise error("boom")


def test_every_error_is_in_the_table_and_exported() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    assert {e.__name__ for e, _, _ in TREE} | {"ConduitError"} == defined
    assert errors.__all__ == sorted(errors.__all__)


def test_conduit_error_is_only_an_exception() -> None:
    assert ConduitError.__bases__ == (Exception,)
