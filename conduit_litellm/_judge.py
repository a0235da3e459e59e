"""The judge's LiteLLM side: a background worker that grades sampled answers through LiteLLM.

The feedback logger tells the worker of every routed success
(:attr:`ConduitFeedbackLogger.success_hook`), after LiteLLM has returned the
response to the caller. The worker checks for a regeneration, asks the
:class:`conduit.judge.Judge` whether to grade the answer, and queues the job; a
daemon thread runs the judge's calls through the same ``litellm.Router``
(``router.completion``: LiteLLM's keys, retries and cost tracking) and hands the
grade to the logger, which learns it unless explicit feedback outranks it
(:meth:`ConduitFeedbackLogger.hold_quality`).

Every call the judge makes carries ``metadata[JUDGE_KEY] = True``: the strategy
and the plugin do not route it (LiteLLM's own choice serves it) and the logger
learns nothing from it, since it carries no decision. The question and the
answer go only to the judge's model group, and, for a shadow comparison, the
question to the reference model.

Nothing here runs on the request path: :meth:`JudgeWorker.observe` does a few
dict look-ups and a non-blocking queue put, and never raises.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from conduit._counters import routing_saved, source_counts
from conduit._redact import describe_error
from conduit.engines.router import Router
from conduit.judge import REGENERATED, Judge, JudgeJob, JudgeReply, Messages, Regenerations
from conduit.metrics import Metrics
from conduit_litellm import _compat
from conduit_litellm.feedback import (
    DEPLOYMENT_KEY,
    MODEL_KEY,
    ConduitFeedbackLogger,
    _mapping,
    _metadata,
)
from conduit_litellm.utils import query_text

__all__ = ["JUDGE_KEY", "JudgeWorker", "is_judge_call", "routing_saved"]

logger = logging.getLogger("conduit_litellm.judge")

#: Request-metadata key that marks the judge's own calls (never routed, never learned).
JUDGE_KEY = "conduit_judge"
#: The judge's counters the router keeps with its learning (as ``judge_<name>``).
_COUNTED = ("sampled", "garbage", "errors", "timeouts", "paused_budget", "paused_queue")
_EVENTS = ("sampled", "graded", "garbage", "errors", "timeouts", "paused_budget", "paused_queue")


def is_judge_call(request_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether a request is one of the judge's own calls (marked in its metadata)."""
    if not request_kwargs:
        return False
    for key in ("metadata", "litellm_metadata"):
        meta = request_kwargs.get(key)
        if isinstance(meta, Mapping) and meta.get(JUDGE_KEY) is True:
            return True
    return False


def _answer_text(response: Any) -> str | None:
    choices = getattr(response, "choices", None)
    if choices is None and isinstance(response, Mapping):
        choices = response.get("choices")
    if not choices:
        return None
    message = getattr(choices[0], "message", None)
    if message is None and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
    content = getattr(message, "content", None)
    if content is None and isinstance(message, Mapping):
        content = message.get("content")
    return content if isinstance(content, str) and content.strip() else None


def _conversation(kwargs: Mapping[str, Any]) -> str | None:
    """LiteLLM's ``litellm_session_id``, else the request's ``user``, else None."""
    params = _mapping(kwargs.get("litellm_params"))
    for source in (kwargs, params, _mapping(params.get("metadata"))):
        session = source.get("litellm_session_id")
        if isinstance(session, str) and session:
            return "session:" + session
    optional = _mapping(kwargs.get("optional_params"))
    for source in (kwargs, optional, params):
        user = source.get("user")
        if isinstance(user, str) and user:
            return "user:" + user
    return None


