"""The CustomLogger that turns LiteLLM's success and failure events into Conduit outcomes.

Each routed request carries its decision id in the request metadata
(:data:`DECISION_KEY`), which LiteLLM hands back to the logger with the event,
so an event is matched to the decision that sent it, never guessed from model
names. Retries and fallbacks are separate picks with separate decisions, so each
attempt is learned against the deployment that made it.

The hooks only call :meth:`conduit.Router.update_sync` (in-memory numpy under a
lock, no I/O) and never raise into the caller's request: a Conduit error is
logged and counted.

Explicit feedback (thumbs, ratings, scores) arrives later, by response id:
:meth:`ConduitFeedbackLogger.record_feedback` maps the id back to its decision
through a bounded, expiring map, and :class:`FeedbackServer` exposes the same
call over HTTP for callers outside the process (the LiteLLM proxy).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from conduit.engines.router import Router
from conduit.errors import (
    ConduitError,
    ConfigurationError,
    InvalidFeedbackError,
    UnknownDecisionError,
    UnknownModelError,
)
from conduit_litellm import signals

__all__ = [
    "DECISION_KEY",
    "DEPLOYMENT_KEY",
    "JSON_KEY",
    "MODEL_KEY",
    "SIGNALS_KEY",
    "ConduitFeedbackLogger",
    "FeedbackServer",
    "ResponseMap",
    "explicit_quality",
]

logger = logging.getLogger("conduit_litellm.feedback")

#: Request-metadata keys the routing side stamps and the logger reads.
DECISION_KEY = "conduit_decision_id"
DEPLOYMENT_KEY = "conduit_deployment_id"
JSON_KEY = "conduit_json_requested"
MODEL_KEY = "conduit_model"
#: Key of the routing plugin's entry in ``RoutingContext.signals``.
SIGNALS_KEY = "conduit"

RouterSource = Callable[[], Router | None]
PriceSource = Callable[[str], tuple[float, float] | None]


class ResponseMap:
    """``response_id -> decision_id``, at most ``maxsize`` entries, each kept ``ttl`` seconds."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0 or maxsize < 1:
            raise ConfigurationError(
                f"ResponseMap needs ttl > 0 and maxsize >= 1, got {ttl}, {maxsize}"
            )
        self.ttl = float(ttl)
        self.maxsize = int(maxsize)
        self._clock = clock
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response_id: str, decision_id: str) -> None:
        with self._lock:
            self._items[response_id] = (decision_id, self._clock())
            self._items.move_to_end(response_id)
            self._evict()

    def get(self, response_id: str) -> str | None:
        with self._lock:
            self._evict()
            found = self._items.get(response_id)
            return found[0] if found is not None else None

    def _evict(self) -> None:
        now = self._clock()
        while self._items:
            _, (_, created) = next(iter(self._items.items()))
            if len(self._items) > self.maxsize or now - created > self.ttl:
                self._items.popitem(last=False)
            else:
                break

    def __len__(self) -> int:
        return len(self._items)


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
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise InvalidFeedbackError(f"rating must be an int from 1 to 5, got {rating!r}")
        return (rating - 1) / 4.0
    if isinstance(quality, bool) or not isinstance(quality, (int, float)):
        raise InvalidFeedbackError(f"quality must be a number in [0, 1], got {quality!r}")
    if not 0.0 <= float(quality) <= 1.0:  # NaN fails this too
        raise InvalidFeedbackError(f"quality must be in [0, 1], got {quality!r}")
    return float(quality)


def _seconds(start: object, end: object) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max((end - start).total_seconds(), 0.0)
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return max(float(end) - float(start), 0.0)
    return None


