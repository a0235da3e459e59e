"""HashingEmbedder: deterministic everywhere, unit rows, distinct texts apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conduit._errors import ConfigurationError
from conduit.engines.features._base import Embedder
from conduit.engines.features._hashing import HashingEmbedder

TEXTS = ["What is 2 + 2?", "Write a haiku about rain.", "def f(x): return x", "héllo 世界 🙂"]


def _embed_in_subprocess(texts: list[str], hash_seed: str) -> list[list[float]]:
    code = (
        "import json, sys\n"
        "from conduit.engines.features._hashing import HashingEmbedder\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps(HashingEmbedder(dim=64).embed(texts).tolist()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    rows: list[list[float]] = json.loads(done.stdout)
    return rows


def test_same_vectors_in_other_processes_whatever_their_hash_seed() -> None:
    here = HashingEmbedder(dim=64).embed(TEXTS)
    for seed in ("1", "2"):
        there = np.array(_embed_in_subprocess(TEXTS, seed), dtype=np.float32)
        np.testing.assert_array_equal(here, there)


def test_rows_are_unit_float32() -> None:
    v = HashingEmbedder(dim=128).embed(TEXTS)
    assert v.dtype == np.float32 and v.shape == (len(TEXTS), 128)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)


def test_different_texts_differ_and_equal_texts_agree() -> None:
    e = HashingEmbedder()
    v = e.embed(["the cat sat on the mat", "the cat sat on the mat", "quarterly tax filing"])
    np.testing.assert_array_equal(v[0], v[1])
    assert float(v[0] @ v[2]) < 0.5
    assert not np.array_equal(e.embed(["a b"]), e.embed(["b a"]))  # word pairs keep order


def test_case_is_ignored() -> None:
    e = HashingEmbedder()
    np.testing.assert_array_equal(e.embed(["Hello World"]), e.embed(["hello world"]))


def test_empty_text_is_the_zero_row_and_no_texts_no_rows() -> None:
    e = HashingEmbedder(dim=8)
    assert not e.embed([""]).any()
    assert e.embed([]).shape == (0, 8)


def test_name_dim_and_protocol() -> None:
    e = HashingEmbedder(dim=32)
    assert (e.name, e.dim) == ("hashing:32", 32)
    assert isinstance(e, Embedder)
    assert HashingEmbedder(dim=np.int64(16)).dim == 16


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"dim": 0}, ConfigurationError, r"dim must be an int >= 1, got 0"),
        ({"dim": -3}, ConfigurationError, r"got -3"),
        ({"dim": 2.5}, ConfigurationError, r"got 2\.5"),
        ({"dim": True}, ConfigurationError, r"got True"),
        ({"dim": "64"}, ConfigurationError, r"got '64'"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        HashingEmbedder(**kwargs)  # type: ignore[arg-type]
