"""The dashboard in a real browser: headless Chromium, driven over the DevTools protocol.

The test starts Debian's ``chromium`` itself, loads the dashboard of a store filled
by real replays of the shipped log (with a token, as an exposed dashboard would
be opened), waits for the page's ``data-ready`` flag, checks in the DOM that every
chart drew the store's data, and saves a screenshot (its path is printed). Without
Chromium the test skips loudly; with ``CONDUIT_REQUIRE_SERVICES=1`` (CI) it fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conduit.dashboard import DashboardServer, summarize
from conduit.stores import HistoryRecord, Store, open_store

from ..stores.conftest import REQUIRE
from .conftest import ROWS, Filled

websockets_client = pytest.importorskip("websockets.asyncio.client")

TOKEN = "browser-test-token-" + uuid.uuid4().hex
WIDTH, HEIGHT = 1280, 2000


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = (
            "CHROMIUM MISSING: the dashboard's browser test did NOT run. Install Debian's "
            "chromium (scripts/test does: apt-get install chromium), or set "
            "CONDUIT_REQUIRE_SERVICES=1 to make this a failure."
        )
        if REQUIRE:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert found is not None
    return found


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium of this test's own; the DevTools port."""
    profile = tmp_path / "profile"
    log_file = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [
            chromium_binary(),
            "--headless=new",
            "--no-sandbox",  # tests run as root in containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        start_new_session=True,  # its helper processes end with it
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"chromium did not start (exit {proc.poll()}):\n{log}")
            time.sleep(0.05)
        yield int(port_file.read_text().split()[0])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log_file.close()


class Page:
    """One browser tab over the DevTools protocol: commands, and the events seen meanwhile."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.calls = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        mine = self.calls
        await self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if message.get("id") == mine:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    async def eval(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str, timeout: float = 20.0) -> None:
        """Navigate and wait until the page says it drew its data (or reports an error)."""
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.eval(
                "document.readyState === 'complete' && document.body"
                " ? [document.body.dataset.ready, document.body.dataset.error || null] : null"
            )
            if state and state[1]:
                raise AssertionError(f"the page reports an error: {state[1]}")
            if state and state[0] == "true":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{url} did not set data-ready within {timeout} s")

    def problems(self) -> list[str]:
        """Script exceptions, console errors and CSP violations (a missing favicon aside)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded":
                entry = params["entry"]
                if entry["level"] == "error" and not entry.get("url", "").endswith("favicon.ico"):
                    found.append(f"{entry.get('source')}: {entry.get('text')}")
        return found


@contextlib.asynccontextmanager
async def tab(port: int) -> AsyncIterator[Page]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
        targets = json.load(answer)
    url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    async with websockets_client.connect(url, max_size=None, open_timeout=20) as ws:
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page


