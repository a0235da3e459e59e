"""The CustomLogger that turns LiteLLM's success and failure events into Conduit outcomes.

Each routed request carries its decision id in the request metadata
(:data:`DECISION_KEY`), which LiteLLM hands back to the logger with the event,
so an event is matched to the decision that sent it, never guessed from model
names. Retries and fallbacks are separate picks with separate decisions, so each
attempt is learned against the deployment that made it.

The hooks only call :meth:`conduit.Router.update_sync` (in-memory numpy under a
lock, no I/O) and never raise into the caller's request: a Conduit error is
logged and counted.

Explicit feedback (thumbs, ratings, scores) arrives later, by response:
:meth:`ConduitFeedbackLogger.record_feedback` finds the decision without waiting
for LiteLLM's success event (which LiteLLM delivers after the call returns, from
a queue or a thread). The strategy names each attempt's LiteLLM call after its
decision (``litellm_call_id = "conduit-<decision id>"``, unless the caller set
one, which is kept and mapped), and LiteLLM copies the call id into
``response._hidden_params``, so a response object names its own decision. A bare
response id is mapped when the response is received (async calls, through
LiteLLM's deployment success hook) or when its success event arrives.
:class:`FeedbackServer` exposes the same call over HTTP (the LiteLLM proxy).

Explicit quality takes precedence over the automatic signals of
:mod:`conduit_litellm._signals`. The engine learns each part of a decision once,
so an automatic quality of a *successful* call (truncated, refused, empty, bad
JSON) is held for ``signal_grace`` seconds (300 by default) and learned only if
no explicit quality came in that time; explicit feedback arriving within the
grace period replaces it. A failed call has no response to judge, so its
quality 0 is learned at once. Explicit feedback after the grace period finds the
quality learned and is ignored (an empty set), as a repeat is.

A judge's grade or a regeneration (:mod:`conduit.judge`, through
:meth:`ConduitFeedbackLogger.hold_quality`) is held the same way, until the
decision's explicit window is over, and outranks a held automatic quality
(automatic < judge, shadow < regeneration < explicit).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from conduit import _validate
from conduit._errors import (
    ConduitError,
    ConfigurationError,
    InvalidFeedbackError,
    UnknownDecisionError,
    UnknownModelError,
)
from conduit._pending import ExpiringMap
from conduit._redact import describe_error, redact_text
from conduit.engines.router import MAX_COST, MAX_LATENCY, Router
from conduit.metrics import Metrics, Source
from conduit_litellm import _compat
from conduit_litellm import _signals as signals

__all__ = [
    "CALL_PREFIX",
    "DECISION_KEY",
    "DEPLOYMENT_KEY",
    "JSON_KEY",
    "MODEL_KEY",
    "SIGNALS_KEY",
    "ConduitFeedbackLogger",
    "FeedbackServer",
    "ResponseMap",
    "answer_feedback",
    "explicit_quality",
]

logger = logging.getLogger("conduit_litellm.feedback")
#: The usage guide's learning-progress line goes to the package logger.
progress_logger = logging.getLogger("conduit_litellm")

#: Request-metadata keys the routing side stamps and the logger reads.
DECISION_KEY = "conduit_decision_id"
DEPLOYMENT_KEY = "conduit_deployment_id"
JSON_KEY = "conduit_json_requested"
MODEL_KEY = "conduit_model"
#: Key of the routing plugin's entry in ``RoutingContext.signals``.
SIGNALS_KEY = "conduit"
#: ``litellm_call_id`` of a routed attempt: this prefix and the decision id.
CALL_PREFIX = "conduit-"
#: Longest response or decision id :meth:`ConduitFeedbackLogger.record_feedback` accepts
#: (providers' ids are under 100 characters; a megabyte "id" is refused, not echoed).
MAX_ID_CHARS = 256

RouterSource = Callable[[], Router | None]
#: ``hook(kwargs, response, decision_id, judgeable)``: told of each routed success
#: (the judge's worker); ``judgeable`` when no automatic signal graded the answer.
SuccessHook = Callable[[Mapping[str, Any], Any, str, bool], None]
#: Who outranks whom for a held quality: explicit feedback outranks every held one.
_RANK = {"automatic": 0, "judge": 1, "shadow": 1, "regeneration": 2}
PriceSource = Callable[[str], tuple[float, float] | None]


class ResponseMap(ExpiringMap[str, str]):
    """``response_id -> decision_id``, at most ``maxsize`` entries, each kept ``ttl`` seconds."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            super().__init__(ttl=ttl, maxsize=maxsize, clock=clock)
        except ConfigurationError as exc:
            raise ConfigurationError(f"ResponseMap needs ttl > 0 and maxsize >= 1: {exc}") from None


