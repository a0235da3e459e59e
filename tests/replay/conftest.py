"""Tiny routing logs written to tmp_path, with outcomes small enough to check by hand."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

Outcomes = Mapping[str, tuple[float, float | None]]

#: Three models, four queries. By hand (see test_loop.py):
#: big 0.75 / $0.010, mid 0.625 / $0.004 (one cost unknown), small 0.375 / $0.001;
#: oracle mid, big, small, small -> 0.875 / $0.004.
THREE_MODELS: list[Outcomes] = [
    {"big": (1.0, 0.010), "mid": (1.0, 0.004), "small": (0.0, 0.001)},
    {"big": (1.0, 0.010), "mid": (0.0, 0.004), "small": (0.0, 0.001)},
    {"big": (0.0, 0.010), "mid": (0.5, 0.004), "small": (0.5, 0.001)},
    {"big": (1.0, 0.010), "mid": (1.0, None), "small": (1.0, 0.001)},
]

#: Two models, no ties: strong 0.75, weak 0.25; the oracle takes strong, strong,
#: weak, strong -> quality 1.0 at strong share 0.75.
TWO_MODELS: list[Outcomes] = [
    {"strong": (1.0, 0.010), "weak": (0.0, 0.001)},
    {"strong": (1.0, 0.010), "weak": (0.0, 0.001)},
    {"strong": (0.0, 0.010), "weak": (1.0, 0.001)},
    {"strong": (1.0, 0.010), "weak": (0.0, 0.001)},
]


def log_lines(
    rows: Sequence[Outcomes], prompt: str = "question {i}: what is {i} + {i}?"
) -> list[str]:
    """JSONL lines for ``rows`` (one per query), prompts numbered from 0."""
    lines = []
    for i, outcomes in enumerate(rows):
        record: dict[str, Any] = {
            "id": f"q{i}",
            "prompt": prompt.format(i=i),
            "task": "test",
            "outcomes": {m: {"quality": q, "cost": c} for m, (q, c) in outcomes.items()},
        }
        lines.append(json.dumps(record))
    return lines


@pytest.fixture
def three_models() -> list[Outcomes]:
    return THREE_MODELS


@pytest.fixture
def two_models() -> list[Outcomes]:
    return TWO_MODELS


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (or raw lines) as a plain or gzip'd JSONL log; returns its path."""

    def write(
        rows: Sequence[Outcomes] | None = None,
        *,
        lines: Sequence[str] | None = None,
        name: str = "log.jsonl",
        gz: bool = False,
    ) -> Path:
        text = "\n".join(lines if lines is not None else log_lines(rows or [])) + "\n"
        path = tmp_path / name
        if gz:
            path.write_bytes(gzip.compress(text.encode("utf-8")))
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write