#: Everything the test reads from the drawn page, in one evaluation.
DOM = """(() => {
  const all = (q) => Array.from(document.querySelectorAll(q));
  const line = document.querySelector('#chart-savings path.savings-line');
  return {
    areas: all('#chart-traffic path.area').map((p) =>
      [p.dataset.model, Number(p.dataset.decisions), p.getAttribute('d').length]),
    legend: all('#legend rect').map((r) => r.dataset.model),
    dots: all('#chart-scatter circle.model-dot').map((c) => [c.dataset.model,
      Number(c.dataset.quality), Number(c.dataset.cost), Number(c.getAttribute('r'))]),
    preference: all('#chart-preference rect.bar').map((r) =>
      [r.dataset.group, r.dataset.model, Number(r.dataset.count)]),
    kind: all('#chart-kind rect.bar').map((r) =>
      [r.dataset.group, r.dataset.model, Number(r.dataset.count)]),
    savings: line && {points: Number(line.dataset.points), final: Number(line.dataset.final),
                      d: line.getAttribute('d').length},
    savingsText: document.getElementById('savings-number').textContent,
    cards: all('.card .value').map((c) => c.textContent),
    rows: all('#recent tbody tr').map((r) => [r.dataset.decision, r.children[2].textContent]),
    sources: all('#sources-table tbody tr').map((r) =>
      [r.dataset.source, Number(r.children[1].textContent)]),
    judgeCost: document.getElementById('judge-cost').textContent,
    search: window.location.search,
    images: document.images.length,
  };
})()"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


async def test_the_dashboard_draws_a_replayed_store_in_chromium(
    filled: Filled, store: Store, chromium: int, tmp_path: Path
) -> None:
    summary = summarize(store)
    server = DashboardServer(filled.url, port=0, token=TOKEN).start()
    try:
        async with tab(chromium) as page:
            await page.open(f"{server.url}?token={TOKEN}")
            dom = await page.eval(DOM)
            shot = await page.call("Page.captureScreenshot", format="png")
            problems = page.problems()
    finally:
        server.close()
    screenshot = tmp_path / "dashboard.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    print(f"\ndashboard screenshot: {screenshot}")

    assert problems == [], problems
    assert dom["search"] == "", "the token is taken out of the address bar"
    # traffic over time: one filled area per model, carrying that model's decisions
    counts = {m: sum(row) for m, row in summary.timeline.counts.items()}
    assert {m: n for m, n, _ in dom["areas"]} == counts
    assert sum(counts.values()) == 2 * ROWS
    assert all(length > 20 for _, _, length in dom["areas"]), "every area has a shape"
    assert sorted(dom["legend"]) == sorted(m.model for m in summary.models)
    # quality against cost: a dot per model with both, bigger for more traffic
    drawn = {m: (q, c, r) for m, q, c, r in dom["dots"]}
    expected = {
        m.model: (m.mean_quality, m.mean_cost)
        for m in summary.models
        if m.mean_quality is not None and m.mean_cost is not None
    }
    assert drawn.keys() == expected.keys() and len(drawn) >= 5
    for model, (quality, cost) in expected.items():
        assert drawn[model][:2] == pytest.approx((quality, cost))
    busiest = summary.models[0].model
    assert drawn[busiest][2] == max(r for _, _, r in drawn.values())
    # preferences and kinds: bars that add up to every decision of each group
    for key, groups in (("preference", summary.by_preference), ("kind", summary.by_kind)):
        totals: dict[str, int] = {}
        for group, _model, count, *_ in dom[key]:
            totals[group] = totals.get(group, 0) + count
        assert totals == {g: sum(c.values()) for g, c in groups.items()}, key
    assert {g for g, *_ in dom["preference"]} == {"balanced", "cost"}
    # savings: the number and a cumulative line ending at it
    savings = summary.savings
    assert savings is not None and dom["savings"] is not None
    assert dom["savings"]["points"] == len(summary.savings_curve) >= 2
    assert dom["savings"]["final"] == pytest.approx(savings.saved, rel=1e-6, abs=1e-9)
    assert f"over {savings.decisions} decisions" in dom["savingsText"]
    assert dom["cards"][0] == str(2 * ROWS)
    # recent decisions with their reasons
    assert [r[0] for r in dom["rows"]] == [r.decision_id for r in summary.recent]
    assert all("best score" in why for _, why in dom["rows"])
    # where quality labels came from (the replays': a person's) and what judging cost
    sources = summary.quality_sources
    assert sources is not None
    assert dict(dom["sources"]) == sources.labels and dict(dom["sources"])["explicit"] == 2 * ROWS
    assert dom["judgeCost"].startswith("judge: $0.0000 over 0 calls")
    # the screenshot is the page, at the size asked for
    assert png_size(screenshot.read_bytes()) == (WIDTH, HEIGHT)
    assert screenshot.stat().st_size > 50_000, "a page with charts, not a blank one"


HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


async def test_hostile_names_are_shown_as_text_in_the_browser(chromium: int) -> None:
    store = open_store(f"memory://{uuid.uuid4().hex}")
    store.write_history(
        [
            HistoryRecord(f"d{i}", "default", float(i), model=HOSTILE, quality=1.0, cost=0.001)
            for i in range(10)
        ]
    )
    server = DashboardServer(store, port=0).start()
    try:
        async with tab(chromium) as page:
            await page.open(server.url)
            pwned = await page.eval("window.__pwned === undefined ? null : window.__pwned")
            dom = await page.eval(DOM)
            legend = await page.eval("document.querySelector('#legend text').textContent")
    finally:
        server.close()
    assert pwned is None and dom["images"] == 0
    assert dom["dots"][0][0] == HOSTILE and legend.startswith("<img src=x")
