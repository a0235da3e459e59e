"""Soak test: mixed LiteLLM traffic for a long time, with provider errors and store outages.

    python benchmarks/bench_soak.py [--minutes 30] [--concurrency 8] [--error-rate 0.05]
                                    [--outages 3] [--outage-seconds 30] [--data-loss]
                                    [--json OUT]

A ``litellm.Router`` over two model groups of the simulator (the shipped RouterBench
log served on loopback; ``--error-rate`` of answers are an OpenAI-style 429 or 500)
with Conduit installed (``scope="group"``, metrics on, learning synced every
``--sync-interval`` seconds to a redis-server this script starts on a free port) takes
``--concurrency`` workers of traffic: ``acompletion`` and, for ``--sync-share`` of the
requests, the blocking ``completion`` (in a thread); a random group and preference
preset per request. ``--feedback-share`` of the answers get their logged quality back
through ``record_feedback``, a third of those up to two seconds later; cost, latency
and failures are learned from LiteLLM's callbacks.

The run has two phases with a *quiet point* after each (no request in flight, every
feedback handled, the store synced, a full garbage collection): the warm-up, which
fills everything Conduit keeps per request to its bound (pending decisions, kept
explanations, the response map and the metrics' decision map, ``--cap`` each; the
feature cache: every one of the ``--prompts`` distinct prompts is sent once, in seeded
random order, before any is repeated). It lasts ``--warmup`` of the time (or of the
requests) and, beyond that, until every one of those maps is full (a line is printed
when they are: at 10,000 each that takes some 10,000 requests, more than a short run's
warm-up share at a loaded machine's rate), so the memory line is measured only over
traffic that no longer fills anything. Then the measured phase, the rest of
``--minutes`` (or of ``--requests``) counted from the end of the warm-up, in which the
redis-server is stopped for ``--outage-seconds``, ``--outages`` times, and started
again (the last fifth has no outage, so the store can catch up). With ``--data-loss``
the store is flushed (``FLUSHALL``: what a restart without persistence or an eviction
does) at 85 % of the measured phase; the router must notice, keep its learning and
re-seed the store.
RSS, the router's learned counts and the history backlog are sampled once a second.

Checks (exit 1 if any fails):

- **bounded maps full before measuring**: at the first quiet point every map above
  holds its bound (the warm-up lasts until it does);
- **memory flat**: between the two quiet points, live Python objects (``gc``; a dict
  that grows is one object) and Python's allocated memory blocks (strings and numbers
  too: ``sys.getallocatedblocks``) each grow by at most ``--objects-allowance`` plus
  ``--objects-per-request`` per measured request.
  The allowance (2,000) covers what does not scale with traffic: LiteLLM's attempt
  timers still pending (its 5 s settlement grace; a few hundred at 100 requests/s) and
  an outage's leftovers (the last store error and its traceback). Measured, the count
  moves by a few hundred either way between quiet points; a leak of one object per
  ten requests fails a 30-minute run. Resident memory may grow by at most
  ``--memory-bound`` MiB (64): it includes what the allocator keeps rather than
  returns. Measured over 30 minutes with a ten-minute outage (``--outages 1
  --outage-seconds 600 --data-loss``) it rose 31.6 MiB, in steps at events (18 MiB over
  the outage's first half as the backlog filled, 3 over its second half, 2 at recovery,
  2 after the flush), while the live objects (+365) and the allocated blocks (+415 over
  84,448 requests) stayed flat. The bounded structures are within ``--cap``;
- **no lost feedback**: decisions = requests; learned costs and latencies = answers;
  learned qualities = explicit feedback given + failed calls (quality 0; a 429 teaches
  nothing); the feedback logger handled every event, none in error or unmatched; and
  after the outages the store caught up: its summed state and its history equal the
  router's; the metrics counted every decision;
- **outages and data loss**: the history backlog never exceeds its bound; RSS over
  the second half of each outage of a minute or more grows by at most a quarter of
  ``--memory-bound`` (flat: learning is merged, not queued, while the store is down);
  the router's learned counts never go down (sampled each second), and after a
  ``--data-loss`` the router noticed it (``state_lost``) and the store holds exactly
  the router's learning again (history written before the flush is gone: it is not
  re-seeded);
- **error budget**: provider errors seen by callers = errors the simulator injected;
  requests failed by Conduit = 0, Conduit fallbacks = 0; store sync errors (the
  outages) reported; p50/p99 of the time spent in Conduit's routing hook per request
  (the latency Conduit adds, waiting for the event loop included), and of whole requests.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import gc
import itertools
import linecache
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import _common  # also the offline environment
import litellm
from _redis_server import RedisServer, free_port
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

from conduit._errors import ConduitError
from conduit.metrics import Metrics
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator, quality_of
from conduit.stores import open_store
from conduit.stores._base import FORGET_KEYS
from conduit_litellm import ConduitRoutingStrategy

GROUPS = {
    "cheap": ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat", "claude-instant-v1"),
    "smart": ("gpt-4-1106-preview", "claude-v2", "meta/llama-2-70b-chat"),
}
PRESETS = (None, "balanced", "quality", "cost", "speed")
#: Marks the simulator's injected errors, so a caller can tell them from anything else.
SIMULATED = "simulated by conduit"


@dataclass(frozen=True, kw_only=True)
class SoakConfig:
    seconds: float
    #: Run by request count instead of by time: this many requests after the first two,
    #: the warm-up share of them first; the outages start at fixed request counts.
    requests: int | None = None
    concurrency: int = 8
    error_rate: float = 0.05
    sync_share: float = 0.3
    feedback_share: float = 0.7
    delayed_share: float = 0.3
    max_delay: float = 2.0
    outages: int = 1
    outage_seconds: float = 5.0
    data_loss: bool = False
    latency_ms: float = 5.0
    prompts: int = 500
    backend: str = "hashing"
    sync_interval: float = 0.5
    cap: int = 1000
    warmup: float = 0.3
    memory_bound_mib: float = 32.0
    objects_per_request: float = 0.05
    objects_allowance: int = 2000
    #: Python's allocated blocks count strings and numbers too, so what an outage or a
    #: first-time code path loads once moves them more than the objects; None: the same.
    blocks_allowance: int | None = None
    seed: int = 0


class StoreServer(Protocol):
    """A store server the soak can take down: a URL, and start/stop."""

    url: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


# -- measuring in constant memory -----------------------------------------------------------------
class Histogram:
    """Durations in log-spaced buckets (1 µs to 100 s, 2 % apart): percentiles in O(1) memory,
    so measuring a long soak does not itself grow."""

    def __init__(self) -> None:
        self.edges = [1e-6 * 1.02**i for i in range(931)]
        self.counts = [0] * (len(self.edges) + 1)
        self.n = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.edges, seconds)] += 1
            self.n += 1

    def percentile(self, q: float) -> float:
        """The bucket's upper edge (2 % resolution), in milliseconds."""
        rank, seen = q * self.n, 0
        for i, count in enumerate(self.counts):
            seen += count
            if count and seen >= rank:
                return self.edges[min(i, len(self.edges) - 1)] * 1e3
        return 0.0


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class TimedStrategy(ConduitRoutingStrategy):
    """The strategy, with the time spent in its routing hook (the latency it adds) measured."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.picks = Histogram()

    async def async_get_available_deployment(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await super().async_get_available_deployment(*args, **kwargs)
        finally:
            self.picks.add(time.perf_counter() - started)

    def get_available_deployment(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().get_available_deployment(*args, **kwargs)
        finally:
            self.picks.add(time.perf_counter() - started)


def model_list(sim: Simulator) -> list[dict[str, Any]]:
    # max_retries=0: the OpenAI client's own retries would hide injected errors
    return [
        d
        for group, models in GROUPS.items()
        for d in _common.deployments(sim, group, models, max_retries=0)
    ]


# -- the traffic ---------------------------------------------------------------------------------
@dataclass
class Tally:
    requests: int = 0
    successes: int = 0
    explicit: int = 0
    provider_errors: Counter[int] = dataclasses.field(default_factory=Counter)
    conduit_failures: Counter[str] = dataclasses.field(default_factory=Counter)
    failure_examples: list[str] = dataclasses.field(default_factory=list)
    requests_total: Histogram = dataclasses.field(default_factory=Histogram)


def provider_status(exc: BaseException) -> int | None:
    """The HTTP status of an error the simulator injected, or None for any other error."""
    status = getattr(exc, "status_code", None)
    if SIMULATED in str(exc) and status in (429, 500):
        return int(status)
    return None


class Samples:
    """Rows of numbers kept in flat arrays, so that sampling once a second adds no Python
    object and none of Python's small memory blocks to what the memory checks count (a
    list of tuples did: some 6 blocks a second, +8,000 blocks in a 30-minute run)."""

    def __init__(self, width: int) -> None:
        self.columns = [array("d") for _ in range(width)]

    def append(self, row: tuple[float, ...]) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    def __iter__(self) -> Iterator[tuple[float, ...]]:
        return zip(*self.columns, strict=True)


@dataclass(frozen=True)
class Quiet:
    """A quiet point: nothing in flight, every feedback handled, the store synced, gc run."""

    at: float
    requests: int
    rss_mib: float
    objects: int
    blocks: int
    types: Counter[str]


class Soak:
    """One soak run against a store server (started, and left running)."""

    def __init__(self, config: SoakConfig, server: StoreServer) -> None:
        self.config = config
        self.server = server
        self.rng = random.Random(config.seed)
        self.tally = Tally()
        self.delayed: set[asyncio.Task[None]] = set()
        self.outage_log: list[str] = []
        #: (time, RSS), once a second
        self.rss = Samples(2)
        #: (time, learned decisions + feedback, history backlog), once a second
        self.learned = Samples(3)
        self.windows: list[tuple[float, float]] = []
        records = read_log(shipped_log())
        self.prompts = list(dict.fromkeys(r.prompt for r in records))[: config.prompts]
        # the warm-up sends every prompt once (the feature cache filled) before any repeats
        self.sweep = iter(self.rng.sample(self.prompts, len(self.prompts)))
        self.swept = False
        #: (requests, seconds) when every bounded map was first full
        self.full_at: tuple[int, float] | None = None
        self.fill_after_warmup: dict[str, tuple[int, int]] = {}
        namespace = f"soak{uuid.uuid4().hex[:8]}"
        self.url = f"{server.url}?prefix={namespace}&namespace={namespace}"
        self.start = time.monotonic()

    async def run(self) -> dict[str, Any]:
        c = self.config
        with Simulator(
            latency_ms=c.latency_ms, jitter_ms=c.latency_ms / 2, error_rate=c.error_rate,
            seed=c.seed,
        ) as sim:  # fmt: skip
            self.router = litellm.Router(model_list=model_list(sim), num_retries=0)
            self.strategy = TimedStrategy(
                scope="group",
                seed=c.seed,
                embedding_backend=c.backend,  # type: ignore[arg-type]
                max_responses=c.cap,
                metrics=Metrics(tracked_decisions=c.cap),
                router_options={
                    "state_store": self.url,
                    "sync_interval": c.sync_interval,
                    "max_pending": c.cap,
                    "max_explanations": c.cap,
                },
            )
            ConduitRoutingStrategy.setup_strategy(self.router, self.strategy)
            try:
                self.start = time.monotonic()
                # one call each way first: concurrent first calls race to create LiteLLM's
                # cached client, and the losers' sockets are left open
                await self.one(blocking=True)
                await self.one(blocking=False)
                # the warm-up: its share of the run, and until every bounded map is full
                # (asked first, so that the moment they are is printed as it happens)
                if c.requests is None:
                    warm_end = self.start + c.seconds * c.warmup
                    await self.traffic(lambda: self.full() and time.monotonic() >= warm_end)
                else:
                    warm = self.tally.requests + round(c.requests * c.warmup)
                    await self.traffic(lambda: self.full() and self.tally.requests >= warm)
                first = await self.quiet()
                self.fill_after_warmup = self.fill()
                measured = time.monotonic()
                if c.requests is None:
                    end = measured + c.seconds * (1 - c.warmup)
                    faults = asyncio.create_task(self.outages(measured, end))
                    done: Callable[[], bool] = lambda: time.monotonic() >= end  # noqa: E731
                else:
                    total = self.tally.requests + c.requests - round(c.requests * c.warmup)
                    faults = asyncio.create_task(self.outages_by_count(self.tally.requests, total))
                    # by count, the traffic also goes on until the last outage is over
                    done = lambda: self.tally.requests >= total and faults.done()  # noqa: E731
                sampler = asyncio.create_task(self.sample(done))
                await self.traffic(done)
                await faults
                await sampler
                last = await self.quiet()
                wall = time.monotonic() - self.start
                result = self.report(sim, first, last, wall)
            finally:
                self.strategy.cleanup()
                with contextlib.suppress(ConduitError), open_store(self.url) as store:
                    store.reset()
            await litellm.close_litellm_async_clients()  # type: ignore[attr-defined,no-untyped-call]
            close_sync_clients(sim.base_url)
        return result

    # -- traffic ---------------------------------------------------------------------------------
    async def traffic(self, done: Callable[[], bool]) -> None:
        await asyncio.gather(*(self.worker(done) for _ in range(self.config.concurrency)))

    async def worker(self, done: Callable[[], bool]) -> None:
        while not done():
            await self.one()

    async def one(self, blocking: bool | None = None) -> None:
        rng, tally = self.rng, self.tally
        group = rng.choice(sorted(GROUPS))
        preset = rng.choice(PRESETS)
        kwargs: dict[str, Any] = {
            "model": group,
            "messages": [{"role": "user", "content": self.prompt()}],
        }
        if preset is not None:
            kwargs["metadata"] = {"conduit_preferences": preset}
        if blocking is None:
            blocking = rng.random() < self.config.sync_share
        tally.requests += 1
        started = time.perf_counter()
        try:
            if blocking:
                response = await asyncio.to_thread(self.router.completion, **kwargs)
            else:
                response = await self.router.acompletion(**kwargs)
        except Exception as exc:  # the error budget: every failure is classified
            status = provider_status(exc)
            if status is not None:
                tally.provider_errors[status] += 1
            else:
                tally.conduit_failures[type(exc).__name__] += 1
                if len(tally.failure_examples) < 10:
                    tally.failure_examples.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            return
        finally:
            tally.requests_total.add(time.perf_counter() - started)
        tally.successes += 1
        if rng.random() >= self.config.feedback_share:
            return
        quality = quality_of(response)
        if quality is None:
            tally.conduit_failures["no logged quality"] += 1
            return
        tally.explicit += 1
        if rng.random() < self.config.delayed_share:
            task = asyncio.create_task(
                self.later(response, quality, rng.random() * self.config.max_delay)
            )
            self.delayed.add(task)
            task.add_done_callback(self.delayed.discard)
        else:
            self.feed(response, quality)

    def prompt(self) -> str:
        if not self.swept:
            text = next(self.sweep, None)
            if text is not None:
                return text
            self.swept = True
        return self.rng.choice(self.prompts)

    # -- the bounded maps -------------------------------------------------------------------
    def fill(self) -> dict[str, tuple[int, int]]:
        """Each map Conduit keeps per request or per prompt: (entries now, its bound)."""
        c, strategy = self.config, self.strategy
        engine, metrics = strategy.conduit_router, strategy.metrics
        assert engine is not None and metrics is not None
        return {
            "pending decisions": (len(engine._pending), c.cap),
            "explanations": (len(engine._recent), c.cap),
            "response map": (len(strategy.feedback.responses), c.cap),
            "metrics' decisions": (len(metrics._decisions), c.cap),
            "prompts sent (feature cache)": (
                len(self.prompts) if self.swept else 0,
                len(self.prompts),
            ),
        }

    def full(self) -> bool:
        """Whether every bounded map is full; prints the moment they first are."""
        if self.full_at is not None:
            return True
        if not self.swept or not all(n >= bound for n, bound in self.fill().values()):
            return False
        self.full_at = (self.tally.requests, time.monotonic() - self.start)
        print(
            f"bounded maps full at request {self.full_at[0]} ({self.full_at[1]:.0f} s): "
            + ", ".join(f"{k} {n}" for k, (n, _) in self.fill().items()),
            flush=True,
        )
        return True

    def feed(self, response: Any, quality: float) -> None:
        try:
            learned = self.strategy.record_feedback(response, quality=quality)
        except ConduitError as exc:  # e.g. the decision expired: a lost feedback
            self.tally.conduit_failures[f"feedback refused ({type(exc).__name__})"] += 1
            return
        if learned != {"quality"}:
            self.tally.conduit_failures["feedback not learned"] += 1

    async def later(self, response: Any, quality: float, delay: float) -> None:
        await asyncio.sleep(delay)
        self.feed(response, quality)

    # -- faults and measurements -----------------------------------------------------------------
    async def outages(self, begin: float, end: float) -> None:
        """Stop and restart the store ``outages`` times in the first four fifths of the span."""
        c = self.config
        span = (end - begin) * 0.8
        for i in range(c.outages):
            at = begin + span * (i + 0.5) / c.outages - c.outage_seconds / 2
            await asyncio.sleep(max(at - time.monotonic(), 0.0))
            await asyncio.to_thread(self.server.stop)
            down = time.monotonic() - self.start
            self.outage_log.append(f"store down at {down:.1f} s")
            await asyncio.sleep(c.outage_seconds)
            await asyncio.to_thread(self.server.start)
            up = time.monotonic() - self.start
            self.windows.append((down, up))
            self.outage_log.append(f"store up at {up:.1f} s")
        if c.data_loss:
            await asyncio.sleep(max(begin + (end - begin) * 0.85 - time.monotonic(), 0.0))
            await asyncio.to_thread(flush, self.server.url)
            self.outage_log.append(f"store flushed at {time.monotonic() - self.start:.1f} s")

    async def outages_by_count(self, begin: int, end: int) -> None:
        """Stop the store ``outages`` times, each when the requests reach a fixed count in the
        first four fifths of the measured ones, for ``outage_seconds`` each; with
        ``data_loss``, flush it when the requests reach 85 % of the measured ones."""
        c = self.config
        for i in range(c.outages):
            at = begin + (end - begin) * 0.8 * (i + 0.5) / c.outages
            while self.tally.requests < at:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(self.server.stop)
            down = time.monotonic() - self.start
            self.outage_log.append(f"store down at request {self.tally.requests}")
            await asyncio.sleep(c.outage_seconds)
            await asyncio.to_thread(self.server.start)
            self.windows.append((down, time.monotonic() - self.start))
            self.outage_log.append(f"store up at request {self.tally.requests}")
        if c.data_loss:
            while self.tally.requests < begin + (end - begin) * 0.85:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(flush, self.server.url)
            self.outage_log.append(f"store flushed at request {self.tally.requests}")

    async def sample(self, done: Callable[[], bool]) -> None:
        """RSS, learned counts and the history backlog once a second (a few thousand
        numbers for an hour: a fixed cost)."""
        while not done():
            at = time.monotonic() - self.start
            self.rss.append((at, rss_mib()))
            engine = self.strategy.conduit_router
            if engine is not None and engine.store_sync is not None:
                stats = engine.stats()
                # decisions only: a detected change scales its model's feedback down
                learned = stats.total_decisions
                self.learned.append((at, learned, engine.store_sync.backlog))
            await asyncio.sleep(1.0)

    async def quiet(self) -> Quiet:
        while self.delayed:
            await asyncio.gather(*list(self.delayed))
        await settle(self.strategy, self.tally.requests)
        engine = self.strategy.conduit_router
        assert engine is not None and engine.store_sync is not None
        await asyncio.to_thread(engine.store_sync.sync_now)
        # The source lines an outage's traceback read are a cache, not traffic's growth.
        linecache.clearcache()
        gc.collect()
        objects = gc.get_objects()
        types = Counter(type(o).__name__ for o in objects)
        count = len(objects)
        del objects
        return Quiet(
            at=time.monotonic() - self.start,
            requests=self.tally.requests,
            rss_mib=rss_mib(),
            objects=count,
            blocks=sys.getallocatedblocks(),
            types=types,
        )

    # -- the report ------------------------------------------------------------------------------
    def report(self, sim: Simulator, first: Quiet, last: Quiet, wall: float) -> dict[str, Any]:
        c, tally, strategy = self.config, self.tally, self.strategy
        engine = strategy.conduit_router
        assert engine is not None and engine.store_sync is not None
        sync = engine.store_sync
        local = outcome_counts(engine.state_dict()["outcomes"])
        stored = store_counts(self.url)
        events = strategy.feedback.stats()
        fallbacks = strategy.stats().get("fallbacks", 0.0) if hasattr(strategy, "stats") else 0.0
        assert strategy.metrics is not None
        counted = strategy.metrics.registry.get_sample_value
        metric_decisions = sum(
            counted("conduit_decisions_total", {"model": m, "model_group": g, "preference": p})
            or 0.0
            for g, models in GROUPS.items()
            for m in models
            for p in ("balanced", "quality", "cost", "speed")
        )
        injected = Counter(sim.injected)
        expected = {
            "decisions": tally.requests,
            "quality_n": tally.explicit + tally.provider_errors[500],
            "cost_n": tally.successes,
            "latency_n": tally.successes,
        }
        measured = last.requests - first.requests
        objects_growth = last.objects - first.objects
        blocks_growth = last.blocks - first.blocks
        allowed = c.objects_allowance + c.objects_per_request * measured
        blocks_allowed = (
            allowed
            - c.objects_allowance
            + (c.objects_allowance if c.blocks_allowance is None else c.blocks_allowance)
        )
        grown = (last.types - first.types).most_common(8)
        learned = [n for _, n, _ in self.learned]
        backlog_max = int(max((b for _, _, b in self.learned), default=0))
        rss = [(t, v) for t, v in self.rss]
        outage_growth = [
            outage_rss_growth(rss, down, up) for down, up in self.windows if up - down >= 60.0
        ]
        history_exact = not c.data_loss and sync.dropped == 0
        pending = engine.stats().pending
        filled = self.fill_after_warmup
        checks = {
            "bounded maps full before measuring": all(n >= b for n, b in filled.values()),
            "memory flat (live objects)": objects_growth <= allowed,
            "memory flat (Python's allocated blocks)": blocks_growth <= blocks_allowed,
            "memory flat (RSS)": last.rss_mib - first.rss_mib <= c.memory_bound_mib,
            "bounded state within its caps": pending <= c.cap
            and len(strategy.feedback.responses) <= c.cap,
            "decisions = requests, outcomes = what was fed back": all(
                # a detected change scales its stream's counts down (once, in the store)
                local[k] <= v if k in stored["forgotten"] else local[k] == v
                for k, v in expected.items()
            ),
            "every feedback event handled": events["errors"] == 0 and events["unmatched"] == 0,
            "store caught up (state)": {k: stored[k] for k in expected} == local,
            "store caught up (history)": (
                stored["history_rows"] == local["decisions"]
                and stored["history_with_quality"] == expected["quality_n"]
            )
            if history_exact
            else 0 < stored["history_rows"] <= local["decisions"],
            "history backlog within its bound": backlog_max <= sync.max_backlog,
            "memory flat during long outages (RSS)": all(
                g <= c.memory_bound_mib / 4 for g in outage_growth
            ),
            "learning never went backwards": all(b >= a for a, b in itertools.pairwise(learned)),
            "data loss noticed and re-seeded": not c.data_loss or sync.state_lost >= 1,
            "metrics counted every decision": metric_decisions == tally.requests,
            "provider errors seen = injected": dict(tally.provider_errors) == dict(injected),
            "requests failed by Conduit = 0": sum(tally.conduit_failures.values()) == 0,
            "Conduit fallbacks = 0": fallbacks == 0,
            "store outages noticed": c.outages == 0 or sync.failures > 0,
        }
        return {
            "config": dataclasses.asdict(c),
            "wall_s": wall,
            "requests": tally.requests,
            "requests_per_s": tally.requests / wall if wall else 0.0,
            "measured_requests": measured,
            "successes": tally.successes,
            "explicit_feedback": tally.explicit,
            "provider_errors_injected": {str(k): v for k, v in sorted(injected.items())},
            "provider_errors_seen": {str(k): v for k, v in sorted(tally.provider_errors.items())},
            "conduit_failures": dict(tally.conduit_failures),
            "conduit_failure_examples": tally.failure_examples,
            "conduit_fallbacks": fallbacks,
            "store_sync_errors": sync.failures,
            "store_syncs": sync.syncs,
            "store_outages": self.outage_log,
            "store_state_lost": sync.state_lost,
            "history_dropped": sync.dropped,
            "history_backlog_max": backlog_max,
            "outage_rss_growth_mib": outage_growth,
            "learned_samples": [(round(t, 1), int(n), int(b)) for t, n, b in self.learned],
            "added_p50_ms": strategy.picks.percentile(0.5),
            "added_p99_ms": strategy.picks.percentile(0.99),
            "request_p50_ms": tally.requests_total.percentile(0.5),
            "request_p99_ms": tally.requests_total.percentile(0.99),
            "feedback_handling_mean_us": events["mean_handling_us"],
            "local": local,
            "expected": expected,
            "store": stored,
            "pending_decisions": pending,
            "maps_full_at": {"requests": self.full_at[0], "at_s": self.full_at[1]}
            if self.full_at is not None
            else None,
            "maps_after_warmup": {k: list(v) for k, v in filled.items()},
            "quiet_points": [
                {
                    "at_s": q.at,
                    "requests": q.requests,
                    "rss_mib": q.rss_mib,
                    "objects": q.objects,
                    "blocks": q.blocks,
                }
                for q in (first, last)
            ],
            "objects_growth": objects_growth,
            "blocks_growth": blocks_growth,
            "objects_grown_by_type": grown,
            "rss_growth_mib": last.rss_mib - first.rss_mib,
            "rss_max_mib": max((v for _, v in rss), default=last.rss_mib),
            "rss_samples": [(round(t, 1), round(v, 2)) for t, v in rss],
            "checks": checks,
            "ok": all(checks.values()),
        }


def outage_rss_growth(rss: list[tuple[float, float]], down: float, up: float) -> float:
    """How much RSS rose over the second half of an outage (MiB)."""
    middle = (down + up) / 2
    first = [v for t, v in rss if down <= t <= middle]
    second = [v for t, v in rss if middle <= t <= up]
    return max(second, default=0.0) - max(first, default=0.0)


def flush(url: str) -> None:
    """Lose everything the Redis server holds (as a restart without persistence would)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


