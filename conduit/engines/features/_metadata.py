"""Cheap, model-free features of a prompt: how long, whether it holds code or math."""

from __future__ import annotations

import math
import re

import numpy as np

from conduit.engines.bandits._base import FloatArray

__all__ = ["METADATA_NAMES", "metadata_features"]

METADATA_NAMES = ("length", "code", "math", "question")
_SCAN_CHARS = 16_384  # the flags read this many characters from each end of a prompt

# Whitespace runs are matched within one line ([ \t]), never across lines (\s): an
# anchored \s* restarts at every line start, which is quadratic in a text of blank lines.
_CODE = re.compile(
    # a line ending in ; or {, or a lone }: not LaTeX's \frac{a}{b}
    r"```|\bdef |\bclass |\breturn\b|\bimport |#include|=>|\bfunction\b"
    r"|[;{][ \t\r]*$|^[ \t]*\}[ \t\r]*$",
    re.M,
)
_MATH = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\\frac|\\sum|\\int|\$[^$]+\$|\bsqrt\b|\bequation\b")
# Every match of a pattern holds one of its hints, so a text holding none cannot match: a
# substring test (C speed) skips the regex, which tries each alternative at every position
# (~0.3 ms on a 2 KB prompt), for the many prompts that hold none. The flags are the same.
_CODE_HINTS = ("```", "def ", "class ", "return", "import ", "#include", "=>", "function", *";{}")
_MATH_HINTS = (*"-+*/^=<>", "\\", "$", "sqrt", "equation")
_QUESTION = re.compile(
    r"\?|^[ \t]*(what|why|how|which|who|when|where|explain|describe)\b", re.I | re.M
)


def metadata_features(text: str) -> FloatArray:
    """``length`` (log tokens, 0..1 at 4k tokens), then 0/1 flags for code, math and a question.

    ``text`` is the whole prompt, so ``length`` tracks what the prompt costs.

    >>> metadata_features("What is 2+2?").round(2).tolist()
    [0.17, 0.0, 1.0, 1.0]
    """
    tokens = len(text) / 4.0
    length = min(math.log1p(tokens) / math.log1p(4096.0), 1.0)
    if len(text) > 2 * _SCAN_CHARS:  # flags from both ends: a huge prompt costs no more
        text = text[:_SCAN_CHARS] + "\n" + text[-_SCAN_CHARS:]
    return np.array(
        [
            length,
            1.0 if _found(_CODE, _CODE_HINTS, text) else 0.0,
            1.0 if _found(_MATH, _MATH_HINTS, text) else 0.0,
            1.0 if _QUESTION.search(text) else 0.0,
        ]
    )


def _found(pattern: re.Pattern[str], hints: tuple[str, ...], text: str) -> bool:
    """Whether ``pattern`` matches in ``text``; not searched when ``text`` holds no hint."""
    return any(hint in text for hint in hints) and pattern.search(text) is not None
