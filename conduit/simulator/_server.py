"""A local OpenAI-compatible endpoint that answers with a routing log's outcomes.

Routing can then be exercised end to end — LiteLLM, HTTP, retries, cost
tracking — with no provider and no API key, while every answer carries the
quality and cost the log recorded for that model on that prompt, so a feedback
script can close the learning loop.

The outcome reaches the caller three ways: response headers ``x-conduit-quality``,
``x-conduit-cost``, ``x-conduit-known-prompt`` and ``x-conduit-record-id`` (LiteLLM
exposes them in ``response._hidden_params["additional_headers"]`` with an
``llm_provider-`` prefix), an extra ``conduit`` object in the JSON body, and real
``usage`` token counts that LiteLLM prices into ``response_cost``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from conduit import _validate
from conduit._errors import ConfigurationError, MissingDependencyError, UnknownModelError

try:
    from aiohttp import web
except ImportError as _exc:  # pragma: no cover - aiohttp comes with the litellm extra
    raise MissingDependencyError(
        "the simulator needs aiohttp: pip install 'conduit[litellm]'"
    ) from _exc
from conduit.replay.log import shipped_log
from conduit.simulator._catalog import Answer, Catalog, count_tokens
from conduit.simulator._judge import SimulatedJudge

__all__ = ["LOOPBACK_HOSTS", "Simulator", "quality_of"]

#: The only addresses the simulator binds: it is a test double, never a public service.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

#: Response headers that carry the logged outcome.
QUALITY_HEADER = "x-conduit-quality"
COST_HEADER = "x-conduit-cost"
KNOWN_HEADER = "x-conduit-known-prompt"
RECORD_HEADER = "x-conduit-record-id"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def quality_of(response: Any) -> float | None:
    """The logged quality a simulated answer carries, read from a LiteLLM response.

    LiteLLM keeps the provider's response headers, prefixed ``llm_provider-``, in
    ``response._hidden_params["additional_headers"]``; ``None`` if the header is absent.
    """
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    for key in (f"llm_provider-{QUALITY_HEADER}", QUALITY_HEADER):
        if key in headers:
            return float(headers[key])
    return None


class _RequestError(Exception):
    """An OpenAI-style error answer: HTTP status, error type, code and message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type,
            code,
            param,
        )

    def response(self) -> web.Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return web.json_response(body, status=self.status)


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> _RequestError:
    return _RequestError(400, message, type="invalid_request_error", param=param, code=code)


