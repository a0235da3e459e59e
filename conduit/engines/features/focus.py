"""Choose the part of a prompt that carries the question.

MiniLM reads 256 tokens. A long few-shot prefix would fill them with the same
examples for every prompt and make all prompts look alike, so for a prompt
longer than the window Conduit embeds its last paragraphs (where the question
is): whole paragraphs from the end until at least ``min_chars``, never more
than ``max_chars``.
"""

from __future__ import annotations

__all__ = ["question_focus"]


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
    taken: list[str] = []
    size = 0
    for paragraph in reversed(text.split("\n\n")):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if size + len(paragraph) > max_chars:
            if not taken:  # one huge paragraph: keep its end, from a line or word break
                tail = paragraph[-max_chars:]
                cut = max(tail.find("\n"), tail.find(" "))
                taken.append(tail[cut + 1 :] if 0 <= cut < 64 else tail)
            break
        taken.append(paragraph)
        size += len(paragraph) + 2
        if size >= min_chars:
            break
    return "\n\n".join(reversed(taken))