def logger_handled(strategy: ConduitRoutingStrategy) -> float:
    stats = strategy.feedback.stats()
    return stats["learned"] + stats["rate_limited"] + stats["errors"] + stats["unmatched"]


async def settle(strategy: ConduitRoutingStrategy, events: int, timeout: float = 60.0) -> None:
    """Wait until the feedback logger has handled ``events`` events (LiteLLM queues them)."""
    deadline = time.monotonic() + timeout
    while logger_handled(strategy) < events and time.monotonic() < deadline:
        await GLOBAL_LOGGING_WORKER.flush()
        await asyncio.sleep(0.05)


COUNTS = ("decisions", "quality_n", "cost_n", "latency_n")


def outcome_sums(sums: dict[str, Any]) -> dict[str, int]:
    """Decisions and learned parts, summed over models, from a store's summed state."""
    return {k: round(sum(float(s[k]) for s in sums.values())) for k in COUNTS}


def outcome_counts(state: dict[str, Any]) -> dict[str, int]:
    """The same from a router's ``state_dict()["outcomes"]`` (a models x keys array)."""
    keys, sums = list(state["keys"]), state["sums"]
    return {k: round(float(sum(row[keys.index(k)] for row in sums))) for k in COUNTS}


def store_counts(url: str) -> dict[str, Any]:
    with open_store(url) as store:
        snapshot = store.pull()
        out: dict[str, Any] = outcome_sums(
            snapshot.sums["outcomes"] if snapshot is not None else {}
        )
        history = store.history(limit=10**7)
    # the counts a detected change forgot (scaled down in the store, for every replica)
    out["forgotten"] = sorted(
        {FORGET_KEYS[stream][0] for _, stream in (snapshot.epochs if snapshot is not None else {})}
    )
    out["history_rows"] = len(history)
    out["history_with_quality"] = sum(1 for h in history if h.quality is not None)
    return out


