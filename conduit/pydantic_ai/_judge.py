"""The sampled judge for ConduitModel: grades a run's final answer with a PydanticAI model.

When an agent run ends with its output accepted, :class:`RunJudge` offers the
run's last response to the :class:`conduit.judge.Judge`; a sampled one is graded
in a background task on the agent's event loop (the run returns at once), by the
judge's own PydanticAI model (the judge's ``model``: a name ``infer_model``
knows, such as ``"openai:gpt-4o-mini"``, or one of the routed models' names). Its
grade is learned as the decision's quality, source ``judge`` (``shadow`` for a
pairwise comparison with the reference model); a response that was not sampled
gets ``success_quality`` as without a judge, and so does one the judge failed to
grade (garbage output, an error, a timeout: counted). Explicit feedback given before the
grade arrives wins (the router learns a decision's quality once). The prompt and
the answer go only to the judge's model (and, for a shadow comparison, the prompt
to the reference model).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from cachetools import FIFOCache
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters

from conduit._redact import describe_error
from conduit.engines._outcomes import Price
from conduit.engines.router import Router
from conduit.judge import Judge, JudgeJob, JudgeReply, Messages
from conduit.pydantic_ai._prices import cost_of

__all__ = ["RunJudge"]

logger = logging.getLogger("conduit.pydantic_ai")

#: The judge's counters the router keeps with its learning (as ``judge_<name>``).
_COUNTED = (
    "sampled", "garbage", "errors", "timeouts", "paused_budget", "paused_queue", "calls", "cost"
)  # fmt: skip
#: Answers remembered for the judge (the last response of each recent request).
MAX_ANSWERS = 1000


def _as_request(messages: Messages) -> list[ModelMessage]:
    parts: list[Any] = [
        SystemPromptPart(content=str(m["content"]))
        if m.get("role") == "system"
        else UserPromptPart(content=str(m["content"]))
        for m in messages
    ]
    return [ModelRequest(parts=parts)]


def answer_text(response: ModelResponse) -> str | None:
    """The text of a response, or its tool calls' arguments (structured output) as JSON."""
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart)).strip()
    if not text:
        calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
        text = "\n".join(p.args_as_json_str() for p in calls)
    return text or None


class RunJudge:
    """Offers final answers to ``judge``, grades the sampled ones in the background, and
    teaches ``router`` the grades (and its counters)."""

    def __init__(
        self,
        judge: Judge,
        *,
        router: Router,
        models: Mapping[str, Model],
        resolve: Callable[[str], Model],
        prices: Mapping[str, Price],
        fallback: Callable[[str], object] = lambda decision_id: None,
    ) -> None:
        self.judge = judge
        self._fallback = fallback
        self.router = router
        self._models = dict(models)
        self._resolve = resolve
        self._prices = prices
        self._answers: FIFOCache[str, tuple[str, str, str]] = FIFOCache(MAX_ANSWERS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stored: dict[str, float] = {}
        self._lock = threading.Lock()

    def model(self, name: str) -> Model:
        """The PydanticAI model a judge (or reference) call goes to."""
        if name not in self._models:
            self._models[name] = self._resolve(name)
        return self._models[name]

    def remember(self, decision_id: str, query: str, response: ModelResponse, arm: str) -> None:
        """Keep what the judge would need to grade this response (bounded)."""
        answer = answer_text(response)
        with self._lock:
            if answer is None:
                self._answers.pop(decision_id, None)
            else:
                self._answers[decision_id] = (query, answer, arm)

    def offer(self, decision_id: str) -> bool:
        """Whether the run's final response ``decision_id`` is being judged (then it gets no
        ``success_quality``); starts the grading in the background. Never raises."""
        try:
            with self._lock:
                found = self._answers.pop(decision_id, None)
            if found is None:
                return False
            query, answer, arm = found
            try:
                decision = self.router.explain(decision_id)
            except Exception:  # an old decision: sampled without its uncertainty
                decision = None
            job = self.judge.offer(
                decision_id, query, answer, model=arm, decision=decision,
                reference=self._dearest(),
            )  # fmt: skip
            self._store_counts()
            if job is None:
                return False
            task = asyncio.get_running_loop().create_task(self._grade(job))
        except Exception as exc:  # the judge must never fail the agent's run
            logger.warning("judge not asked about %s: %s", decision_id, describe_error(exc))
            return False
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def wait(self) -> None:
        """Until every grade in progress is in (and learned)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _dearest(self) -> str | None:
        costs = {
            m: s.mean_cost for m, s in self.router.stats().models.items() if s.mean_cost is not None
        }
        return max(costs, key=lambda m: costs[m]) if costs else None

    async def _grade(self, job: JudgeJob) -> None:
        try:
            grade = await self.judge.grade(job, self._ask)
            self._store_counts()
            if grade is None:  # the judge failed (counted): the run's own verdict stands
                self._fallback(job.decision_id)
            else:
                self.router.update_sync(
                    grade.decision_id, quality=grade.quality, source=grade.source
                )
        except Exception as exc:  # a background task: logged, never raised
            logger.warning("judging decision %s failed: %s", job.decision_id, describe_error(exc))

    async def _ask(self, name: str, messages: Messages, fmt: dict[str, Any] | None) -> JudgeReply:
        """One judge (or reference) call; ``fmt`` is not used: the rubric asks for the JSON."""
        model = self.model(name)
        response = await model.request(_as_request(messages), None, ModelRequestParameters())
        return JudgeReply(answer_text(response) or "", cost_of(response, self._prices.get(name)))

    def _store_counts(self) -> None:
        now = self.judge.stats()
        with self._lock:
            grown = {k: now[k] - self._stored.get(k, 0.0) for k in _COUNTED}
            self._stored.update({k: max(now[k], self._stored.get(k, 0.0)) for k in grown})
        for name, amount in grown.items():
            if amount > 0:
                self.router.count(f"judge_{name}", amount)
