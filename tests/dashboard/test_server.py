"""The dashboard's HTTP surface: the page, the JSON endpoint, tokens, 404s, hostile requests."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conduit._errors import ConfigurationError, StoreError
from conduit.cli import main
from conduit.config import DASHBOARD_TOKEN_ENV
from conduit.dashboard import DashboardServer, summarize
from conduit.stores import HistoryRecord, Store, open_store
from conduit.stores._memory import MemoryStore

from .conftest import Filled

TOKEN = "t0k3n-" + "x" * 26

Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
def serve() -> Iterator[Callable[..., DashboardServer]]:
    """serve(store, **kwargs) -> a started server on a free port, closed after the test."""
    started: list[DashboardServer] = []

    def _serve(store: Store | str, **kwargs: Any) -> DashboardServer:
        kwargs.setdefault("port", 0)
        server = DashboardServer(store, **kwargs).start()
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.close()


def get(server: DashboardServer, path: str, headers: dict[str, str] | None = None) -> Response:
    return request(server, "GET", path, headers)


def request(
    server: DashboardServer, method: str, path: str, headers: dict[str, str] | None = None
) -> Response:
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw(server: DashboardServer, data: bytes) -> bytes:
    """Send bytes as they are (no client library to tidy them up); the whole answer."""
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- the page and the data ----------------------------------------------------------------------
def test_the_page_is_self_contained_and_its_csp_allows_only_its_own_code(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url)
    status, headers, body = get(server, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    # nothing from elsewhere: no src/href attribute, no URL but the SVG namespace
    assert not re.search(r"\b(src|href)\s*=", page)
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    script = re.search(r"<script>(.*)</script>", page, re.S)
    style = re.search(r"<style>(.*)</style>", page, re.S)
    assert script is not None and style is not None
    csp = headers["content-security-policy"]
    for code, directive in ((script.group(1), "script-src"), (style.group(1), "style-src")):
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    for name, value in (
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("server", "conduit-dashboard"),
    ):
        assert headers[name] == value
    assert get(server, "/index.html")[2] == body
    assert 'id="sources-table"' in page and "function qualitySources" in page


def test_the_data_endpoint_is_the_summary(
    filled: Filled, store: Store, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url)
    status, headers, body = get(server, "/api/summary")
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    data = json.loads(body)
    expected = summarize(store).to_json()
    keys = ("models", "total_decisions", "savings", "timeline", "by_kind", "recent")
    for key in (*keys, "quality_sources"):
        assert data[key] == expected[key], key
    assert data["by_preference"].keys() == {"balanced", "cost"}


def test_another_namespace_by_query_and_bad_ones_refused(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url)
    status, _, body = get(server, "/api/summary?namespace=elsewhere")
    assert status == 200
    data = json.loads(body)
    assert (data["namespace"], data["total_decisions"], data["namespaces"]) == (
        "elsewhere",
        0,
        ["default"],
    )
    status, _, body = get(server, "/api/summary?namespace=a%0Ab")
    assert status == 400 and b"control characters" in body
    status, _, body = get(server, "/api/summary?" + "&".join(f"k{i}=v" for i in range(20)))
    assert status == 400 and b"malformed query" in body


def test_hostile_model_names_stay_text(serve: Callable[..., DashboardServer]) -> None:
    hostile = "<script>alert(1)</script>&<img src=x onerror=alert(2)>"
    store = open_store(f"memory://{uuid.uuid4().hex}")
    store.write_history([HistoryRecord("d1", "default", 1.0, model=hostile, quality=1.0)])
    server = serve(store)
    status, _, body = get(server, "/api/summary")
    assert status == 200
    assert b"<" not in body and b">" not in body and b"&" not in body
    assert json.loads(body)["models"][0]["model"] == hostile
    page = get(server, "/")[2].decode()
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page
    assert "document.write" not in page


def test_a_failing_store_is_a_503_not_a_crash(serve: Callable[..., DashboardServer]) -> None:
    class DownStore(MemoryStore):
        def _read(self, namespace: str) -> str | None:
            raise StoreError("connection refused")

    server = serve(DownStore())
    status, _, body = get(server, "/api/summary")
    assert status == 503 and b"connection refused" in body
    assert get(server, "/")[0] == 200  # the page itself still loads


# -- tokens ---------------------------------------------------------------------------------------
BAD_SERVERS: list[tuple[dict[str, Any], str]] = [
    ({"host": "0.0.0.0"}, r"binding '0.0.0.0' exposes the dashboard .* give --token"),
    ({"host": "192.0.2.1"}, r"exposes the dashboard"),
    ({"host": "::"}, r"exposes the dashboard"),
    ({"token": "short"}, r"at least 16 printable ASCII"),
    ({"token": "sixteen chars with spaces"}, r"without spaces"),
    ({"token": "é" * 20}, r"printable ASCII"),
    ({"port": 70000}, r"port must be an int in \[0, 65535\]"),
    ({"port": True}, r"port must be an int"),
    ({"history_limit": -1}, r"history_limit must be an int >= 0"),
    ({"namespace": "a\nb"}, r"control characters"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_SERVERS)
def test_unsafe_or_invalid_servers_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DashboardServer(open_store("memory://"), **{"port": 0, **kwargs})


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/summary", {}, 401),
        ("/api/summary", {"Authorization": "Bearer wrong-token-of-some-length"}, 401),
        ("/api/summary", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("/api/summary", {"Authorization": f"Bearer {TOKEN}x"}, 401),
        ("/api/summary", {"Authorization": f"Bearer {TOKEN[:-1]}"}, 401),
        ("/api/summary", {"Authorization": "Bearer " + "A" * 20_000}, 401),
        (f"/api/summary?token={TOKEN}", {}, 401),  # the data needs the header
        ("/", {}, 401),
        ("/?token=wrong", {}, 401),
        ("/nope", {}, 404),  # unknown paths say nothing else, token or not
        ("/api/summary", {"Authorization": f"Bearer {TOKEN}"}, 200),
        ("/api/summary", {"Authorization": f"bearer  {TOKEN} "}, 200),
        ("/", {"Authorization": f"Bearer {TOKEN}"}, 200),
        (f"/?token={TOKEN}", {}, 200),
        (f"/index.html?token={TOKEN}&namespace=x", {}, 200),
    ],
)
def test_with_a_token_every_request_must_carry_it(
    filled: Filled,
    serve: Callable[..., DashboardServer],
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    server = serve(filled.url, token=TOKEN)
    got, answer, body = get(server, path, headers)
    assert got == status, body
    if status == 401:
        assert answer["www-authenticate"] == "Bearer" and TOKEN.encode() not in body


def test_a_non_ascii_token_header_is_refused_cleanly(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url, token=TOKEN)
    answer = raw(
        server,
        b"GET /api/summary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.0 401 ")


def test_an_exposed_dashboard_with_a_token_serves_any_host_name(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url, host="0.0.0.0", token=TOKEN)
    assert server.url.startswith("http://0.0.0.0:")
    port = server.url.rsplit(":", 1)[1].rstrip("/")
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    conn.request("GET", "/api/summary", headers={"Authorization": f"Bearer {TOKEN}", "Host": "h"})
    assert conn.getresponse().status == 200
    conn.close()


def test_the_token_is_never_logged(
    filled: Filled, serve: Callable[..., DashboardServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(filled.url, token=TOKEN)
    with caplog.at_level(logging.DEBUG, logger="conduit.dashboard"):
        assert get(server, f"/?token={TOKEN}")[0] == 200
        assert get(server, "/?token=wrong&x=1")[0] == 401
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "/?token=***" in logged and "token=***&x=1" in logged
    assert TOKEN not in logged and "wrong" not in logged


def test_the_command_reads_the_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DASHBOARD_TOKEN_ENV, "too-short")
    assert main(["dashboard", "--store", "memory://", "--port", "0"]) == 2
    assert "the dashboard token must be at least 16" in capsys.readouterr().err
    monkeypatch.delenv(DASHBOARD_TOKEN_ENV)
    assert main(["dashboard", "--store", "memory://", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "give --token (or set CONDUIT_DASHBOARD_TOKEN)" in capsys.readouterr().err


# -- paths, methods and hostile requests ----------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api",
        "/api/summary/",
        "/api/summary/../../etc/passwd",
        "/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/dashboard.js",
        "/conduit/dashboard/static/index.html",
        "//evil.example/x",
        "/index.html%00",
        "/" + "a" * 8000,
        "/%ff%fe",
    ],
)
def test_anything_else_is_404(
    filled: Filled, serve: Callable[..., DashboardServer], path: str
) -> None:
    status, headers, body = get(serve(filled.url), path)
    assert status == 404 and json.loads(body) == {"error": "not found"}
    assert headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head(
    filled: Filled, serve: Callable[..., DashboardServer], method: str
) -> None:
    status, headers, _ = request(serve(filled.url), method, "/api/summary")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_has_headers_and_no_body(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    status, headers, body = request(serve(filled.url), "HEAD", "/")
    assert status == 200 and int(headers["content-length"]) > 1000 and body == b""


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        # DNS rebinding: another origin's name for this address is refused without a token
        (b"GET /api/summary HTTP/1.1\r\nHost: evil.example:8765\r\n\r\n", b"HTTP/1.0 403 "),
        (b"GET /api/summary HTTP/1.1\r\nHost: 127.0.0.1.evil.example\r\n\r\n", b"HTTP/1.0 403 "),
        (b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 403 "),  # no Host at all
        (b"GET /api/summary HTTP/1.1\r\nHost: [::1]:8765\r\n\r\n", b"HTTP/1.0 200 "),
        (b"GET /api/summary HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.0 200 "),
        (b"GET /api/summary HTTP/1.1\r\nHost: [::1\r\n\r\n", b"HTTP/1.0 403 "),
        # an absolute URL is taken as a path, not fetched or followed
        (
            b"GET http://evil.example/api/summary HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"HTTP/1.0 404 ",
        ),
        # malformed requests get the standard library's answers, and the server lives on
        (b"GARBAGE\r\n\r\n", b"Error code: 400"),  # an HTTP/0.9-style answer: no status line
        (b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n", b"Error code: 505"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.0 414 "),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
            b"HTTP/1.0 431 ",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n",
            b"HTTP/1.0 431 ",
        ),
        (b"BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.0 501 "),
        (
            b"POST /api/summary HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.0 405 ",
        ),
    ],
)
def test_hostile_requests_get_an_answer_and_the_server_lives_on(
    filled: Filled, serve: Callable[..., DashboardServer], data: bytes, answer: bytes
) -> None:
    server = serve(filled.url)
    reply = raw(server, data)
    assert reply.startswith(answer) or (answer.startswith(b"Error") and answer in reply)
    assert get(server, "/api/summary")[0] == 200


def test_a_client_that_sends_nothing_does_not_block_others(
    filled: Filled, serve: Callable[..., DashboardServer]
) -> None:
    server = serve(filled.url)
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10):  # opened, silent
        assert get(server, "/api/summary")[0] == 200


def test_ipv6_loopback_and_a_port_in_use(serve: Callable[..., DashboardServer]) -> None:
    try:
        v6 = serve("memory://", host="::1")
    except ConfigurationError as exc:  # a machine without IPv6
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert v6.url.startswith("http://[::1]:") and get(v6, "/api/summary")[0] == 200
    taken = serve("memory://")
    port = int(taken.url.rsplit(":", 1)[1].rstrip("/"))
    with pytest.raises(ConfigurationError, match="Address already in use"):
        DashboardServer("memory://", port=port)
