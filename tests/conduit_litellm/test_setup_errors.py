"""What can be checked without a request fails setup_strategy (or the proxy's start), at once."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import litellm
import pytest

from conduit import ConfigurationError
from conduit._errors import StateError
from conduit_litellm import ConduitRoutingStrategy, _compat
from conduit_litellm.plugin import from_env

pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

MODEL_LIST = [
    {
        "model_name": "chat",
        "model_info": {"id": "mini"},
        "litellm_params": {"model": "gpt-4o-mini", "mock_response": "Paris."},
    }
]


@pytest.fixture(autouse=True)
def restore_callbacks() -> Iterator[None]:
    saved = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    yield
    for name, entries in saved.items():
        getattr(litellm, name)[:] = entries


def setup(strategy: ConduitRoutingStrategy) -> None:
    router = litellm.Router(model_list=copy.deepcopy(MODEL_LIST))
    try:
        ConduitRoutingStrategy.setup_strategy(router, strategy)
    finally:
        strategy.cleanup()


def test_a_corrupt_state_file_fails_setup(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"format": "conduit-state", "vers', encoding="utf-8")
    strategy = ConduitRoutingStrategy(embedding_backend="hashing", state_path=state)
    with pytest.raises(StateError, match="state is not valid JSON"):
        setup(strategy)


@pytest.mark.slow
def test_an_embedding_model_that_cannot_be_loaded_fails_setup() -> None:
    pytest.importorskip("sentence_transformers")  # the torch extra (not in the 1.74.9 venv)
    strategy = ConduitRoutingStrategy(
        embedding_model="no-such-org/no-such-model", embedding_backend="sentence-transformers"
    )
    with pytest.raises(ConfigurationError, match="'no-such-org/no-such-model' is not available"):
        setup(strategy)


@pytest.mark.slow
def test_the_proxy_plugin_fails_the_proxy_start(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")  # the torch extra (not in the 1.74.9 venv)
    monkeypatch.setenv("CONDUIT_EMBEDDING_MODEL", "no-such-org/no-such-model")
    monkeypatch.setenv("CONDUIT_EMBEDDING_BACKEND", "sentence-transformers")
    with pytest.raises(ConfigurationError, match="'no-such-org/no-such-model' is not available"):
        from_env()
