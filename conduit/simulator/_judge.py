"""The simulator's judge: it grades the judge requests Conduit makes with the log's own labels.

A request whose user message holds :mod:`conduit.judge`'s markers is a judge
request. The simulator reads the graded question and answer(s), recognises which
logged model wrote each answer (every simulated answer names its model), and
answers as a judge would, from that model's logged quality on that question:

- a grade: ``{"grade": 1 + round(4 * q), "reason": ...}``;
- a pairwise verdict: the answer of higher logged quality wins, equal is a tie.

Like a real judge it is imperfect, by configuration: ``noise`` is the share of
answers whose quality it reads wrong (flipped to ``1 - q``: a right answer
called wrong and the reverse), ``length_bias`` adds up to that much quality to
long answers (``min(characters / 2000, 1)`` of it), and ``position_bias`` is the
share of pairwise verdicts that say "A" whatever the answers (the order bias
that position swapping cancels). Every draw is a hash of the seed and the
request's text, so a judge request gets the same verdict whenever it is made.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from conduit._errors import ConfigurationError, UnknownModelError
from conduit.judge import read_judge_request
from conduit.simulator._catalog import Catalog

__all__ = ["SimulatedJudge"]

_ANSWER = re.compile(r"^Simulated answer from (.+)\.$")


def _share(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SimulatedJudge:
    """How the simulator grades: ``noise``, ``length_bias``, ``position_bias``, ``seed``."""

    noise: float = 0.0
    length_bias: float = 0.0
    position_bias: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _share("judge noise", self.noise)
        _share("judge length bias", self.length_bias)
        _share("judge position bias", self.position_bias)

    def _draw(self, *parts: str) -> float:
        digest = hashlib.sha256("\x00".join((str(self.seed), *parts)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def _quality(self, catalog: Catalog, query: str, answer: str) -> float | None:
        """What this judge believes the answer's quality is (None: not a simulated answer)."""
        found = _ANSWER.match(answer.strip())
        if found is None:
            return None
        try:
            q = catalog.answer(found.group(1), query).quality
        except UnknownModelError:
            return None
        if self._draw("noise", query, answer) < self.noise:
            q = 1.0 - q
        return min(q + self.length_bias * min(len(answer) / 2000.0, 1.0), 1.0)

    def reply(self, catalog: Catalog, text: str) -> str | None:
        """The judge's reply to a user message, or None when it is no judge request."""
        request = read_judge_request(text)
        if request is None:
            return None
        query, answers = request
        if len(answers) == 1:
            q = self._quality(catalog, query, answers[0])
            grade = 3 if q is None else 1 + round(4 * q)
            return json.dumps({"grade": grade, "reason": "graded from the routing log"})
        qa, qb = (self._quality(catalog, query, a) for a in answers)
        if self._draw("position", query, *answers) < self.position_bias:
            winner = "A"
        elif qa is None or qb is None or qa == qb:
            winner = "tie"
        else:
            winner = "A" if qa > qb else "B"
        return json.dumps({"winner": winner, "reason": "compared from the routing log"})