def explicit_quality(
    *, quality: float | None = None, thumbs: bool | None = None, rating: int | None = None
) -> float:
    """One quality in [0, 1] from exactly one of: a score, thumbs up/down, a 1..5 rating.

    >>> explicit_quality(thumbs=True), explicit_quality(rating=4)
    (1.0, 0.75)
    """
    given = [
        name
        for name, v in (("quality", quality), ("thumbs", thumbs), ("rating", rating))
        if v is not None
    ]
    if len(given) != 1:
        raise InvalidFeedbackError(
            f"give exactly one of quality=, thumbs=, rating= (got {', '.join(given) or 'none'})"
        )
    if thumbs is not None:
        if not isinstance(thumbs, bool):
            raise InvalidFeedbackError(f"thumbs must be True or False, got {thumbs!r}")
        return 1.0 if thumbs else 0.0
    if rating is not None:
        stars = _validate.integer(
            "rating", rating, low=1, high=5, what="an int from 1 to 5", error=InvalidFeedbackError
        )
        return (stars - 1) / 4.0
    if not _validate.is_number(quality):
        raise InvalidFeedbackError(f"quality must be a number in [0, 1], got {quality!r}")
    return _validate.number("quality", quality, low=0.0, high=1.0, error=InvalidFeedbackError)


def _usable(value: object, upper: float) -> float | None:
    """``value`` as a float if it is a number in [0, ``upper``], else None (not learned)."""
    if not _validate.is_number(value):
        return None
    number = float(value)
    return number if 0.0 <= number <= upper else None  # NaN fails this too


def _seconds(start: object, end: object) -> float | None:
    """Seconds from ``start`` to ``end`` (datetimes or timestamps); None if they do not say."""
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        try:
            seconds = (end - start).total_seconds()
        except TypeError:  # one has a time zone, the other not
            return None
    elif _validate.is_number(start) and _validate.is_number(end):
        seconds = float(end) - float(start)
    else:
        return None
    return _usable(max(seconds, 0.0), MAX_LATENCY)


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one: LiteLLM's event fields as given, or
    nothing where a field has an unexpected shape."""
    return value if isinstance(value, Mapping) else {}


def _metadata(kwargs: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Conduit's fields of the request metadata, and that metadata.

    The strategy stamps its fields on the metadata itself; a routing plugin
    (the proxy) can only return signals, which LiteLLM stores under
    ``routing_plugin_signals`` -> ``conduit``.
    """
    params = _mapping(kwargs.get("litellm_params"))
    for bucket in (
        params.get("metadata"),
        params.get("litellm_metadata"),
        kwargs.get("litellm_metadata"),
        kwargs.get("metadata"),  # a request's own kwargs (deployment hooks)
    ):
        if not isinstance(bucket, Mapping):
            continue
        if DECISION_KEY in bucket:
            return bucket, bucket
        from_plugin = _compat.plugin_signals(bucket, SIGNALS_KEY)
        if DECISION_KEY in from_plugin:
            return from_plugin, bucket
    return {}, {}


