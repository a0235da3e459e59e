"""What the benchmarks share: an offline environment, one percentile, chat messages.

Importing this module sets the environment every benchmark runs in (LiteLLM's
bundled cost map, no Hugging Face downloads), so import it before LiteLLM or an
embedder. Run a benchmark as ``python benchmarks/bench_x.py``: this directory is
then on ``sys.path``.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["messages", "percentile", "summary_ms"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank below: an observed value, never interpolated."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """Median and p90 of durations already in milliseconds."""
    return {"median_ms": statistics.median(values), "p90_ms": percentile(values, 0.9)}


def messages(prompt: str) -> list[dict[str, str]]:
    """One user turn, as LiteLLM takes it."""
    return [{"role": "user", "content": prompt}]