def _message_text(content: object) -> str:
    """Text of a message's content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _last_user_text(messages: object) -> str:
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' must be a non-empty array of messages", param="messages")
    text: str | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid(
                f"messages[{index}] must be an object with a string 'role'",
                param=f"messages.[{index}]",
            )
        if message["role"] == "user":
            text = _message_text(message.get("content"))
    if text is None:
        raise _invalid("'messages' must contain a message with role 'user'", param="messages")
    return text


class Simulator:
    """An OpenAI-compatible chat endpoint on loopback that replays a routing log.

    Use ``with Simulator(log) as sim:`` to serve from a background thread (tests,
    the demo), ``async with`` to serve on the running event loop, or :meth:`serve`
    to serve in the foreground. ``port=0`` picks a free port; ``sim.base_url`` is
    the ``api_base`` to give LiteLLM.

    ``latency_ms`` (plus or minus up to ``jitter_ms``, uniformly) delays each answer;
    ``error_rate`` of requests fail with an OpenAI-style 500 or 429, half each.
    Judge requests (:mod:`conduit.judge`'s markers) are graded from the log by
    ``judge`` (default: a perfect judge; see :class:`SimulatedJudge`), at the
    requested model's token price.
    """

    def __init__(
        self,
        log: str | Path | Catalog | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        error_rate: float = 0.0,
        seed: int | None = None,
        aliases: Mapping[str, str] | None = None,
        limit: int | None = None,
        max_body_bytes: int = 1 << 20,
        judge: SimulatedJudge | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ConfigurationError(
                f"the simulator binds loopback only ({', '.join(sorted(LOOPBACK_HOSTS))}), "
                f"got host {host!r}"
            )
        _validate.integer("port", port, low=0, high=65535)
        for name, value in (("latency_ms", latency_ms), ("jitter_ms", jitter_ms)):
            _validate.number(name, value, low=0)
        if jitter_ms > latency_ms:
            raise ConfigurationError(
                f"jitter_ms ({jitter_ms}) must not exceed latency_ms ({latency_ms})"
            )
        _validate.number("error_rate", error_rate, low=0, high=1)
        _validate.integer("max_body_bytes", max_body_bytes, low=1)
        if isinstance(log, Catalog):
            if aliases is not None or limit is not None:
                raise ConfigurationError("aliases and limit apply to a log path, not a Catalog")
            self.catalog = log
        else:
            self.catalog = Catalog.from_log(
                shipped_log() if log is None else log, limit=limit, aliases=aliases
            )
        self.host = host
        self.latency_ms = float(latency_ms)
        self.jitter_ms = float(jitter_ms)
        self.error_rate = float(error_rate)
        self.max_body_bytes = max_body_bytes
        self.judge = judge if judge is not None else SimulatedJudge(seed=seed or 0)
        self._requested_port = port
        self._port: int | None = None
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: Answers given per model, and injected errors per HTTP status.
        self.served: Counter[str] = Counter()
        self.injected: Counter[int] = Counter()
        #: Judge requests answered, per requested model (not counted in ``served``).
        self.judged: Counter[str] = Counter()

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise ConfigurationError("the simulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI ``api_base``: ``http://HOST:PORT/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def models(self) -> tuple[str, ...]:
        return self.catalog.models

    def price_per_token(self, model: str) -> float:
        """USD per token (input and output) that makes LiteLLM's cost match the log's."""
        return self.catalog.price_per_token[self.catalog.resolve(model)]

    # -- the application -------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure as an OpenAI-style JSON error, including aiohttp's 404 and 405."""
        try:
            return await handler(request)
        except _RequestError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error_type = "invalid_request_error" if exc.status < 500 else "server_error"
            return _RequestError(
                exc.status, f"{request.method} {request.path}: {exc.reason}", type=error_type
            ).response()

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "conduit-simulator"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        too_large = _invalid(
            f"the request body exceeds the simulator's limit of {self.max_body_bytes} bytes",
            code="request_too_large",
        )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise too_large
        body = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            body.extend(chunk)
            if len(body) > self.max_body_bytes:
                raise too_large
        try:
            payload = json.loads(body)
            # "\ud800" is valid JSON but no valid text: refuse it here, as a 400, rather
            # than fail on it later with a 500.
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid("the request body holds invalid Unicode (a lone surrogate)") from None
        except (ValueError, RecursionError):  # RecursionError: nested absurdly deep
            raise _invalid("We could not parse the JSON body of your request.") from None
        if not isinstance(payload, dict):
            raise _invalid("the request body must be a JSON object")
        return payload

    async def _delay(self) -> None:
        if self.latency_ms > 0:
            jitter = self._rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
            await asyncio.sleep((self.latency_ms + jitter) / 1000.0)

    def _maybe_fail(self) -> None:
        if self.error_rate <= 0 or self._rng.random() >= self.error_rate:
            return
        if self._rng.random() < 0.5:
            self.injected[429] += 1
            raise _RequestError(
                429,
                "Rate limit reached (simulated by conduit).",
                type="requests",
                code="rate_limit_exceeded",
            )
        self.injected[500] += 1
        raise _RequestError(
            500,
            "The server had an error while processing your request (simulated by conduit).",
            type="server_error",
        )

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        payload = await self._read_json(request)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("you must provide a model parameter", param="model")
        prompt = _last_user_text(payload.get("messages"))
        stream = payload.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("'stream' must be a boolean", param="stream")
        try:
            judged = self._judged(model, payload["messages"], prompt)
            answer = judged or self.catalog.answer(model, prompt)
        except UnknownModelError:
            raise _RequestError(
                404,
                f"The model `{model}` does not exist.",
                type="invalid_request_error",
                param="model",
                code="model_not_found",
            ) from None
        await self._delay()
        self._maybe_fail()
        if judged is None:
            self.served[answer.model] += 1
        else:
            self.judged[answer.model] += 1
        completion_id = f"chatcmpl-sim{next(self._ids)}-{uuid.uuid4().hex[:12]}"
        headers = {
            QUALITY_HEADER: repr(answer.quality),
            COST_HEADER: repr(answer.cost),
            KNOWN_HEADER: "true" if answer.known_prompt else "false",
            RECORD_HEADER: answer.record_id or "",
            "x-request-id": completion_id,
        }
        if stream:
            options = payload.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._stream(request, answer, completion_id, headers, usage)
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.model,
            "system_fingerprint": "conduit-simulator",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(answer),
            "conduit": self._metadata(answer),
        }
        return web.json_response(body, headers=headers)

    def _judged(self, model: str, messages: list[Any], prompt: str) -> Answer | None:
        """A judge's answer to a judge request (priced on every message's tokens), else None."""
        verdict = self.judge.reply(self.catalog, prompt)
        if verdict is None:
            return None
        logged = self.catalog.resolve(model)
        tokens = sum(count_tokens(_message_text(m.get("content"))) for m in messages)
        out = count_tokens(verdict)
        return Answer(
            model=model,
            content=verdict,
            quality=0.0,
            cost=self.catalog.price_per_token[logged] * (tokens + out),
            prompt_tokens=tokens,
            completion_tokens=out,
            known_prompt=False,
            record_id=None,
        )

    @staticmethod
    def _usage(answer: Answer) -> dict[str, int]:
        return {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        }

    @staticmethod
    def _metadata(answer: Answer) -> dict[str, Any]:
        return {
            "quality": answer.quality,
            "cost": answer.cost,
            "known_prompt": answer.known_prompt,
            "record_id": answer.record_id,
        }

    async def _stream(
        self,
        request: web.Request,
        answer: Answer,
        completion_id: str,
        headers: dict[str, str],
        include_usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": answer.model,
                "system_fingerprint": "conduit-simulator",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                **extra,
            }
            return f"data: {json.dumps(body)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}, None))
        await response.write(chunk({"content": answer.content}, None))
        await response.write(chunk({}, "stop", conduit=self._metadata(answer)))
        if include_usage:
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": answer.model,
                "choices": [],
                "usage": self._usage(answer),
            }
            await response.write(f"data: {json.dumps(body)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- serving on the current event loop -------------------------------------------------
    async def start(self) -> None:
        """Start serving on the running event loop."""
        if self._runner is not None:
            raise ConfigurationError("the simulator is already running")
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, backlog=4096)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigurationError(
                f"cannot listen on {self.host}:{self._requested_port} ({exc})"
            ) from exc
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self._port = int(sockets[0].getsockname()[1]) if sockets else self._requested_port

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve(self, ready: Callable[[Simulator], None] | None = None) -> None:
        """Serve until cancelled; ``ready`` is called once the port is bound."""
        await self.start()
        try:
            if ready is not None:
                ready(self)
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- serving from a background thread -------------------------------------------------
    def __enter__(self) -> Simulator:
        if self._thread is not None:
            raise ConfigurationError("the simulator is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="conduit-simulator", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=60)
        except BaseException:
            self._stop_thread()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_thread()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=60)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "stopped"
        return f"Simulator(models={len(self.models)}, prompts={len(self.catalog)}, {where})"