class JudgeWorker:
    """Grades sampled answers in a daemon thread and feeds the grades to ``feedback``.

    ``router`` returns the ``litellm.Router`` the judge's calls go through;
    ``conduit`` the Conduit router (for each decision's confidence); ``reference``
    the model (a deployment id, called as a specific deployment) a shadow comparison
    asks when the judge names none. ``regenerations`` (None: off) is the
    regeneration signal. ``loop`` (given: a router with routing plugins, the proxy,
    refuses sync calls) returns the event loop LiteLLM serves requests on: the
    judge's calls are ``router.acompletion`` tasks on it (LiteLLM's logging worker
    is bound to that loop), awaited from the worker thread; else ``router.completion``
    in the worker thread. Call :meth:`start` once routing begins and
    :meth:`close` at the end.
    """

    def __init__(
        self,
        judge: Judge | None,
        *,
        feedback: ConduitFeedbackLogger,
        router: Callable[[], Any],
        conduit: Callable[[], Router | None],
        reference: Callable[[], str | None] = lambda: None,
        regenerations: Regenerations | None = None,
        metrics: Metrics | None = None,
        loop: Callable[[], asyncio.AbstractEventLoop | None] | None = None,
    ) -> None:
        self.judge = judge
        self._loop = loop
        self.feedback = feedback
        self.regenerations = regenerations
        self.metrics = metrics
        self._router = router
        self._conduit = conduit
        self._reference = reference
        self._jobs: queue.SimpleQueue[JudgeJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: the judge's counters as last added to the router's stored counters
        self._stored: dict[str, float] = {}
        self._counts = {
            "regenerations": 0.0,
            "judge_learned": 0.0,
            "judge_outranked": 0.0,
            "worker_errors": 0.0,
        }

    # -- the request side: cheap, never raises ---------------------------------------------------
    def observe(
        self, kwargs: Mapping[str, Any], response: Any, decision_id: str, judgeable: bool
    ) -> None:
        """The feedback logger's success hook: regeneration check, then maybe queue a job."""
        if is_judge_call(kwargs) or is_judge_call(_mapping(kwargs.get("litellm_params"))):
            return
        messages = kwargs.get("messages")
        listed = (
            [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
        )
        if self.regenerations is not None and listed:
            earlier = self.regenerations.observe(_conversation(kwargs), listed, decision_id)
            if earlier is not None:
                self._count("regenerations")
                self.feedback.hold_quality(
                    earlier, REGENERATED, "regenerated by the user",
                    source="regeneration", since=time.monotonic(),
                )  # fmt: skip
        judge = self.judge
        if judge is None or not judgeable or self._thread is None:
            return
        answer = _answer_text(response)
        if answer is None:
            return
        fields = _metadata(kwargs)[0]
        model = str(fields.get(DEPLOYMENT_KEY, fields.get(MODEL_KEY, "")))
        conduit = self._conduit()
        decision = None
        if conduit is not None:
            try:
                decision = conduit.explain(decision_id)
            except Exception:  # an old decision: sampled without its uncertainty
                decision = None
        before = judge.stats()
        job = judge.offer(
            decision_id, query_text(listed), answer, model=model, decision=decision,
            reference=self._reference(),
        )  # fmt: skip
        self._report(before, judge.stats())
        if job is not None:
            self._jobs.put(job)

    # -- the worker thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (once; safe to repeat)."""
        with self._lock:
            if self._thread is not None or self.judge is None:
                return
            self._thread = threading.Thread(target=self._work, name="conduit-judge", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs (for up to ``timeout`` seconds) and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        thread.join(timeout)

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while (job := self._jobs.get()) is not None:
                try:
                    loop.run_until_complete(self._grade(job))
                except (Exception, asyncio.CancelledError) as exc:  # a bug, or LiteLLM's loop
                    # closed under a call in flight: never the end of the worker
                    self._count("worker_errors")
                    logger.warning(
                        "Judging decision %s failed: %s", job.decision_id, describe_error(exc)
                    )
        finally:  # the executor thread of the judge's sync calls too, then the loop
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _grade(self, job: JudgeJob) -> None:
        judge = self.judge
        assert judge is not None
        before = judge.stats()
        grade = await judge.grade(job, self._ask)
        self._report(
            before, judge.stats(), grade.quality if grade else None, job.shadow is not None
        )
        if grade is None:
            return
        outcome = self.feedback.hold_quality(
            grade.decision_id, grade.quality, f"graded by {judge.model}",
            source=grade.source, since=job.since,
        )  # fmt: skip
        self._count("judge_outranked" if outcome == "outranked" else "judge_learned")

    async def _ask(self, model: str, messages: Messages, fmt: dict[str, Any] | None) -> JudgeReply:
        if self._loop is None:
            return await asyncio.to_thread(self._complete, model, messages, fmt)
        serving = self._loop()
        if serving is None or serving.is_closed():
            raise RuntimeError("LiteLLM's event loop is not running")
        router, kwargs = self._call(model, messages, fmt)
        running = asyncio.run_coroutine_threadsafe(router.acompletion(**kwargs), serving)
        return self._reply(await asyncio.wrap_future(running))

    def _complete(self, model: str, messages: Messages, fmt: dict[str, Any] | None) -> JudgeReply:
        router, kwargs = self._call(model, messages, fmt)
        return self._reply(router.completion(**kwargs))

    def _call(
        self, model: str, messages: Messages, fmt: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        """The router and the keyword arguments of one judge (or reference) call."""
        router = self._router()
        if router is None:
            raise RuntimeError("no litellm.Router to send the judge's calls through")
        judge = self.judge
        assert judge is not None
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "metadata": {JUDGE_KEY: True},
            "timeout": judge.timeout,
        }
        if fmt is not None:
            kwargs["response_format"] = fmt
        if model != judge.model:  # the shadow reference: one deployment, by id
            kwargs["specific_deployment"] = True
        return router, kwargs

    @staticmethod
    def _reply(response: Any) -> JudgeReply:
        cost = _compat.hidden_param(response, "response_cost")
        return JudgeReply(
            _answer_text(response) or "", float(cost) if isinstance(cost, (int, float)) else None
        )

    # -- counters --------------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _report(
        self,
        before: Mapping[str, float],
        after: Mapping[str, float],
        quality: float | None = None,
        shadow: bool = False,
    ) -> None:
        """Tell the router (its stored counters) and the metrics what changed in the judge's
        counters."""
        calls = int(after["calls"] - before["calls"])
        cost = after["cost"] - before["cost"]
        changed = [e for e in _EVENTS if after[e] > before[e]]
        self._store_counts(after)
        if self.metrics is None:
            return
        if after["shadow_graded"] > before["shadow_graded"]:
            changed.append("graded")
        for i, event in enumerate(changed):
            self.metrics.judge(
                event,  # type: ignore[arg-type]
                calls=calls if i == 0 else 0,
                cost=cost if i == 0 else None,
                quality=quality if event == "graded" else None,
                source="shadow" if shadow else "judge",
            )

    def _store_counts(self, now: Mapping[str, float]) -> None:
        """Add to the router's stored counters what the judge counted since the last time
        (grades and offers run in two threads: each count is added once)."""
        conduit = self._conduit()
        if conduit is None:
            return
        with self._lock:
            grown = {k: now[k] - self._stored.get(k, 0.0) for k in (*_COUNTED, "calls", "cost")}
            self._stored.update({k: max(now[k], self._stored.get(k, 0.0)) for k in grown})
        for name, amount in grown.items():
            if amount > 0:
                conduit.count(f"judge_{name}", amount)

    def stats(self, conduit: Router | None = None) -> dict[str, float]:
        """``judge.*`` counters and judge cost (this process), and, given the router, quality
        labels by source (``feedback.explicit|judge|shadow|regeneration|automatic``, and
        ``feedback.none``: answers no automatic signal graded; the router's counters, summed
        across replicas through its store) and what routing saved (``routing_saved``)."""
        out: dict[str, float] = {}
        if self.judge is not None:
            out.update({f"judge.{k}": v for k, v in self.judge.stats().items()})
        with self._lock:
            out.update({f"judge.{k}": v for k, v in self._counts.items()})
        if conduit is not None:
            counts = source_counts(conduit.counters.snapshot())
            out.update({f"feedback.{k}": float(v) for k, v in counts.items()})
            saved = routing_saved(conduit.stats())
            if saved is not None:
                out["routing_saved"] = saved
        return out
