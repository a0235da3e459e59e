"""``conduit dashboard``: one page and one JSON endpoint, served with the standard library.

``GET /`` is the page (``static/index.html`` with its script and style inlined,
both allowed by hash in the Content-Security-Policy, nothing loaded from
elsewhere); ``GET /api/summary[?namespace=N]`` is :func:`summarize` as JSON; any
other path is 404 and any other method 405.

Security: the server binds 127.0.0.1 unless told otherwise, and any other
address requires a token. With a token, every request must carry
``Authorization: Bearer <token>`` (the page may take ``?token=`` instead, which
its script then sends as the header and removes from the address bar); a
missing or wrong token is 401, compared in constant time. Without a token (on
loopback only) a request must name a loopback ``Host``, so a web page on
another origin cannot read the data through DNS rebinding. JSON escapes ``<``,
``>`` and ``&``, and the page only ever inserts text, never HTML.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from cachetools import TTLCache

from conduit import _validate
from conduit._errors import ConduitError, ConfigurationError
from conduit.dashboard._summary import HISTORY_LIMIT, summarize
from conduit.stores import Store, open_store
from conduit.stores._base import check_namespace

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MIN_TOKEN_LENGTH", "DashboardServer"]

logger = logging.getLogger("conduit.dashboard")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MIN_TOKEN_LENGTH = 16
#: Seconds a summary is reused, so many open tabs do not each read the store.
CACHE_SECONDS = 2.0
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']*")
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) is this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _json(value: Any) -> bytes:
    """JSON that is safe even if something treats it as HTML: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _page() -> tuple[bytes, str]:
    """The page with its style and script inlined, and the CSP that allows exactly those."""
    static = resources.files("conduit.dashboard") / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    style = (static / "dashboard.css").read_text(encoding="utf-8")
    script = (static / "dashboard.js").read_text(encoding="utf-8")
    page = html.replace("/*STYLE*/", style).replace("/*SCRIPT*/", script)
    csp = (
        f"default-src 'none'; script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return page.encode(), csp


class DashboardServer:
    """Serve the dashboard of one store (a :class:`~conduit.stores.Store` or URL).

    ``namespace`` is the one shown by default (the page can ask for another of the
    store's namespaces). A store opened from a URL is closed with the server.
    All store reads run in one worker thread, so a store keeps one connection.
    """

    def __init__(
        self,
        store: Store | str,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        namespace: str | None = None,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        if token is not None and (
            not isinstance(token, str)
            or len(token) < MIN_TOKEN_LENGTH
            or not _TOKEN_CHARS.fullmatch(token)
        ):
            raise ConfigurationError(
                f"the dashboard token must be at least {MIN_TOKEN_LENGTH} printable ASCII "
                "characters without spaces"
            )
        if token is None and not is_loopback(host):
            raise ConfigurationError(
                f"binding {host!r} exposes the dashboard beyond this machine: give --token "
                "(or set CONDUIT_DASHBOARD_TOKEN), or bind 127.0.0.1"
            )
        _validate.integer("port", port, low=0, high=65535)
        _validate.integer("history_limit", history_limit, low=0)
        if isinstance(store, str):
            self.store, self._owns_store = open_store(store), True
        else:
            self.store, self._owns_store = store, False
        self.namespace = check_namespace(namespace or self.store.namespace)
        self.history_limit = history_limit
        self._token = None if token is None else token.encode("ascii")
        self._page, self._csp = _page()
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conduit-dashboard")
        # A namespace per request must not grow this without bound.
        self._cache: TTLCache[str, bytes] = TTLCache(maxsize=64, ttl=CACHE_SECONDS)
        self._cache_lock = threading.Lock()
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self._httpd = server_class((host.strip("[]"), port), self._handler())
        except OSError as exc:
            self._reader.shutdown()
            if self._owns_store:
                self.store.close()
            raise ConfigurationError(f"cannot serve the dashboard on {host}:{port}: {exc}") from exc
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DashboardServer:
        """Serve in a daemon thread (for tests and embedding); :meth:`close` stops it."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},  # so that close() returns at once
                name="conduit-dashboard-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C) or :meth:`close`."""
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self._reader.shutdown()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------------
    def _authorized(self, authorization: str, query_token: str | None) -> bool:
        if self._token is None:
            return True
        given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        if not given and query_token is not None:
            given = query_token
        try:
            raw = given.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(raw, self._token)

    def _host_allowed(self, host_header: str | None) -> bool:
        """Without a token, only loopback Host names (no DNS rebinding from another origin)."""
        if self._token is not None:
            return True
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):  # [::1]:8765
            end = host.find("]")
            return end > 0 and is_loopback(host[1:end])
        return is_loopback(host.split(":", 1)[0])  # name:port

    def respond(
        self, method: str, target: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request (the handler only writes them out)."""
        json_headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        }

        def error(status: int, message: str, **extra: str) -> tuple[int, dict[str, str], bytes]:
            return status, {**json_headers, **extra}, _json({"error": message})

        if method not in ("GET", "HEAD"):
            return error(405, "only GET is served", Allow="GET, HEAD")
        path, _, raw_query = target.partition("?")  # taken literally: "//host/x" is no URL
        try:
            query = parse_qs(raw_query, keep_blank_values=True, max_num_fields=8)
        except ValueError:
            return error(400, "malformed query string")
        if not self._host_allowed(headers.get("host")):
            return error(403, "this dashboard answers only to a loopback Host name")
        if path in ("/", "/index.html"):
            if not self._authorized(headers.get("authorization", ""), _one(query, "token")):
                return error(401, "missing or wrong token", **{"WWW-Authenticate": "Bearer"})
            page_headers = {
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": self._csp,
            }
            return 200, page_headers, self._page
        if path == "/api/summary":
            if not self._authorized(headers.get("authorization", ""), None):
                return error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
            try:
                namespace = check_namespace(_one(query, "namespace") or self.namespace)
            except ConfigurationError as exc:
                return error(400, str(exc))
            try:
                body = self._summary(namespace)
            except ConduitError as exc:
                logger.warning("dashboard: cannot read %s: %s", self.store.url, exc)
                return error(503, f"cannot read the store: {exc}")
            return 200, json_headers, body
        return error(404, "not found")

    def _summary(self, namespace: str) -> bytes:
        with self._cache_lock:
            cached = self._cache.get(namespace)
        if cached is not None:
            return cached
        summary = self._reader.submit(
            summarize, self.store, namespace=namespace, history_limit=self.history_limit
        ).result()
        body = _json(summary.to_json())
        with self._cache_lock:
            self._cache[namespace] = body
        return body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 30  # seconds a client may take to send its request

            def version_string(self) -> str:
                return "conduit-dashboard"

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("dashboard: %s", _TOKEN_IN_URL.sub(r"\1***", format % args))

            def _serve(self, method: str) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = server.respond(method, self.path, headers)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("X-Frame-Options", "DENY")
                self.send_header("Referrer-Policy", "no-referrer")
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_OPTIONS(self) -> None:
                self._serve("OPTIONS")

        return Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
