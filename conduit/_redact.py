"""Masking secrets in text that may reach a log: API keys, bearer tokens, passwords.

Conduit logs ids, model names and numbers, never request kwargs or
``litellm_params``. What it cannot control is the text of an exception raised
by a library it calls (LiteLLM, a database driver), so such text goes through
:func:`redact_text` before it is logged.

>>> redact_text("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwx")
'Incorrect API key provided: sk-***'
>>> redact_text("headers={'Authorization': 'Bearer abc.def'}, api_key=xyz")
"headers={'Authorization': '***'}, api_key=***"
>>> redact_text("postgresql://bob:hunter2@db/x?password=hunter2")
'postgresql://bob:***@db/x?password=***'
"""

from __future__ import annotations

import re

__all__ = ["describe_error", "redact_text"]

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer x" and "'Authorization': 'Basic x'": the whole credential
    (
        re.compile(
            r"""(?i)(authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}&]+"""
        ),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{4,}"), rf"\g<1> {MASK}"),
    # name=value and "name": "value" for the usual names of a secret
    (
        re.compile(
            r"""(?i)\b((?:[a-z0-9]+[_-])?(?:api[_-]?key|secret|password|passwd|token|"""
            r"""access[_-]?key|private[_-]?key|credentials?)["']?\s*[:=]\s*["']?)[^\s"',;}&]+"""
        ),
        rf"\g<1>{MASK}",
    ),
    # keys by their well-known shapes (OpenAI, Anthropic, AWS, Google)
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{15,}"), f"sk-{MASK}"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), MASK),
    # user:password@ in a URL
    (re.compile(r"(://[^/\s:@]*:)[^/\s@]+@"), rf"\g<1>{MASK}@"),
)


def redact_text(text: str) -> str:
    """``text`` with every secret-looking part replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def describe_error(exc: BaseException) -> str:
    """``Type: message (file:line)`` of an exception, secrets masked: safe to log.

    Used instead of ``exc_info=True`` where the exception comes from another
    library, whose message may quote a key; the innermost frame still says where.
    """
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" ({tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})"
    return redact_text(f"{type(exc).__name__}: {exc}{where}")