def close_sync_clients(base_url: str) -> None:
    """Close LiteLLM's cached sync OpenAI clients of ``base_url`` (it closes only async ones)."""
    import openai

    cached = getattr(litellm.in_memory_llm_clients_cache, "cache_dict", {})
    for client in list(cached.values()):
        if isinstance(client, openai.OpenAI) and str(client.base_url).startswith(base_url):
            client.close()


async def soak(config: SoakConfig, server: StoreServer) -> dict[str, Any]:
    """Run the soak against ``server`` (started, and left running); the report, with ``ok``."""
    return await Soak(config, server).run()


def print_report(r: dict[str, Any]) -> None:
    c = r["config"]
    first, last = r["quiet_points"]
    rows = [
        ("duration", f"{r['wall_s']:.0f} s, {c['concurrency']} workers"),
        ("requests", f"{r['requests']} ({r['requests_per_s']:.0f}/s), {r['successes']} answered"),
        ("provider errors injected", r["provider_errors_injected"]),
        ("provider errors seen", r["provider_errors_seen"]),
        ("requests failed by Conduit", sum(r["conduit_failures"].values())),
        ("Conduit fallbacks", r["conduit_fallbacks"]),
        ("store sync errors", f"{r['store_sync_errors']} ({len(r['store_outages']) // 2} outages)"),
        ("store events", ", ".join(r["store_outages"]) or "-"),
        ("store state lost (re-seeded)", r["store_state_lost"]),
        ("history dropped / backlog max", f"{r['history_dropped']} / {r['history_backlog_max']}"),
        ("RSS growth, 2nd half of long outages", r["outage_rss_growth_mib"] or "-"),
        ("explicit feedback", r["explicit_feedback"]),
        (
            "bounded maps full at",
            "-"
            if r["maps_full_at"] is None
            else f"request {r['maps_full_at']['requests']} ({r['maps_full_at']['at_s']:.0f} s); "
            f"measured from request {first['requests']} ({first['at_s']:.0f} s)",
        ),
        ("learned (router)", r["local"]),
        ("learned (store)", r["store"]),
        ("added latency p50 / p99", f"{r['added_p50_ms']:.2f} / {r['added_p99_ms']:.2f} ms"),
        ("request p50 / p99", f"{r['request_p50_ms']:.1f} / {r['request_p99_ms']:.1f} ms"),
        (
            "live objects (quiet points)",
            f"{first['objects']} -> {last['objects']} ({r['objects_growth']:+d} over "
            f"{r['measured_requests']} requests; bound {c['objects_allowance']} + "
            f"{c['objects_per_request']:g}/request)",
        ),
        (
            "allocated blocks",
            f"{first['blocks']} -> {last['blocks']} ({r['blocks_growth']:+d}; bound "
            f"{c['blocks_allowance'] or c['objects_allowance']} + "
            f"{c['objects_per_request']:g}/request)",
        ),
        (
            "RSS (quiet points)",
            f"{first['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB ({r['rss_growth_mib']:+.1f}, "
            f"bound {c['memory_bound_mib']:g}; peak {r['rss_max_mib']:.1f})",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for check, ok in r["checks"].items():
        print(f"{'OK  ' if ok else 'FAIL'} {check}")
    for example in r["conduit_failure_examples"]:
        print(f"     {example}")
    if not r["checks"]["memory flat (live objects)"]:
        print(f"     objects grown most: {r['objects_grown_by_type']}")


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the soak needs redis-server on PATH (it stops and restarts its own)")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(binary, free_port(), Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def quiet_logs() -> None:
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
    litellm.suppress_debug_info = True
    warnings.filterwarnings("ignore", message=".*ReadOnly.*")  # LiteLLM's TypedDicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--requests", type=int, help="run this many requests instead of --minutes (tests)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--sync-share", type=float, default=0.3)
    parser.add_argument("--feedback-share", type=float, default=0.7)
    parser.add_argument("--outages", type=int, default=3)
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument(
        "--data-loss", action="store_true", help="flush the store at 85%% of the measured phase"
    )
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--prompts", type=int, default=2723, help="distinct prompts used")
    parser.add_argument("--backend", default="auto", help="embedding backend")
    parser.add_argument("--sync-interval", type=float, default=2.0)
    parser.add_argument("--cap", type=int, default=10_000, help="pending decisions etc. kept")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run")
    parser.add_argument("--memory-bound", type=float, default=64.0, help="MiB after warm-up")
    parser.add_argument("--objects-per-request", type=float, default=0.05)
    parser.add_argument("--objects-allowance", type=int, default=2000)
    parser.add_argument("--blocks-allowance", type=int, help="default: --objects-allowance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    config = SoakConfig(
        seconds=args.minutes * 60,
        requests=args.requests,
        concurrency=args.concurrency,
        error_rate=args.error_rate,
        sync_share=args.sync_share,
        feedback_share=args.feedback_share,
        outages=args.outages,
        outage_seconds=args.outage_seconds,
        data_loss=args.data_loss,
        latency_ms=args.latency_ms,
        prompts=args.prompts,
        backend=args.backend,
        sync_interval=args.sync_interval,
        cap=args.cap,
        warmup=args.warmup,
        memory_bound_mib=args.memory_bound,
        objects_per_request=args.objects_per_request,
        objects_allowance=args.objects_allowance,
        blocks_allowance=args.blocks_allowance,
        seed=args.seed,
    )
    quiet_logs()
    gc.collect()
    with redis_server() as server:
        length = f"{args.requests} requests" if args.requests else f"{args.minutes:g} min"
        print(f"soak: {length} against {server.url}, {config.outages} outages")
        result = asyncio.run(soak(config, server))
    print_report(result)
    _common.write_json(args.json, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
