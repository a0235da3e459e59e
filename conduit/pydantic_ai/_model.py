"""ConduitModel: a PydanticAI model that lets a Conduit router pick which model answers.

It wraps several models the way PydanticAI's ``FallbackModel`` does (it is one,
so the agent treats it like any wrapper), but instead of a fixed order each
request asks the router, and every attempt is an outcome the router learns from:

- a provider error: ``error_quality`` (0) and the latency, then the next best model;
- a response: its cost (usage times price) and latency at once;
- its quality when the next request shows how it went: a retry part that rejects
  it (structured output or tool arguments that failed validation, an output
  validator's ``ModelRetry``) is ``retry_quality`` (0), anything else
  ``success_quality`` (1); the run's last response gets ``success_quality`` when
  the run ends with its output accepted, ``retry_quality`` when the agent gave up
  on it, or the quality given to :func:`record_feedback`; with a ``judge``
  (:class:`conduit.judge.Judge`), a sampled final answer gets the judge's grade
  instead (see :mod:`conduit.pydantic_ai._judge`).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_ai.exceptions import FallbackExceptionGroup, ModelAPIError, UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse, infer_model
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.settings import ModelSettings

from conduit import _validate
from conduit._errors import (
    ConduitError,
    ConfigurationError,
    DuplicateModelError,
    UnknownDecisionError,
)
from conduit._types import Constraints, Preferences, RoutingDecision
from conduit.engines._outcomes import Price
from conduit.engines.router import PriceLike, Router, _as_price
from conduit.judge import Judge
from conduit.pydantic_ai import _compat
from conduit.pydantic_ai._judge import RunJudge
from conduit.pydantic_ai._messages import (
    Stamp,
    query_text,
    read_stamp,
    rejected_previous,
    write_stamp,
)
from conduit.pydantic_ai._prices import cost_of

if TYPE_CHECKING:
    from pydantic_ai._run_context import RunContext

__all__ = ["ConduitModel", "decision_ids", "record_feedback"]

logger = logging.getLogger("conduit.pydantic_ai")

ModelLike = Model | str

#: The decisions of the agent run in progress, per ConduitModel (by owner key).
_RUN: ContextVar[dict[str, list[str]] | None] = ContextVar("conduit_pydantic_ai_run", default=None)
#: Every live ConduitModel by owner key, so ``record_feedback(result)`` finds the router.
_OWNERS: weakref.WeakValueDictionary[str, ConduitModel] = weakref.WeakValueDictionary()


class _HasMessages(Protocol):
    def new_messages(self) -> list[ModelMessage]: ...


def _quality(name: str, value: float | None, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    try:
        return _validate.outcome(name, value, 1.0, bounded=True)
    except ConduitError as exc:
        raise ConfigurationError(str(exc)) from None


def _named(models: Sequence[ModelLike] | Mapping[str, ModelLike]) -> dict[str, Model]:
    """Each model under the name the router knows it by."""
    if isinstance(models, str) or not isinstance(models, (Sequence, Mapping)):
        raise ConfigurationError("models must be a list of models or model names, or a mapping")
    pairs: list[tuple[str, ModelLike]]
    if isinstance(models, Mapping):
        pairs = list(models.items())
    else:
        pairs = [(m if isinstance(m, str) else m.model_id, m) for m in models]
    if not pairs:
        raise ConfigurationError("models is empty: give at least one model")
    named: dict[str, Model] = {}
    for name, model in pairs:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"model names must be non-empty str, got {name!r}")
        if not isinstance(model, (str, Model)):
            raise ConfigurationError(
                f"{name!r}: expected a PydanticAI Model or a model name, got {type(model).__name__}"
            )
        if name in named:
            raise DuplicateModelError(
                f"model {name!r} is listed twice (give a mapping to name models apart)"
            )
        try:
            named[name] = infer_model(model)
        except Exception as exc:  # PydanticAI's UserError, a missing provider package, ...
            raise ConfigurationError(f"cannot build model {model!r}: {exc}") from exc
    return named


@dataclass(slots=True)
class _Attempts:
    """The models one request has failed on so far, and their errors."""

    models: list[str] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)


class ConduitModel(FallbackModel):
    """A PydanticAI model that routes each request to one of ``models`` with a Conduit router.

    ``models``: PydanticAI models or model names (``"openai:gpt-4o-mini"``), or a
    mapping from the name the router uses to each. ``router``: a
    :class:`conduit.Router` over exactly those names (default: a new hybrid one).
    ``prices``: USD per token (input, output) by name, overriding PydanticAI's price
    data (``genai-prices``) for the cost learned from each response's usage.
    ``fallback_on``: the errors that move a request on to the next best model.
    ``judge``: a :class:`conduit.judge.Judge` that grades a sampled share of the runs'
    final answers in the background; its ``model`` is one of ``models``' names or a
    PydanticAI model name (``judge_models`` maps names to models of your own, for the
    judge and a shadow comparison's reference). Wait for the grades in progress with
    :meth:`judged`.
    """

    def __init__(
        self,
        models: Sequence[ModelLike] | Mapping[str, ModelLike],
        *,
        router: Router | None = None,
        preferences: Preferences | str | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        success_quality: float | None = 1.0,
        retry_quality: float = 0.0,
        error_quality: float = 0.0,
        fallback_on: tuple[type[Exception], ...] = (ModelAPIError,),
        judge: Judge | None = None,
        judge_models: Mapping[str, ModelLike] | None = None,
    ) -> None:
        named = _named(models)
        if judge is not None and not isinstance(judge, Judge):
            raise ConfigurationError(f"judge must be a conduit.judge.Judge, got {judge!r}")
        extra = _named(judge_models) if judge_models else {}
        if router is not None and not isinstance(router, Router):
            raise ConfigurationError(
                f"router must be a conduit Router, got {type(router).__name__}"
            )
        if router is not None and set(router.models) != set(named):
            raise ConfigurationError(
                f"the router routes to {sorted(router.models)} but the models are "
                f"{sorted(named)}: give both the same names"
            )
        if not isinstance(fallback_on, tuple) or not all(
            isinstance(e, type) and issubclass(e, Exception) for e in fallback_on
        ):
            raise ConfigurationError("fallback_on must be a tuple of exception classes")
        try:
            self.preferences = Preferences.of(preferences)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        price_map = {name: _as_price(name, value) for name, value in (prices or {}).items()}
        unknown = sorted(set(price_map) - set(named))
        if unknown:
            raise ConfigurationError(f"prices given for {unknown}, which are not among the models")
        self.success_quality = _quality("success_quality", success_quality, optional=True)
        self.retry_quality = float(_quality("retry_quality", retry_quality, optional=False) or 0.0)
        self.error_quality = float(_quality("error_quality", error_quality, optional=False) or 0.0)
        super().__init__(*named.values())
        if router is None:
            router = Router(models=list(named), use_hybrid=True, prices=price_map)
        else:
            for name, price in price_map.items():
                router.set_price(name, price)
        self.router = router
        self.fallback_on = fallback_on
        self._by_name = named
        self._prices: dict[str, Price] = price_map
        self._owner = uuid.uuid4().hex
        _OWNERS[self._owner] = self
        self.judge = (
            None
            if judge is None
            else RunJudge(
                judge,
                router=router,
                models={**named, **extra},
                resolve=lambda name: _named({name: name})[name],
                prices=price_map,
                fallback=lambda decision_id: self._learn(decision_id, quality=self.success_quality),
            )
        )

    @classmethod
    def from_router(
        cls,
        router: Router,
        models: Sequence[ModelLike] | Mapping[str, ModelLike] | None = None,
        **options: Any,
    ) -> ConduitModel:
        """A ConduitModel that calls ``router``'s models (by their names unless ``models`` says).

        >>> from pydantic_ai.models.test import TestModel
        >>> router = Router(models=["a", "b"], embedding_backend="hashing", seed=0)
        >>> model = ConduitModel.from_router(router, {"a": TestModel(), "b": TestModel()})
        >>> model.router is router, model.names
        (True, ('a', 'b'))
        """
        return cls(list(router.models) if models is None else models, router=router, **options)

    # -- what PydanticAI asks of a model ---------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """The names the router knows the models by, in the order given."""
        return tuple(self._by_name)

    @property
    def model_name(self) -> str:
        return f"conduit:{','.join(self._by_name)}"

    @property
    def model_id(self) -> str:
        return self.model_name

    @property
    def system(self) -> str:
        return "conduit"

    @asynccontextmanager
    async def _run_scope(self) -> AsyncGenerator[None]:
        """Held by the agent around each run: its end tells how the last response went."""
        runs = dict(_RUN.get() or {})
        decisions: list[str] = []
        runs[self._owner] = decisions
        token = _RUN.set(runs)
        try:
            async with super()._run_scope():
                yield
        except UnexpectedModelBehavior:
            # The agent gave up: the last response failed validation once more than allowed.
            if decisions:
                self._learn(decisions[-1], quality=self.retry_quality)
            raise
        else:
            judged = self.judge is not None and bool(decisions) and self.judge.offer(decisions[-1])
            if self.success_quality is not None:
                for decision_id in decisions[:-1] if judged else decisions:
                    # steps already judged are ignored by the router
                    self._learn(decision_id, quality=self.success_quality)
        finally:
            with suppress(ValueError):  # exited in another context than entered: nothing to restore
                _RUN.reset(token)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Route, call the chosen model, fail over on provider errors, learn each attempt."""
        params, text, attempts = self._begin(messages, model_settings, model_request_parameters)
        while True:
            decision, model, start = await self._attempt(text, attempts)
            try:
                prepared, deadline = self._prepare(model, messages, params, model_settings, False)
                with _compat.enforce_request_deadline(deadline):
                    response = await model.request(prepared, model_settings, params)
            except Exception as exc:
                self._failed(decision, exc, time.perf_counter() - start, attempts)
                continue
            self._answered(decision, response, time.perf_counter() - start, text)
            response.metadata = write_stamp(response.metadata, self._stamp(decision))
            return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """As :meth:`request`; a stream fails over until its first event, as FallbackModel's."""
        params, text, attempts = self._begin(messages, model_settings, model_request_parameters)
        while True:
            decision, model, start = await self._attempt(text, attempts)
            async with AsyncExitStack() as stack:
                try:
                    prepared, deadline = self._prepare(
                        model, messages, params, model_settings, True
                    )
                    streamed = await stack.enter_async_context(
                        _compat.request_stream_until_first_event(
                            model, deadline, prepared, model_settings, params, run_context
                        )
                    )
                except Exception as exc:
                    self._failed(decision, exc, time.perf_counter() - start, attempts)
                    continue
                streamed.metadata = write_stamp(streamed.metadata, self._stamp(decision))
                try:
                    yield streamed
                except Exception as exc:
                    if isinstance(exc, self.fallback_on):  # the provider broke off mid-stream
                        self._learn(
                            decision.decision_id,
                            quality=self.error_quality,
                            latency=time.perf_counter() - start,
                        )
                    raise
                self._answered(decision, streamed.get(), time.perf_counter() - start, text)
                return

    # -- routing and learning ----------------------------------------------------------------
    def _begin(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> tuple[ModelRequestParameters, str, _Attempts]:
        """What both request paths start with: the parameters, the previous response judged,
        the query text, no attempts yet."""
        params = _compat.with_framing_announcement(model_request_parameters, model_settings)
        self._judge_previous(messages)
        return params, query_text(messages), _Attempts()

    async def _attempt(
        self, text: str, attempts: _Attempts
    ) -> tuple[RoutingDecision, Model, float]:
        """The next attempt: its decision, the chosen model, and its start time."""
        decision = await self._route(text, attempts)
        return decision, self._by_name[decision.selected_model], time.perf_counter()

    @staticmethod
    def _prepare(
        model: Model,
        messages: list[ModelMessage],
        params: ModelRequestParameters,
        model_settings: ModelSettings | None,
        stream: bool,
    ) -> tuple[list[ModelMessage], Any]:
        """The messages as ``model`` takes them, and the request's deadline (started now)."""
        prepared = model.prepare_messages(messages, params)
        return prepared, _compat.start_request_deadline(model, model_settings, stream=stream)

    async def _route(self, text: str, attempts: _Attempts) -> RoutingDecision:
        if len(attempts.models) >= len(self._by_name):
            raise FallbackExceptionGroup(
                f"every model ConduitModel routed to failed: {attempts.models}", attempts.errors
            )
        denied = frozenset(attempts.models)
        return await self.router.route(
            text, preferences=self.preferences, constraints=Constraints(denied_models=denied)
        )

    def _stamp(self, decision: RoutingDecision) -> Stamp:
        return Stamp(decision.decision_id, decision.selected_model, self._owner)

    def _failed(
        self, decision: RoutingDecision, exc: Exception, latency: float, attempts: _Attempts
    ) -> None:
        """Learn a failed attempt; re-raise unless it is one to fail over from."""
        if not isinstance(exc, self.fallback_on):
            self._learn(decision.decision_id, latency=latency)
            raise exc
        logger.info(
            "%s failed (%s: %s); trying the next best model",
            decision.selected_model,
            type(exc).__name__,
            exc,
        )
        self._learn(decision.decision_id, quality=self.error_quality, latency=latency)
        attempts.models.append(decision.selected_model)
        attempts.errors.append(exc)

    def _answered(
        self, decision: RoutingDecision, response: ModelResponse, latency: float, query: str
    ) -> None:
        cost = cost_of(response, self._prices.get(decision.selected_model))
        self._learn(decision.decision_id, cost=cost, latency=latency)
        if self.judge is not None:
            self.judge.remember(decision.decision_id, query, response, decision.selected_model)
        runs = _RUN.get()
        if runs is not None and self._owner in runs:
            runs[self._owner].append(decision.decision_id)

    def _judge_previous(self, messages: Sequence[ModelMessage]) -> None:
        """The quality of the response this request follows, from whether it retries it."""
        found = rejected_previous(messages)
        stamp = None if found is None else read_stamp(found[0])
        if found is None or stamp is None or stamp.owner != self._owner:
            return
        quality = self.retry_quality if found[1] else self.success_quality
        if quality is not None:
            self._learn(stamp.decision_id, quality=quality)

    def _learn(
        self, decision_id: str, *, source: str = "automatic", **parts: float | None
    ) -> frozenset[str]:
        """Teach the router; a hook never raises into the agent's request. A quality is
        ``automatic`` (how the run went) unless ``source`` says (``explicit``)."""
        known = {k: v for k, v in parts.items() if v is not None and math.isfinite(v)}
        if not known:
            return frozenset()
        try:
            return self.router.update_sync(
                decision_id,
                quality=known.get("quality"),
                cost=known.get("cost"),
                latency=known.get("latency"),
                source=source,
            )
        except ConduitError as exc:
            logger.warning("outcome of decision %s not learned: %s", decision_id, exc)
            return frozenset()

    async def judged(self) -> None:
        """Wait until the judge's grades in progress are in and learned (none: at once)."""
        if self.judge is not None:
            await self.judge.wait()

    # -- explicit feedback -------------------------------------------------------------------
    def decision_ids(self, run: _HasMessages) -> list[str]:
        """The decisions this model made for the responses of an agent run, in order."""
        return [s.decision_id for s in _stamps(run) if s.owner == self._owner]

    def record_feedback(self, run: _HasMessages, *, quality: float) -> int:
        """Learn ``quality`` for every response of ``run`` whose quality is not known yet.

        Usually that is the run's final answer (steps before it were judged by the
        request that followed them); with ``success_quality=None`` it is every step.
        Returns how many decisions learned it.
        """
        value = _validate.outcome("quality", quality, 1.0, bounded=True)
        ids = self.decision_ids(run)
        if not ids:
            raise UnknownDecisionError("no response of this run was routed by this ConduitModel")
        return sum("quality" in self._learn(i, quality=value, source="explicit") for i in ids)

    def __repr__(self) -> str:
        return f"ConduitModel(models={list(self._by_name)}, router={self.router!r})"


def _stamps(run: _HasMessages) -> list[Stamp]:
    new_messages = getattr(run, "new_messages", None)
    if not callable(new_messages):
        raise UnknownDecisionError(
            f"expected an agent run result (with new_messages()), got {type(run).__name__}"
        )
    return [
        stamp
        for message in new_messages()
        if isinstance(message, ModelResponse) and (stamp := read_stamp(message)) is not None
    ]


def decision_ids(run: _HasMessages) -> list[str]:
    """The Conduit decisions behind an agent run's responses, for ``router.explain``."""
    return [stamp.decision_id for stamp in _stamps(run)]


def record_feedback(run: _HasMessages, *, quality: float) -> int:
    """Learn ``quality`` for an agent run answered through a ConduitModel.

    The decisions are found by the ids the run's responses carry, never by model
    name; see :meth:`ConduitModel.record_feedback`.
    """
    _validate.outcome("quality", quality, 1.0, bounded=True)
    owners = {stamp.owner for stamp in _stamps(run)}
    models = [model for owner in owners if (model := _OWNERS.get(owner)) is not None]
    if not models:
        raise UnknownDecisionError("no response of this run was routed by a live ConduitModel")
    return sum(model.record_feedback(run, quality=quality) for model in models)
