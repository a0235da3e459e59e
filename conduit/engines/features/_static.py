"""A static embedding distilled from all-MiniLM-L6-v2: a token table look-up and a mean.

The table and tokenizer ship in ``data/`` (made once by ``scripts/distill_static_embedding.py``
with model2vec). Inference is a few lines of numpy rather than ``model2vec.StaticModel``:
the same arithmetic, without model2vec's run-time imports (huggingface-hub, jinja2, joblib).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from conduit._errors import ConfigurationError, MissingDependencyError, StateError
from conduit.engines.features._base import is_int

__all__ = ["StaticEmbedder"]

_STEM = "static-MiniLM-L6-v2"
_TABLE_SHA256 = "912890a357b6060438250d152d05f7a9ac7f75c3d47736b25694913c0e71d161"
_INSTALL = "pip install 'conduit[embeddings]'"


def _data(name: str) -> Path:
    return Path(str(resources.files("conduit.engines.features").joinpath(f"data/{name}")))


class StaticEmbedder:
    """L2-normalised mean of the tokens' rows in a distilled all-MiniLM-L6-v2 table (256 dims).

    No transformer runs per query, so a new prompt costs tens of microseconds, in the
    caller's thread. Special tokens are not added and unknown tokens are skipped, as in
    model2vec; a text with no known token embeds as the zero vector. At most
    ``max_tokens`` tokens are read. The shipped table's sha256 is checked when it loads;
    it is memory-mapped, so only the rows that queries touch become resident.

    >>> e = StaticEmbedder()
    >>> v = e.embed(["What is 2 + 2?", ""])
    >>> v.shape, round(float(v[0] @ v[0]), 3), float(abs(v[1]).sum())
    ((2, 256), 1.0, 0.0)
    """

    #: A query costs tens of microseconds: the async router embeds it without a thread hop.
    inline = True

    def __init__(
        self,
        *,
        table_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        max_tokens: int = 512,
    ) -> None:
        if not (is_int(max_tokens) and max_tokens >= 1):
            raise ConfigurationError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                f"the static embedding backend needs tokenizers: {_INSTALL}"
            ) from exc
        packaged = table_path is None
        table = Path(table_path) if table_path is not None else _data(f"{_STEM}.npy")
        spec = (
            Path(tokenizer_path) if tokenizer_path is not None else _data(f"{_STEM}.tokenizer.json")
        )
        try:
            if packaged:
                with table.open("rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                if digest != _TABLE_SHA256:
                    raise StateError(f"{table} has sha256 {digest}, expected {_TABLE_SHA256}")
            rows = np.load(table, mmap_mode="r", allow_pickle=False)
            self._tokenizer = Tokenizer.from_str(spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the static embedding {table}: {exc}") from exc
        if rows.ndim != 2 or rows.dtype.kind != "f":
            raise ConfigurationError(f"{table} must hold a 2-d float table, got {rows.shape}")
        if self._tokenizer.get_vocab_size() != rows.shape[0]:
            raise ConfigurationError(
                f"{spec} has {self._tokenizer.get_vocab_size()} tokens, "
                f"{table} has {rows.shape[0]} rows"
            )
        self._rows: NDArray[np.floating] = rows
        # The rows queries use, as float32, each converted once (converting a query's ~100
        # float16 rows was most of its numpy time): row ``_slots[i]`` of ``_float32`` is row i
        # of the table (-1: not converted yet). It holds only the rows queries touch.
        self._slots = np.full(rows.shape[0], -1, dtype=np.intp)
        self._float32: NDArray[np.float32] = np.zeros((64, rows.shape[1]), dtype=np.float32)
        self._used = 0
        self._lock = threading.Lock()
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=int(max_tokens))
        self._unk = self._tokenizer.token_to_id("[UNK]")

    @property
    def name(self) -> str:
        return "static:all-MiniLM-L6-v2"

    @property
    def dim(self) -> int:
        return int(self._rows.shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row per text: the L2-normalised mean of its tokens' rows (zero if none)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:  # no batch machinery (nor its thread pool) for one query
            encodings = [self._tokenizer.encode(texts[0], add_special_tokens=False)]
        else:
            encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for row, encoding in enumerate(encodings):
            ids = [i for i in encoding.ids if i != self._unk]
            if ids:
                out[row] = self._float32_rows(ids).mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: NDArray[np.float32] = out / np.maximum(norms, 1e-12)
        return unit

    def _float32_rows(self, ids: list[int]) -> NDArray[np.float32]:
        """The table's rows ``ids`` as float32 (what ``astype`` gives), converted once each."""
        index = np.asarray(ids, dtype=np.intp)
        with self._lock:
            slots = self._slots[index]
            if (slots < 0).any():
                new = np.unique(index[slots < 0])
                end = self._used + new.size
                if end > len(self._float32):  # doubled: a row is copied O(1) times on average
                    size = min(2 * end, len(self._rows))  # never more than the table
                    grown = np.zeros((size, self.dim), dtype=np.float32)
                    grown[: self._used] = self._float32[: self._used]
                    self._float32 = grown
                self._float32[self._used : end] = self._rows[new]
                self._slots[new] = np.arange(self._used, end)
                self._used = end
                slots = self._slots[index]
            converted = self._float32  # rows past those written are never read
        rows: NDArray[np.float32] = converted[slots]
        return rows
