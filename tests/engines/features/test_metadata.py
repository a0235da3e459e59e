"""metadata_features: length and the code, math and question flags."""

from __future__ import annotations

import itertools
import time

import pytest

from conduit.engines.features import _metadata
from conduit.engines.features._metadata import METADATA_NAMES, metadata_features

FLAGS = [
    # (text, (code, math, question))
    ("Hello there.", (0, 0, 0)),
    ("```python\nprint(1)\n```", (1, 0, 0)),
    ("def add(a, b):\n    pass", (1, 0, 0)),
    ("class Foo:\n    pass", (1, 0, 0)),
    ("#include <stdio.h>", (1, 0, 0)),
    ("int x = f(y);\nint z = 1;", (1, 0, 0)),
    ("if (ok) {\n  go()\n}", (1, 0, 0)),
    ("  }\n", (1, 0, 0)),
    ("const f = (a) => a", (1, 0, 0)),
    ("Compute 12 * 7", (0, 1, 0)),
    ("Simplify \\frac{a}{b}", (0, 1, 0)),
    ("Let $x$ be real", (0, 1, 0)),
    ("Take the sqrt of two", (0, 1, 0)),
    ("Solve the equation for x", (0, 1, 0)),
    ("Is it raining", (0, 0, 0)),
    ("Is it raining?", (0, 0, 1)),
    ("explain photosynthesis", (0, 0, 1)),
    ("Some context.\n   How does it work", (0, 0, 1)),
    ("The whole story", (0, 0, 0)),  # 'who' inside a word is not a question
    ("What is 2+2?", (0, 1, 1)),
    ("def area(r):\n    return 3.14 * r ** 2\nWhy is this slow?", (1, 0, 1)),
]


@pytest.mark.parametrize(("text", "flags"), FLAGS)
def test_flags(text: str, flags: tuple[int, int, int]) -> None:
    x = metadata_features(text)
    assert x.shape == (len(METADATA_NAMES),)
    assert tuple(x[1:]) == flags


# Units from which every alternative of the code and math patterns has a match of at most
# three units ("1>1", "def" " ", "$" "x" "$", "#" "include", ...), and near misses around it.
UNITS = ["1", "x", " ", "\t", "\n", *";{}$\\-+*/^=<>#`", "def", "class", "return", "import"]
UNITS += ["function", "include", "frac", "sum", "int", "sqrt", "equation"]


@pytest.mark.parametrize("name", ["CODE", "MATH"])
def test_a_flag_skipped_for_want_of_hints_is_the_flag_its_pattern_gives(name: str) -> None:
    pattern, hints = getattr(_metadata, f"_{name}"), getattr(_metadata, f"_{name}_HINTS")
    for size in range(4):
        for units in itertools.product(UNITS, repeat=size):
            text = "".join(units)
            assert _metadata._found(pattern, hints, text) is (pattern.search(text) is not None)


def test_length_grows_with_the_text_and_saturates_at_4k_tokens() -> None:
    lengths = [metadata_features("a" * n)[0] for n in (0, 10, 100, 1000, 10_000)]
    assert lengths[0] == 0.0
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    assert metadata_features("a" * 4 * 4096)[0] == pytest.approx(1.0)
    assert metadata_features("a" * 1_000_000)[0] == 1.0


def test_flags_of_a_huge_prompt_read_both_ends() -> None:
    filler = "plain words " * 100_000
    assert tuple(metadata_features("```\ncode\n```\n" + filler)[1:]) == (1, 0, 0)
    assert tuple(metadata_features(filler + "\nWhat now")[1:]) == (0, 0, 1)


@pytest.mark.parametrize(
    "text",
    ["\n" * 1_000_000, " \n" * 500_000, ";" + " " * 1_000_000 + "x", "1" + " " * 1_000_000],
    ids=["newlines", "space-newlines", "semicolon-spaces", "digit-spaces"],
)
def test_pathological_megabyte_inputs_are_fast(text: str) -> None:
    start = time.perf_counter()
    metadata_features(text)
    assert time.perf_counter() - start < 0.5
