"""What the simulator answers: each logged model's quality and cost for each logged prompt.

A routing log knows, per prompt, how good and how expensive every model's answer
was. The catalog turns that into answers a chat-completions endpoint can give:
token counts (``ceil(characters / 4)``, the estimate Conduit itself uses), a
per-model price per token derived from the log so that LiteLLM's computed cost
matches the logged cost on average, and, for a prompt the log does not hold, a
deterministic draw from the model's logged qualities.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conduit._errors import ConfigurationError, UnknownModelError
from conduit.replay.log import LogRecord, read_log

__all__ = ["Answer", "Catalog", "count_tokens"]

#: The text of every simulated answer; short, so completion tokens stay small.
ANSWER_TEMPLATE = "Simulated answer from {model}."


def count_tokens(text: str) -> int:
    """Tokens of a text as ``ceil(characters / 4)``, at least one.

    >>> count_tokens("abcd"), count_tokens("abcde"), count_tokens("")
    (1, 2, 1)
    """
    return max(math.ceil(len(text) / 4), 1)


@dataclass(frozen=True, slots=True)
class Answer:
    """One simulated completion and the logged outcome it stands for."""

    model: str
    content: str
    quality: float
    cost: float
    prompt_tokens: int
    completion_tokens: int
    known_prompt: bool
    record_id: str | None


class Catalog:
    """Logged outcomes indexed by prompt, plus per-model token prices derived from them.

    ``aliases`` maps extra model names (say ``gpt-4o-mini``) to a logged model whose
    outcomes they answer with, so code written for real model names can run unchanged.
    """

    def __init__(
        self, *, records: Sequence[LogRecord], aliases: Mapping[str, str] | None = None
    ) -> None:
        if not records:
            raise ConfigurationError("the simulator needs at least one logged record")
        self.logged_models: tuple[str, ...] = tuple(sorted(records[0].outcomes))
        self.aliases: dict[str, str] = dict(aliases or {})
        for alias, target in self.aliases.items():
            if target not in self.logged_models:
                raise ConfigurationError(
                    f"alias {alias!r} points to {target!r}, which is not a model of the log "
                    f"({', '.join(self.logged_models)})"
                )
        self._by_prompt: dict[str, LogRecord] = {}
        for record in records:
            self._by_prompt.setdefault(record.prompt, record)
        self._qualities: dict[str, list[float]] = {m: [] for m in self.logged_models}
        cost_sum = dict.fromkeys(self.logged_models, 0.0)
        token_sum = dict.fromkeys(self.logged_models, 0)
        for record in records:
            for model, outcome in record.outcomes.items():
                self._qualities[model].append(outcome.quality)
                if outcome.cost is not None:
                    cost_sum[model] += outcome.cost
                    token_sum[model] += count_tokens(record.prompt) + self._completion_tokens(model)
        #: USD per token (input and output alike): the mean logged cost per counted token.
        self.price_per_token: dict[str, float] = {
            m: cost_sum[m] / token_sum[m] if token_sum[m] else 0.0 for m in self.logged_models
        }

    @classmethod
    def from_log(
        cls, path: str | Path, *, limit: int | None = None, aliases: Mapping[str, str] | None = None
    ) -> Catalog:
        return cls(records=read_log(path, limit), aliases=aliases)

    @property
    def models(self) -> tuple[str, ...]:
        """Every name the simulator answers to: the log's models, then the aliases."""
        return self.logged_models + tuple(a for a in self.aliases if a not in self.logged_models)

    def __len__(self) -> int:
        return len(self._by_prompt)

    def resolve(self, model: str) -> str:
        """The logged model a requested name answers as."""
        if model in self._qualities:
            return model
        try:
            return self.aliases[model]
        except KeyError:
            raise UnknownModelError(f"the model {model!r} does not exist") from None

    @staticmethod
    def _completion_tokens(model: str) -> int:
        return count_tokens(ANSWER_TEMPLATE.format(model=model))

    def answer(self, model: str, prompt: str) -> Answer:
        """The logged outcome of ``model`` on ``prompt`` (exact text match).

        An unknown prompt gets a quality drawn from the model's logged qualities by a
        hash of (model, prompt), so the same question always gets the same answer.
        """
        logged = self.resolve(model)
        prompt_tokens = count_tokens(prompt)
        completion_tokens = self._completion_tokens(logged)
        priced = self.price_per_token[logged] * (prompt_tokens + completion_tokens)
        record = self._by_prompt.get(prompt)
        if record is not None:
            outcome = record.outcomes[logged]
            quality = outcome.quality
            cost = outcome.cost if outcome.cost is not None else priced
            record_id: str | None = record.id
        else:
            digest = hashlib.sha256(f"{logged}\x00{prompt}".encode()).digest()
            qualities = self._qualities[logged]
            quality = qualities[int.from_bytes(digest[:8], "big") % len(qualities)]
            cost, record_id = priced, None
        return Answer(
            model=model,
            content=ANSWER_TEMPLATE.format(model=logged),
            quality=quality,
            cost=cost,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            known_prompt=record is not None,
            record_id=record_id,
        )
