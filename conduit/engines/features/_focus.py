"""Choose the part of a prompt that carries the question.

MiniLM reads 256 tokens. A long few-shot prefix would fill them with the same
examples for every prompt and make all prompts look alike, so for a prompt
longer than the window Conduit embeds its last paragraphs (where the question
is): whole paragraphs from the end until at least ``min_chars``, never more
than ``max_chars``.
"""

from __future__ import annotations

import re

__all__ = ["question_focus"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")  # a blank line, also with \r\n or spaces
_WORD_BREAK = re.compile(r"\s")
_MAX_CUT = 64  # how far into a cut paragraph to look for a word break


def question_focus(text: str, max_chars: int = 1200, min_chars: int = 256) -> str:
    """The trailing paragraphs of a long ``text``; a short one unchanged.

    >>> question_focus("example one\\n\\nexample two\\n\\nthe question?", max_chars=30, min_chars=5)
    'the question?'
    >>> question_focus("short")
    'short'
    """
    text = text.strip()
    if len(text) <= max_chars:
        return text
    # Split only the end of the text, widening it when the paragraphs there are not
    # enough: a megabyte prompt costs about as little as a short one.
    window = max_chars + 2 * _MAX_CUT
    while True:
        start = max(len(text) - window, 0)
        focus = _take_tail(_PARAGRAPH_BREAK.split(text[start:]), start > 0, max_chars, min_chars)
        if focus is not None:
            return focus
        window *= 4


def _take_tail(pieces: list[str], first_is_cut: bool, max_chars: int, min_chars: int) -> str | None:
    """Whole paragraphs from the end; None if that needs the start of the cut first piece."""
    taken: list[str] = []
    size = 0
    for index in range(len(pieces) - 1, -1, -1):
        paragraph = pieces[index].strip()
        if not paragraph:
            continue
        grown = size + len(paragraph) + (2 if taken else 0)  # the length once joined
        if grown > max_chars:  # (true of a cut first piece, so of its whole paragraph, too)
            if not taken:  # one huge paragraph: keep its end, from a line or word break
                tail = paragraph[-max_chars:]
                cut = _WORD_BREAK.search(tail, 0, _MAX_CUT)
                taken.append(tail[cut.end() :].lstrip() if cut else tail)
            break
        if index == 0 and first_is_cut:
            return None
        taken.append(paragraph)
        size = grown
        if size >= min_chars:
            break
    return "\n\n".join(reversed(taken))