def _tokens(response_obj: Any, slo: Mapping[str, Any]) -> tuple[float, float] | None:
    usage = getattr(response_obj, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        prompt, completion = slo.get("prompt_tokens"), slo.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return float(prompt), float(completion)
    return None


class ConduitFeedbackLogger(CustomLogger):
    """Learns cost, latency and the no-human quality signals of every routed LiteLLM call.

    ``router`` returns the Conduit router (None before the first decision);
    ``price`` the (input, output) USD-per-token price of an arm, used when
    LiteLLM reports no ``response_cost``. ``signal_grace`` is how long the
    automatic quality of a successful call waits for an explicit one (0: learn
    it at once, and explicit feedback after it is ignored).
    """

    def __init__(
        self,
        *,
        router: RouterSource,
        price: PriceSource | None = None,
        response_ttl: float = 24 * 3600.0,
        max_responses: int = 100_000,
        signal_grace: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self.responses = ResponseMap(ttl=response_ttl, maxsize=max_responses)
        self.signal_grace = _validate.number(
            "signal_grace",
            signal_grace,
            low=0.0,
            high=math.nextafter(self.responses.ttl, 0.0),  # strictly below the ttl
            what=f"a number of seconds >= 0 and below response_ttl ({response_ttl})",
        )
        self._router = router
        self._price = price
        self._clock = clock
        #: callers' own ``litellm_call_id`` -> decision id (the strategy's own ids need no map)
        self.calls = ResponseMap(ttl=response_ttl, maxsize=max_responses)
        self._max_held = int(max_responses)
        #: decision id -> (held quality, reason, due time, source), in due order
        self._held: OrderedDict[str, tuple[float, str, float, Source]] = OrderedDict()
        #: told of each routed success, after it is learned (the judge's worker), when set
        self.success_hook: SuccessHook | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "events",
                "learned",
                "duplicates",
                "unmatched",
                "rate_limited",
                "errors",
                "signals_held",
                "signals_replaced",
                "held_replaced",
            ),
            0,
        )
        self._handling_ns = 0
        self._handling_max_ns = 0
        self._warned_cost = False
        #: counts what is learned, by kind and source (conduit.metrics), when set
        self.metrics = metrics

    # -- LiteLLM's hooks: these exact names and parameter names, or LiteLLM drops the event ----
    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._handle(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_post_call_success_deployment_hook(
        self, request_data: dict[str, Any], response: Any, call_type: Any
    ) -> None:
        """Map the response id to its decision before the caller gets the response.

        LiteLLM awaits this inline (async calls only), so a bare response id is
        usable for feedback at once. Returns None: the response is not changed.
        """
        try:
            response_id = getattr(response, "id", None)
            decision_id = _metadata(request_data)[0].get(DECISION_KEY)
            if isinstance(response_id, str) and response_id and isinstance(decision_id, str):
                self.responses.put(response_id, decision_id)
        except Exception as exc:  # a hook must never raise into the caller's request
            logger.debug("Mapping a response to its decision failed: %s", describe_error(exc))
        return None

    # -- linking a response to its decision -----------------------------------------------------
    def link_call(
        self, request_kwargs: MutableMapping[str, Any], decision_id: str, previous: object = None
    ) -> None:
        """Name this attempt's LiteLLM call after ``decision_id``; LiteLLM puts the name on the
        response (``_hidden_params["litellm_call_id"]``).

        ``previous`` is the decision of the request's earlier attempt, whose call
        name a retry finds still set and replaces. A call id the caller chose is
        kept (their logs may rely on it) and mapped to the decision instead.
        """
        given = request_kwargs.get("litellm_call_id")
        ours = isinstance(previous, str) and given == CALL_PREFIX + previous
        if given is None or ours:
            request_kwargs["litellm_call_id"] = CALL_PREFIX + decision_id
        else:
            self.calls.put(str(given), decision_id)

    # -- handling ------------------------------------------------------------------------------
    def _count(self, name: str, elapsed_ns: int = 0) -> None:
        with self._lock:
            self._counts[name] += 1
            if elapsed_ns:
                self._handling_ns += elapsed_ns
                self._handling_max_ns = max(self._handling_max_ns, elapsed_ns)

    def _handle(
        self, kwargs: Any, response_obj: Any, start: Any, end: Any, *, failed: bool
    ) -> None:
        began = time.perf_counter_ns()
        self._count("events")
        try:
            self.apply_due_signals()
            outcome = self._learn(kwargs, response_obj, start, end, failed=failed)
            if outcome == "learned":
                self._progress()
        except UnknownDecisionError as exc:  # another router's decision, or one long expired
            logger.debug("Feedback not recorded: %s", exc)
            outcome = "unmatched"
        except ConduitError as exc:
            level = logging.WARNING if isinstance(exc, UnknownModelError) else logging.DEBUG
            logger.log(level, "Feedback not recorded: %s", exc)
            outcome = "errors"
        except Exception as exc:  # a hook must never raise into the caller's request
            logger.debug("Feedback handling failed: %s", describe_error(exc))
            outcome = "errors"
        self._count(outcome, time.perf_counter_ns() - began)

    def _progress(self) -> None:
        """The usage guide's "Bandit updated" line, after each update (DEBUG only)."""
        if not progress_logger.isEnabledFor(logging.DEBUG):
            return
        router = self._router()
        if router is not None:
            stats = router.stats()
            progress_logger.debug(
                "Bandit updated: arms=%d, total_pulls=%d", len(stats.models), stats.total_decisions
            )

    def _learn(self, kwargs: Any, response_obj: Any, start: Any, end: Any, *, failed: bool) -> str:
        if not isinstance(kwargs, Mapping):
            return "unmatched"
        metadata, request_metadata = _metadata(kwargs)
        decision_id = metadata.get(DECISION_KEY)
        router = self._router()
        if not isinstance(decision_id, str) or router is None:
            logger.debug("Event without a Conduit decision (not routed by Conduit): ignored")
            return "unmatched"
        params = _mapping(kwargs.get("litellm_params"))
        served = _mapping(params.get("model_info")).get("id")
        expected = metadata.get(DEPLOYMENT_KEY)
        if expected is None and metadata.get(MODEL_KEY) is not None:
            expected, served = metadata.get(MODEL_KEY), request_metadata.get("deployment")
        if expected is not None and served is not None and str(served) != str(expected):
            logger.warning(
                "Model not in router arms: event served by %s, decision %s chose %s; not learned",
                served,
                decision_id,
                expected,
            )
            return "unmatched"
        slo = _compat.logging_object(kwargs)
        latency = _seconds(start, end)
        if latency is None:
            latency = _usable(slo.get("response_time"), MAX_LATENCY)
        quality: float | None
        cost: float | None = None
        if failed:
            exception = kwargs.get("exception")
            signal = signals.failure_signal(exception)
            if signal.quality is None:
                logger.debug("Rate limited on decision %s: nothing learned", decision_id)
                return "rate_limited"
            quality = signal.quality
            billed = _usable(kwargs.get("response_cost"), MAX_COST)
            cost = billed if billed else None  # a failed call LiteLLM did not bill: no cost
            if not signals.is_timeout(exception):
                latency = None  # how fast an error came back says nothing about the model's speed
        else:
            signal = signals.success_signal(
                response_obj, json_requested=bool(metadata.get(JSON_KEY))
            )
            quality = signal.quality
            cost = self._cost(kwargs, response_obj, slo, router, decision_id)
            response_id = getattr(response_obj, "id", None)
            if isinstance(response_id, str) and response_id:
                self.responses.put(response_id, decision_id)
            if signal.quality is None:
                router.count("no_signal")
            self._tell_hook(kwargs, response_obj, decision_id, signal.quality is None)
            if quality is not None and self.signal_grace > 0:
                self._hold(decision_id, quality, signal.reason)
                if cost is None and latency is None:
                    return "learned"
                quality = None  # learned later, unless an explicit quality comes first
        if quality is None and cost is None and latency is None:
            return "unmatched"
        learned = router.update_sync(
            decision_id, quality=quality, cost=cost, latency=latency, source="automatic"
        )
        if self.metrics is not None:
            self.metrics.feedback(decision_id, learned, quality=quality, cost=cost, latency=latency)
        if not learned:
            return "duplicates"
        logger.debug(
            "Feedback recorded: model=%s, cost=%s, latency=%s, quality=%s (%s)",
            served or expected,
            "n/a" if cost is None else f"${cost:.6f}",
            "n/a" if latency is None else f"{latency:.2f}s",
            "n/a" if quality is None else f"{quality:.2f}",
            signal.reason,
        )
        return "learned"

    def _cost(
        self,
        kwargs: Mapping[str, Any],
        response_obj: Any,
        slo: Mapping[str, Any],
        router: Router,
        decision_id: str,
    ) -> float | None:
        tokens = _tokens(response_obj, slo)
        fields = _metadata(kwargs)[0]
        arm = fields.get(DEPLOYMENT_KEY, fields.get(MODEL_KEY))
        price = self._price(str(arm)) if (self._price is not None and arm is not None) else None
        # LiteLLM reports 0.0 for a call it could not price (with debug info saying so, or,
        # through a Router, without); a made-up zero would teach the bandit the model is free.
        # A zero is believed only for a model whose price is known (a free local model).
        logged = None if slo.get("response_cost_failure_debug_info") else slo.get("response_cost")
        for value in (_usable(kwargs.get("response_cost"), MAX_COST), _usable(logged, MAX_COST)):
            if value is not None:
                if value == 0 and price is None:
                    continue
                return value
        if tokens is not None and price is not None:
            return _usable(tokens[0] * price[0] + tokens[1] * price[1], MAX_COST)
        if not self._warned_cost:
            self._warned_cost = True
            logger.warning(
                "Cost unavailable in LiteLLM response (no response_cost, no price for %s): "
                "learning latency and quality only",
                arm,
            )
        return None

    # -- automatic quality held for explicit feedback -------------------------------------------
    def _tell_hook(self, kwargs: Any, response_obj: Any, decision_id: str, judgeable: bool) -> None:
        hook = self.success_hook
        if hook is None:
            return
        try:
            hook(kwargs, response_obj, decision_id, judgeable)
        except Exception as exc:  # the judge must never fail the event (or the request)
            logger.debug("Success hook failed: %s", describe_error(exc))

    def hold_quality(
        self, decision_id: str, quality: float, reason: str, *, source: Source, since: float
    ) -> str:
        """A quality from a judge or an implicit signal, learned once the decision's
        explicit-feedback window (``signal_grace`` from ``since``, on this logger's clock)
        is over, unless explicit feedback comes first. It replaces a held quality of a
        lower rank (automatic < judge, shadow < regeneration) and yields to a higher one.
        Returns ``"held"``, ``"learned"`` (window already over), ``"outranked"`` or
        ``"duplicate"`` (the decision's quality is already learned)."""
        value = explicit_quality(quality=quality)
        due = since + self.signal_grace
        with self._lock:
            held = self._held.get(decision_id)
            if held is not None and _RANK[held[3]] > _RANK[source]:
                return "outranked"
            if due > self._clock():
                if held is not None:
                    self._counts["held_replaced"] += 1
                    due = min(due, held[2])
                self._held[decision_id] = (value, reason, due, source)
                self._held.move_to_end(decision_id)
                self._counts["signals_held"] += 1
                full = len(self._held) > self._max_held
                outcome = "held"
            else:
                self._held.pop(decision_id, None)
                full, outcome = False, "learned"
        if outcome == "held":
            if full:
                self.apply_due_signals(limit=1, everything=True)
            return outcome
        router = self._router()
        if router is None:
            return "duplicate"
        parts = router.update_sync(decision_id, quality=value, source=source)
        if self.metrics is not None:
            self.metrics.feedback(decision_id, parts, quality=value, source=source)
        return "learned" if parts else "duplicate"

    def _hold(self, decision_id: str, quality: float, reason: str) -> None:
        with self._lock:
            held = self._held.get(decision_id)
            if held is not None and _RANK[held[3]] > 0:  # a judge grade came first: it stays
                return
            due = self._clock() + self.signal_grace
            self._held[decision_id] = (quality, reason, due, "automatic")
            self._held.move_to_end(decision_id)
            self._counts["signals_held"] += 1
            full = len(self._held) > self._max_held
        if full:  # bounded: the oldest is learned now rather than dropped
            self.apply_due_signals(limit=1, everything=True)

    def apply_due_signals(self, *, everything: bool = False, limit: int | None = None) -> int:
        """Learn the held automatic qualities whose grace period is over (all: ``everything``).

        Called by every event, every explicit feedback and every routing pick, and
        by the strategy's cleanup (``everything=True``); returns how many were learned.
        """
        now = self._clock()
        due: list[tuple[str, float, str, Source]] = []
        with self._lock:
            while self._held and (limit is None or len(due) < limit):
                decision_id, (quality, reason, at, source) = next(iter(self._held.items()))
                if not everything and at > now:
                    break
                self._held.popitem(last=False)
                due.append((decision_id, quality, reason, source))
        router = self._router() if due else None
        learned = 0
        for decision_id, quality, reason, source in due:
            if router is None:
                break
            try:
                parts = router.update_sync(decision_id, quality=quality, source=source)
                if self.metrics is not None:
                    self.metrics.feedback(decision_id, parts, quality=quality, source=source)
            except ConduitError as exc:  # expired or removed meanwhile: nothing to learn
                logger.debug("Automatic quality of %s not recorded: %s", decision_id, exc)
                continue
            except Exception as exc:  # called from LiteLLM's hooks and routing: never raise
                logger.debug(
                    "Automatic quality of %s not recorded: %s", decision_id, describe_error(exc)
                )
                continue
            if parts:
                learned += 1
                logger.debug(
                    "Feedback recorded: decision=%s, quality=%.2f (%s; no explicit quality within "
                    "%.0f s)",
                    decision_id,
                    quality,
                    reason,
                    self.signal_grace,
                )
                self._progress()
        return learned

    # -- explicit feedback ---------------------------------------------------------------------
    def decision_for(self, response_or_id: object) -> str:
        """The decision id behind a LiteLLM response (object or id) or a decision id."""
        if not isinstance(response_or_id, str):
            call_id = _compat.hidden_param(response_or_id, "litellm_call_id")
            if isinstance(call_id, str) and call_id.startswith(CALL_PREFIX):
                return call_id.removeprefix(CALL_PREFIX)
            if isinstance(call_id, str) and (mapped := self.calls.get(call_id)) is not None:
                return mapped
        if isinstance(response_or_id, str):
            key: object = response_or_id
        elif isinstance(response_or_id, Mapping):  # a response as a dict (model_dump, JSON)
            key = response_or_id.get("id")
        else:
            key = getattr(response_or_id, "id", None)
        if not isinstance(key, str) or not key:
            raise InvalidFeedbackError(
                f"expected a LiteLLM response or its id, got {type(response_or_id).__name__}"
            )
        if len(key) > MAX_ID_CHARS:
            raise InvalidFeedbackError(
                f"a response or decision id has at most {MAX_ID_CHARS} characters, "
                f"got one of {len(key)}"
            )
        return self.responses.get(key) or self.calls.get(key) or key

    def record_feedback(
        self,
        response_or_id: object,
        *,
        quality: float | None = None,
        thumbs: bool | None = None,
        rating: int | None = None,
    ) -> frozenset[str]:
        """Learn a human judgement of one response; returns the parts learned now.

        Works as soon as the LiteLLM call has returned. It replaces an automatic
        quality still in its grace period; a repeat, or a judgement after the
        automatic quality was learned, is ignored (returns an empty set).
        """
        value = explicit_quality(quality=quality, thumbs=thumbs, rating=rating)
        decision_id = self.decision_for(response_or_id)
        router = self._router()
        if router is None:
            raise UnknownDecisionError(f"no decision {decision_id!r}: nothing has been routed yet")
        self.apply_due_signals()  # a grace period that is over has been used up
        with self._lock:
            replaced = self._held.pop(decision_id, None)
        try:
            learned = router.update_sync(decision_id, quality=value)
            if self.metrics is not None:
                self.metrics.feedback(decision_id, learned, quality=value, source="explicit")
        except UnknownDecisionError as exc:
            raise UnknownDecisionError(
                f"unknown response or decision id {decision_id!r}: not routed by Conduit, "
                f"or older than the feedback window ({exc})"
            ) from exc
        if replaced is not None and learned:
            self._count("signals_replaced")
            logger.debug(
                "Explicit quality %.2f replaces the automatic %.2f (%s) of decision %s",
                value,
                replaced[0],
                replaced[1],
                decision_id,
            )
        if learned:
            logger.debug(
                "Feedback recorded: decision=%s, quality=%.2f (explicit)", decision_id, value
            )
            self._progress()
        else:
            logger.debug("Quality of decision %s was already learned: ignored", decision_id)
        return learned

    def stats(self) -> dict[str, float]:
        """Event counts by outcome and the time spent handling them (microseconds)."""
        with self._lock:
            out: dict[str, float] = {k: float(v) for k, v in self._counts.items()}
            handled = max(self._counts["events"], 1)
            out["mean_handling_us"] = self._handling_ns / handled / 1000.0
            out["max_handling_us"] = self._handling_max_ns / 1000.0
            return out


def answer_feedback(feedback: ConduitFeedbackLogger, data: bytes) -> tuple[int, dict[str, Any]]:
    """The HTTP answer (status, JSON body) to one explicit-feedback request body: 200
    ``{"learned": [...]}``, 400 bad body or feedback, 404 unknown id, 500 a bug (logged).
    Shared by :class:`FeedbackServer` and the route the plugin mounts on the proxy's app."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        return 400, {"error": "body is not JSON"}
    if not isinstance(body, dict):
        return 400, {"error": "body must be a JSON object"}
    target = body.get("response_id") or body.get("decision_id")
    if not isinstance(target, str):
        return 400, {"error": "give response_id (or decision_id)"}
    try:
        learned = feedback.record_feedback(
            target,
            quality=body.get("quality"),
            thumbs=body.get("thumbs"),
            rating=body.get("rating"),
        )
    except UnknownDecisionError as exc:
        return 404, {"error": str(exc)}
    except ConduitError as exc:
        return 400, {"error": str(exc)}
    except Exception as exc:  # a bug must answer 500, not drop the connection
        logger.warning("Feedback endpoint failed: %s", describe_error(exc))
        return 500, {"error": "internal error; see the server's log"}
    return 200, {"learned": sorted(learned)}


class FeedbackServer:
    """A small HTTP endpoint for explicit feedback from outside the process.

    ``POST /feedback`` with ``Authorization: Bearer <token>`` and a JSON body
    ``{"response_id": "...", "thumbs": true}`` (or ``"rating": 1..5`` or
    ``"quality": 0..1``; ``"decision_id"`` works in place of ``"response_id"``).
    Answers 200 ``{"learned": [...]}`` (empty when already learned), 400 for bad
    feedback or a body that is not one JSON object of at most :attr:`max_body`
    bytes, 401 without the token, 404 for an unknown id or path, 405 for another
    method, 408 when the body does not arrive within ``timeout`` seconds. The
    Content-Type is not checked (``curl -d`` sends a form type): the body must
    parse as JSON. Runs in a daemon thread; binds 127.0.0.1 unless told otherwise.
    """

    max_body = 64 * 1024

    def __init__(
        self,
        feedback: ConduitFeedbackLogger,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigurationError(
                "the feedback endpoint needs a token of at least 16 characters"
            )
        _validate.number("timeout", timeout, low=0.0, strict_low=True, allow_inf=True)
        self.feedback = feedback
        self._token = token.encode()
        server = self
        stall = float(timeout)

        class Handler(BaseHTTPRequestHandler):
            timeout = stall  # the socket's: a client that stalls cannot hold a thread for long

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("feedback endpoint: %s", redact_text(format % args))

            def _reply(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                status, body = server.handle(
                    self.path,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Content-Length"),
                    self.rfile,
                )
                self._reply(status, body)

            def _not_allowed(self) -> None:
                self._reply(405, {"error": f"{self.command} not allowed; POST /feedback"})

            do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="conduit-feedback", daemon=True
        )
        self._started = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/feedback"

    def handle(
        self, path: str, authorization: str, length: str | None, stream: Any
    ) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") != "/feedback":
            return 404, {"error": "not found; POST /feedback"}
        given = authorization.removeprefix("Bearer ").strip().encode()
        if not hmac.compare_digest(given, self._token):
            return 401, {"error": "missing or wrong bearer token"}
        try:
            size = int(length or "0")
        except ValueError:
            return 400, {"error": "bad Content-Length"}
        if not 0 < size <= self.max_body:
            return 400, {"error": f"body must be 1..{self.max_body} bytes of JSON"}
        try:
            data = stream.read(size)
        except OSError:  # the client stopped sending before Content-Length bytes came
            return 408, {"error": "the body did not arrive in time"}
        return answer_feedback(self.feedback, data)

    def start(self) -> FeedbackServer:
        self._thread.start()
        self._started = True
        logger.info("Conduit feedback endpoint listening on %s", self.url)
        return self

    def close(self) -> None:
        if self._started:
            self._httpd.shutdown()
            self._thread.join()
            self._started = False
        self._httpd.server_close()
