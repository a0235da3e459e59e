"""Concurrent single-text embeddings combined into one batch call (for a slow embedder)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["Combiner"]


class _Slot:
    __slots__ = ("done", "error", "row", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.row: NDArray[np.float32] | None = None
        self.error: BaseException | None = None
        self.done = False


class Combiner:
    """Each caller queues its text and waits for the embedder; whoever gets it embeds every
    queued text in one call and hands each caller its row. Alone, a call is one embed of
    one text with no wait; in a burst, one model run serves many requests (an ONNX run
    of 32 short texts costs a few times one, not 32 times).
    """

    def __init__(
        self, embed: Callable[[Sequence[str]], NDArray[np.float32]], *, max_batch: int = 32
    ) -> None:
        self._embed = embed
        self._max_batch = max_batch
        self._queue: list[_Slot] = []
        self._queue_lock = threading.Lock()
        self._busy = threading.Lock()  # one embed call at a time; its holder drains the queue

    def embed_one(self, text: str) -> NDArray[np.float32]:
        slot = _Slot(text)
        with self._queue_lock:
            self._queue.append(slot)
        with self._busy:
            while not slot.done:
                with self._queue_lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                try:
                    rows = self._embed([s.text for s in batch])
                except Exception as exc:  # every caller in the batch gets the embedder's error
                    for s in batch:
                        s.error, s.done = exc, True
                else:
                    for s, row in zip(batch, rows, strict=True):
                        s.row, s.done = row, True
        if slot.row is None:  # done with the embedder's error instead of a row
            raise slot.error if slot.error is not None else RuntimeError("no row embedded")
        return slot.row
