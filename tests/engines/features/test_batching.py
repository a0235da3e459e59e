"""Combiner: concurrent single-text embeds share one embedder call, each gets its own row."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from conduit.engines.features._batching import Combiner
from conduit.engines.features._extractor import FeatureExtractor


class GatedEmbedder:
    """Row i of a text is ``[len(text), i]``; the first call waits until released."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            if not self.release.wait(timeout=60):
                raise RuntimeError("never released")
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)


def _wait_for(condition: object, what: str) -> None:
    done = threading.Event()
    for _ in range(6000):
        if condition():  # type: ignore[operator]
            return
        done.wait(0.01)
    raise AssertionError(f"never: {what}")


def test_callers_queued_behind_a_running_call_are_embedded_in_one_batch() -> None:
    embedder = GatedEmbedder()
    combiner = Combiner(embedder)
    results: dict[str, NDArray[np.float32]] = {}

    def call(text: str) -> None:
        results[text] = combiner.embed_one(text)

    first = threading.Thread(target=call, args=("a",))
    first.start()
    assert embedder.entered.wait(timeout=60)
    others = [threading.Thread(target=call, args=(t,)) for t in ("bb", "ccc", "dddd")]
    for t in others:
        t.start()
    _wait_for(lambda: len(combiner._queue) == 3, "three callers queued")
    embedder.release.set()
    for t in [first, *others]:
        t.join(timeout=60)
    assert embedder.calls[0] == ["a"]
    assert len(embedder.calls) == 2 and sorted(embedder.calls[1]) == ["bb", "ccc", "dddd"]
    for text, row in results.items():
        assert row[0] == len(text)  # each caller got its own text's row


def test_alone_a_call_is_one_embed_of_one_text() -> None:
    calls: list[list[str]] = []

    def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        calls.append(list(texts))
        return np.ones((len(texts), 2), dtype=np.float32)

    combiner = Combiner(embed)
    combiner.embed_one("x")
    combiner.embed_one("y")
    assert calls == [["x"], ["y"]]


def test_an_embedder_error_reaches_the_caller_and_the_next_call_works() -> None:
    fail = [True]

    def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        if fail.pop() if fail else False:
            raise ValueError("model failed")
        return np.zeros((len(texts), 2), dtype=np.float32)

    combiner = Combiner(embed)
    with pytest.raises(ValueError, match="model failed"):
        combiner.embed_one("x")
    assert combiner.embed_one("y").shape == (2,)


def test_the_extractor_batches_a_slow_embedder_but_not_an_inline_one() -> None:
    from conduit.engines.features._hashing import HashingEmbedder

    class Inline(HashingEmbedder):
        inline = True

    slow, quick = FeatureExtractor(embedder=HashingEmbedder()), FeatureExtractor(embedder=Inline())
    assert not slow.inline and quick.inline
    np.testing.assert_array_equal(slow.compute("what is 2 + 2?"), quick.compute("what is 2 + 2?"))
