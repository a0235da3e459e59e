"""When Conduit fails inside a request, LiteLLM's own choice serves it: counted, warned once.

A failure inside Conduit (a bug, a corrupt state, an embedding backend that
broke) must never fail the user's LLM request. The strategy and the proxy
plugin then leave the choice to LiteLLM's default behaviour and record the
failure here: one WARNING per kind of failure (the exception's type), not per
request, and a count per kind for ``stats()``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from conduit._redact import describe_error

__all__ = ["Fallbacks"]


class Fallbacks:
    """Per-kind counts of requests LiteLLM routed because Conduit failed; one warning per kind.

    >>> import logging
    >>> fallbacks = Fallbacks(logging.getLogger("doctest"), "LiteLLM's choice")
    >>> fallbacks.record(RuntimeError("boom")); fallbacks.record(RuntimeError("again"))
    >>> fallbacks.stats()
    {'fallbacks': 2.0, 'fallbacks.RuntimeError': 2.0}
    """

    def __init__(self, logger: logging.Logger, instead: str) -> None:
        self._logger = logger
        self._instead = instead
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        with self._lock:
            self._counts[kind] += 1
            first = self._counts[kind] == 1
        if first:
            self._logger.warning(
                "Conduit failed on a request (%s); %s serves it. Further %s failures are "
                "counted in stats()['fallbacks.%s'] without more warnings",
                describe_error(exc),
                self._instead,
                kind,
                kind,
            )

    def stats(self) -> dict[str, float]:
        """``fallbacks`` (all kinds) and ``fallbacks.<ExceptionType>`` for each kind seen."""
        with self._lock:
            out = {"fallbacks": float(sum(self._counts.values()))}
            out.update({f"fallbacks.{k}": float(v) for k, v in sorted(self._counts.items())})
        return out