def _metadata(kwargs: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Conduit's fields of the request metadata, and that metadata.

    The strategy stamps its fields on the metadata itself; a routing plugin
    (the proxy) can only return signals, which LiteLLM stores under
    ``routing_plugin_signals`` -> ``conduit``.
    """
    params = kwargs.get("litellm_params") or {}
    for bucket in (
        params.get("metadata"),
        params.get("litellm_metadata"),
        kwargs.get("litellm_metadata"),
    ):
        if not isinstance(bucket, Mapping):
            continue
        if DECISION_KEY in bucket:
            return bucket, bucket
        from_plugin = (bucket.get("routing_plugin_signals") or {}).get(SIGNALS_KEY)
        if isinstance(from_plugin, Mapping) and DECISION_KEY in from_plugin:
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
    LiteLLM reports no ``response_cost``.
    """

    def __init__(
        self,
        *,
        router: RouterSource,
        price: PriceSource | None = None,
        response_ttl: float = 24 * 3600.0,
        max_responses: int = 100_000,
    ) -> None:
        super().__init__()
        self._router = router
        self._price = price
        self.responses = ResponseMap(ttl=response_ttl, maxsize=max_responses)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            ("events", "learned", "duplicates", "unmatched", "rate_limited", "errors"), 0
        )
        self._handling_ns = 0
        self._handling_max_ns = 0
        self._warned_cost = False

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
            outcome = self._learn(kwargs, response_obj, start, end, failed=failed)
        except UnknownDecisionError as exc:  # another router's decision, or one long expired
            logger.debug("Feedback not recorded: %s", exc)
            outcome = "unmatched"
        except ConduitError as exc:
            level = logging.WARNING if isinstance(exc, UnknownModelError) else logging.DEBUG
            logger.log(level, "Feedback not recorded: %s", exc)
            outcome = "errors"
        except Exception:  # a hook must never raise into the caller's request
            logger.debug("Feedback handling failed", exc_info=True)
            outcome = "errors"
        self._count(outcome, time.perf_counter_ns() - began)
        if (
            outcome == "learned"
            and self._counts["learned"] % 100 == 0
            and logger.isEnabledFor(logging.DEBUG)
        ):
            router = self._router()
            if router is not None:
                stats = router.stats()
                logger.debug(
                    "Bandit updated: arms=%d, total_pulls=%d",
                    len(stats.models),
                    stats.total_decisions,
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
        params = kwargs.get("litellm_params") or {}
        served = (params.get("model_info") or {}).get("id")
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
        slo = kwargs.get("standard_logging_object") or {}
        if not isinstance(slo, Mapping):
            slo = {}
        latency = _seconds(start, end)
        if latency is None and isinstance(slo.get("response_time"), (int, float)):
            latency = float(slo["response_time"])
        quality: float | None
        cost: float | None = None
        if failed:
            exception = kwargs.get("exception")
            signal = signals.failure_signal(exception)
            if signal.quality is None:
                logger.debug("Rate limited on decision %s: nothing learned", decision_id)
                return "rate_limited"
            quality = signal.quality
            billed = kwargs.get("response_cost")
            cost = float(billed) if isinstance(billed, (int, float)) and billed > 0 else None
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
        if quality is None and cost is None and latency is None:
            return "unmatched"
        learned = router.update_sync(decision_id, quality=quality, cost=cost, latency=latency)
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
        for value in (kwargs.get("response_cost"), slo.get("response_cost")):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return float(value)
        tokens = _tokens(response_obj, slo)
        fields = _metadata(kwargs)[0]
        arm = fields.get(DEPLOYMENT_KEY, fields.get(MODEL_KEY))
        price = self._price(str(arm)) if (self._price is not None and arm is not None) else None
        if tokens is not None and price is not None:
            return tokens[0] * price[0] + tokens[1] * price[1]
        if not self._warned_cost:
            self._warned_cost = True
            logger.warning(
                "Cost unavailable in LiteLLM response (no response_cost, no price for %s): "
                "learning latency and quality only",
                arm,
            )
        return None

    # -- explicit feedback ---------------------------------------------------------------------
    def decision_for(self, response_or_id: object) -> str:
        """The decision id behind a LiteLLM response (object or id) or a decision id."""
        key = (
            response_or_id
            if isinstance(response_or_id, str)
            else getattr(response_or_id, "id", None)
        )
        if not isinstance(key, str) or not key:
            raise InvalidFeedbackError(
                f"expected a LiteLLM response or its id, got {type(response_or_id).__name__}"
            )
        return self.responses.get(key) or key

    def record_feedback(
        self,
        response_or_id: object,
        *,
        quality: float | None = None,
        thumbs: bool | None = None,
        rating: int | None = None,
    ) -> frozenset[str]:
        """Learn a human judgement of one response; a repeat is ignored (returns an empty set)."""
        value = explicit_quality(quality=quality, thumbs=thumbs, rating=rating)
        decision_id = self.decision_for(response_or_id)
        router = self._router()
        if router is None:
            raise UnknownDecisionError(f"no decision {decision_id!r}: nothing has been routed yet")
        try:
            return router.update_sync(decision_id, quality=value)
        except UnknownDecisionError as exc:
            raise UnknownDecisionError(
                f"unknown response or decision id {decision_id!r}: not routed by Conduit, "
                f"or older than the feedback window ({exc})"
            ) from exc

    def stats(self) -> dict[str, float]:
        """Event counts by outcome and the time spent handling them (microseconds)."""
        with self._lock:
            out: dict[str, float] = {k: float(v) for k, v in self._counts.items()}
            handled = max(self._counts["events"], 1)
            out["mean_handling_us"] = self._handling_ns / handled / 1000.0
            out["max_handling_us"] = self._handling_max_ns / 1000.0
            return out


class FeedbackServer:
    """A small HTTP endpoint for explicit feedback from outside the process.

    ``POST /feedback`` with ``Authorization: Bearer <token>`` and a JSON body
    ``{"response_id": "...", "thumbs": true}`` (or ``"rating": 1..5`` or
    ``"quality": 0..1``; ``"decision_id"`` works in place of ``"response_id"``).
    Answers 200 ``{"learned": [...]}`` (empty when already learned), 400 for bad
    feedback, 401 without the token, 404 for an unknown id. Runs in a daemon
    thread; binds 127.0.0.1 unless told otherwise.
    """

    max_body = 64 * 1024

    def __init__(
        self, feedback: ConduitFeedbackLogger, *, token: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigurationError(
                "the feedback endpoint needs a token of at least 16 characters"
            )
        self.feedback = feedback
        self._token = token.encode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("feedback endpoint: " + format, *args)

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
            body = json.loads(stream.read(size))
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}
        target = body.get("response_id") or body.get("decision_id")
        if not isinstance(target, str):
            return 400, {"error": "give response_id (or decision_id)"}
        try:
            learned = self.feedback.record_feedback(
                target,
                quality=body.get("quality"),
                thumbs=body.get("thumbs"),
                rating=body.get("rating"),
            )
        except UnknownDecisionError as exc:
            return 404, {"error": str(exc)}
        except ConduitError as exc:
            return 400, {"error": str(exc)}
        return 200, {"learned": sorted(learned)}

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
