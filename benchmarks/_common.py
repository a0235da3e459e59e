"""What the benchmarks share: an offline environment, one percentile, chat messages, the
common arguments and the JSON report.

Importing this module sets the environment every benchmark runs in (LiteLLM's
bundled cost map, no Hugging Face downloads), so import it before LiteLLM or an
embedder. Run a benchmark as ``python benchmarks/bench_x.py``: this directory is
then on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["deployments", "messages", "parser", "percentile", "summary_ms", "write_json"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank below: an observed value, never interpolated."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """Median and p90 of durations already in milliseconds."""
    return {"median_ms": statistics.median(values), "p90_ms": percentile(values, 0.9)}


def deployments(sim: Any, group: str, models: Sequence[str], **params: Any) -> list[dict[str, Any]]:
    """One LiteLLM deployment in ``group`` per simulated model of ``sim`` (a
    :class:`conduit.simulator.Simulator`), priced from the log, ``model_info.id`` the
    model's name; ``params``: more ``litellm_params``."""
    return [
        {
            "model_name": group,
            "litellm_params": {
                "model": f"openai/{m}",
                "api_base": sim.base_url,
                "api_key": "sk-dummy",
                **params,
                "input_cost_per_token": sim.price_per_token(m),
                "output_cost_per_token": sim.price_per_token(m),
            },
            "model_info": {"id": m},
        }
        for m in models
    ]


def messages(prompt: str) -> list[dict[str, str]]:
    """One user turn, as LiteLLM takes it."""
    return [{"role": "user", "content": prompt}]


def parser(
    doc: str | None, *, seeds: bool = False, quick: str | None = None
) -> argparse.ArgumentParser:
    """A benchmark's parser, described by its docstring's first line, with ``--json OUT``;
    ``seeds``: ``--seeds`` (default 0 1 2); ``quick``: ``--quick``, with this help."""
    out = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    out.add_argument("--json", help="write the results here")
    if seeds:
        out.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    if quick is not None:
        out.add_argument("--quick", action="store_true", help=quick)
    return out


def write_json(path: str | Path | None, results: Any) -> None:
    """The results as indented JSON at ``path`` (nothing if None)."""
    if path is not None:
        Path(path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
