"""StaticEmbedder: the shipped distilled table loads offline, is deterministic, and behaves
as an Embedder whose vectors still carry meaning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conduit._errors import ConfigurationError, MissingDependencyError, StateError
from conduit.engines.features._base import Embedder

pytest.importorskip("tokenizers", reason="the static backend needs tokenizers")

from conduit.engines.features import _static as static_module
from conduit.engines.features._static import StaticEmbedder

DATA = Path(static_module.__file__).parent / "data"
TEXTS = [
    "What is 2 + 2?",
    "Write a Python function that reverses a linked list in place.",
    "Quelle est la capitale de l'Australie ?",
    "日本の首都はどこですか？",  # noqa: RUF001
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "The quick brown fox jumps over the lazy dog. " * 60,
]


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder()


def test_name_dim_and_protocol(static: StaticEmbedder) -> None:
    assert (static.name, static.dim) == ("static:all-MiniLM-L6-v2", 256)
    assert isinstance(static, Embedder)
    assert static.inline is True


def test_rows_are_unit_float32_and_empty_texts_are_zero(static: StaticEmbedder) -> None:
    v = static.embed([*TEXTS, "", "   "])
    assert v.dtype == np.float32 and v.shape == (len(TEXTS) + 2, 256)
    np.testing.assert_allclose(np.linalg.norm(v[: len(TEXTS)], axis=1), 1.0, rtol=1e-5)
    assert not v[len(TEXTS) :].any()
    assert static.embed([]).shape == (0, 256)


def test_deterministic_and_a_batch_gives_the_rows_of_single_texts(static: StaticEmbedder) -> None:
    batch = static.embed(TEXTS)
    again = StaticEmbedder().embed(TEXTS)
    single = np.stack([static.embed([t])[0] for t in TEXTS])
    np.testing.assert_array_equal(batch, again)
    np.testing.assert_allclose(batch, single, atol=1e-7)


def test_rows_converted_once_give_the_float32_mean_of_the_float16_table() -> None:
    """Kept float32 rows (grown past their first capacity, a token repeated) embed exactly
    as converting the float16 rows of every query would."""
    fresh = StaticEmbedder()
    tokenizer, table = fresh._tokenizer, np.load(DATA / "static-MiniLM-L6-v2.npy")
    for text in [*TEXTS, "the the the", " ".join(f"word{i}" for i in range(400)), *TEXTS]:
        ids = [i for i in tokenizer.encode(text, add_special_tokens=False).ids if i != fresh._unk]
        mean = table[ids].astype(np.float32).mean(axis=0, keepdims=True)
        expected = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        np.testing.assert_array_equal(fresh.embed([text]), expected)
    assert 64 < fresh._used <= len(fresh._float32)


def test_similar_texts_are_closer_than_unrelated_ones(static: StaticEmbedder) -> None:
    a, b, c = static.embed(
        ["How do I bake bread?", "What is a good bread recipe?", "Fix my segfault in C"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_agrees_with_the_onnx_transformer_on_which_texts_are_alike(
    static: StaticEmbedder, minilm_onnx: Embedder
) -> None:
    """Distilled from the same model: the two rank the pairs of texts alike."""
    s, o = static.embed(TEXTS), minilm_onnx.embed(TEXTS)
    upper = np.triu_indices(len(TEXTS), k=1)
    rank_s = np.argsort(np.argsort((s @ s.T)[upper]))
    rank_o = np.argsort(np.argsort((o @ o.T)[upper]))
    assert np.corrcoef(rank_s, rank_o)[0, 1] > 0.6


def test_the_shipped_table_loads_offline_without_model2vec_or_the_network() -> None:
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network')\n"
        "socket.socket.connect = refuse\n"
        "sys.modules['model2vec'] = None; sys.modules['huggingface_hub'] = None\n"
        "from conduit.engines.features._static import StaticEmbedder\n"
        "print(StaticEmbedder().embed(['hello world']).shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "(1, 256)"


def test_reads_at_most_max_tokens() -> None:
    words = " ".join(f"w{i}" for i in range(50))
    short = StaticEmbedder(max_tokens=8)
    np.testing.assert_allclose(
        short.embed([words])[0], short.embed([words + " and more"])[0], atol=1e-7
    )


def test_a_tampered_packaged_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_module, "_TABLE_SHA256", "0" * 64)
    with pytest.raises(StateError, match=r"has sha256 [0-9a-f]{64}, expected 0{64}"):
        StaticEmbedder()


def test_missing_tokenizers_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[embeddings\]'"):
        StaticEmbedder()


def test_a_table_that_does_not_fit_its_tokenizer_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "t.npy"
    np.save(table, np.zeros((10, 4), dtype=np.float16))
    with pytest.raises(ConfigurationError, match=r"has 29525 tokens, .* has 10 rows"):
        StaticEmbedder(table_path=table, tokenizer_path=DATA / "static-MiniLM-L6-v2.tokenizer.json")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_tokens": 0}, r"max_tokens must be an int >= 1, got 0"),
        ({"max_tokens": 8.0}, r"got 8\.0"),
        ({"table_path": Path("/nonexistent/t.npy")}, r"cannot read the static embedding"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        StaticEmbedder(**kwargs)  # type: ignore[arg-type]
