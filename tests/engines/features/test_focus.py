"""question_focus: the tail of a long prompt, whole paragraphs, bounded work."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from conduit.engines.features._focus import question_focus

EXAMPLE = (
    "Question: A train leaves the station at {i} o'clock and travels at sixty miles per hour "
    "for three hours. How far does it travel before it stops for fuel?\nAnswer: 180 miles."
)
QUESTION = "Question: What is the capital of the country whose flag is red and white?\nAnswer:"


def few_shot(n: int = 12) -> str:
    return "\n\n".join([EXAMPLE.format(i=i) for i in range(n)] + [QUESTION])


def test_few_shot_prompt_keeps_the_tail_paragraphs() -> None:
    prompt = few_shot()
    focus = question_focus(prompt)
    assert focus.endswith(QUESTION)
    assert EXAMPLE.format(i=0) not in focus  # the first examples are dropped
    assert 256 <= len(focus) <= 1200
    paragraphs = prompt.split("\n\n")
    assert all(p in paragraphs for p in focus.split("\n\n"))  # whole paragraphs only


def test_takes_paragraphs_until_min_chars() -> None:
    prompt = few_shot()
    focus = question_focus(prompt, max_chars=1000, min_chars=300)
    kept = focus.split("\n\n")
    assert len(focus) >= 300
    assert len("\n\n".join(kept[1:])) < 300  # one paragraph fewer would not have been enough


def test_never_exceeds_max_chars() -> None:
    assert len(question_focus(few_shot(), max_chars=400, min_chars=390)) <= 400


def test_short_text_is_unchanged_apart_from_surrounding_whitespace() -> None:
    assert question_focus("What is 2 + 2?") == "What is 2 + 2?"
    assert question_focus("  two\n\nparagraphs \n") == "two\n\nparagraphs"
    text = "x" * 1200
    assert question_focus(text) == text


def test_windows_line_endings_separate_paragraphs() -> None:
    prompt = "\r\n\r\n".join(["example " * 100, "example " * 100, QUESTION])
    assert question_focus(prompt, max_chars=500, min_chars=10) == QUESTION


def test_one_huge_paragraph_keeps_its_end_from_a_word_break() -> None:
    text = " ".join(f"word{i}" for i in range(2000))
    focus = question_focus(text)
    assert len(focus) <= 1200
    assert text.endswith(focus)
    assert re.fullmatch(r"word\d+", focus.split(" ")[0])  # starts at a whole word
    assert f" {focus.split(' ')[0]} " in text


def test_one_huge_paragraph_without_spaces_keeps_its_last_max_chars() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(5000))
    assert question_focus(text) == text[-1200:]


def test_megabyte_texts_are_bounded() -> None:
    texts = {
        "one paragraph": "lorem ipsum " * 90_000 + QUESTION,
        "many paragraphs": few_shot(6000),
        "blank lines": "\n\n" * 500_000 + QUESTION,
        "short paragraphs": "ok\n\n" * 250_000 + QUESTION,
    }
    for label, text in texts.items():
        assert len(text) >= 1_000_000, label
        start = time.perf_counter()
        focus = question_focus(text)
        elapsed = time.perf_counter() - start
        assert len(focus) <= 1200, label
        assert focus.endswith(QUESTION), label
        assert elapsed < 0.5, f"{label}: {elapsed:.3f} s"


def _reference(text: str, max_chars: int, min_chars: int) -> str:
    """The same rule over the whole text, without the widening window."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    taken: list[str] = []
    size = 0
    for paragraph in reversed(re.split(r"\n[ \t\r\f\v]*\n", text)):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        grown = size + len(paragraph) + (2 if taken else 0)  # the length once joined
        if grown > max_chars:
            if not taken:
                tail = paragraph[-max_chars:]
                cut = re.compile(r"\s").search(tail, 0, 64)
                taken.append(tail[cut.end() :].lstrip() if cut else tail)
            break
        taken.append(paragraph)
        size = grown
        if size >= min_chars:
            break
    return "\n\n".join(reversed(taken))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab \n\r\t", max_size=900),
    max_chars=st.integers(1, 80),
    min_chars=st.integers(0, 80),
)
def test_window_gives_the_same_focus_as_the_whole_text(
    text: str, max_chars: int, min_chars: int
) -> None:
    assert question_focus(text, max_chars, min_chars) == _reference(text, max_chars, min_chars)
