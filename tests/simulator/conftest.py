"""A three-model routing log small enough to reason about answer by answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: prompt -> {model: (quality, cost)}
TINY_LOG = {
    "What is 2 + 2?": {"small": (1.0, 0.0001), "medium": (1.0, 0.0010), "large": (1.0, 0.0100)},
    "Prove Fermat's last theorem.": {
        "small": (0.0, 0.0002),
        "medium": (0.25, 0.0020),
        "large": (0.75, 0.0200),
    },
    "Name a colour.": {"small": (0.5, 0.0001), "medium": (1.0, 0.0011), "large": (1.0, 0.0090)},
}


@pytest.fixture
def tiny_log(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": prompt,
                "task": "tiny",
                "outcomes": {m: {"quality": q, "cost": c} for m, (q, c) in outcomes.items()},
            }
        )
        for i, (prompt, outcomes) in enumerate(TINY_LOG.items())
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
