"""What the LiteLLM tests share."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import litellm
import pytest

from conduit_litellm import _compat


@pytest.fixture
def restore_litellm() -> Iterator[None]:
    """LiteLLM's global callback lists and cost map as they were before the test: a
    strategy's logger, or a deployment's custom price, must not leak into the next test."""
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    cost = copy.deepcopy(litellm.model_cost)
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries
    litellm.model_cost.clear()
    litellm.model_cost.update(cost)
