"""Store benchmarks: sync latency and route() p99 with a store attached, per backend.

    python benchmarks/bench_stores.py [--backends memory,sqlite,postgres,redis] [--queries 2000]
    python benchmarks/bench_stores.py --outage 80000

A router over the shipped log's 11 models (LinUCB on 64 hashing features, the
largest state a default router syncs) routes and learns ``--queries`` prompts
while its background thread syncs every ``--interval`` seconds (deliberately
often, so routing overlaps many syncs); then ``sync_now()`` is timed alone.
PostgreSQL and Redis use the test servers (override with --postgres / --redis);
each run uses a fresh namespace and removes it afterwards.

``--outage N`` instead routes and learns N requests (11 models, 2 KB prompts, UCB1) as
fast as they go with a Redis URL where nothing listens, printing resident memory every
N/8 requests: it must level off (learning accumulates in the router, history waits in
a bounded backlog), and every decision must be learned.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
import uuid

import _common  # noqa: F401 - the offline environment
from _common import percentile

from conduit import Router
from conduit._errors import ConduitError
from conduit.replay.log import read_log, shipped_log
from conduit.stores import open_store


def run(url: str | None, records: list, interval: float, syncs: int) -> dict[str, float]:  # type: ignore[type-arg]
    models = list(records[0].outcomes)
    router = Router(
        models,
        bandit_algorithm="linucb",
        embedding_backend="hashing",
        seed=0,
        state_store=url,
        sync_interval=interval,
    ).start()  # load and the first pull, before the timed routes
    route_ms: list[float] = []
    try:
        for record in records:
            started = time.perf_counter()
            decision = router.route_sync(record.prompt)
            route_ms.append((time.perf_counter() - started) * 1e3)
            outcome = record.outcomes[decision.selected_model]
            router.update_sync(
                decision.decision_id, quality=outcome.quality, cost=outcome.cost or 0.0
            )
        background = router.store_sync.syncs if router.store_sync else 0
        sync_ms: list[float] = []
        if router.store_sync is not None:
            for i in range(syncs):
                d = router.route_sync(records[i % len(records)].prompt)
                router.update_sync(d.decision_id, quality=1.0)
                started = time.perf_counter()
                router.store_sync.sync_now()
                sync_ms.append((time.perf_counter() - started) * 1e3)
    finally:
        router.close()
        if url is not None:
            with open_store(url) as store:
                store.reset()
    result = {
        "route_p50_ms": statistics.median(route_ms),
        "route_p99_ms": percentile(route_ms, 0.99),
        "syncs_during_routing": float(background),
    }
    if sync_ms:
        result |= {
            "sync_p50_ms": statistics.median(sync_ms),
            "sync_p99_ms": percentile(sync_ms, 0.99),
        }
    return result


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def outage(n: int) -> None:
    with socket.socket() as sock:  # a free port: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    records = read_log(shipped_log())
    prompts = [(r.prompt * 8)[:2048] + f" {i}" for i, r in enumerate(records[:2000])]
    router = Router(
        list(records[0].outcomes),
        bandit_algorithm="ucb1",
        seed=0,
        state_store=f"redis://127.0.0.1:{port}/0",
        sync_interval=60.0,
    ).start(wait=1.0)
    started, step = time.perf_counter(), max(n // 8, 1)
    print(f"outage: {n} requests, store down throughout; RSS {rss_mib():.0f} MiB at start")
    for i in range(n):
        d = router.route_sync(prompts[i % len(prompts)] + str(i))
        router.update_sync(d.decision_id, quality=0.5, cost=0.001)
        if (i + 1) % step == 0:
            print(
                f"{i + 1:>8} requests {time.perf_counter() - started:7.1f} s  "
                f"RSS {rss_mib():6.0f} MiB  learned {router.stats().total_feedback}"
            )
    sync = router.store_sync
    assert sync is not None
    print(f"history events dropped {sync.dropped}, backlog {sync.backlog}/{sync.max_backlog}")
    os._exit(0)  # the store never comes back: do not wait for close() to give up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="none,memory,sqlite,postgres,redis")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--syncs", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--outage", type=int, metavar="N", help="the outage memory run instead")
    args = parser.parse_args()
    if args.outage:
        outage(args.outage)
        return
    records = read_log(shipped_log(), limit=args.queries)
    ns = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        urls = {
            "none": None,
            "memory": f"memory://{ns}",
            "sqlite": f"sqlite:///{tmp}/bench.db?namespace={ns}",
            "postgres": f"{args.postgres}?namespace={ns}",
            "redis": f"{args.redis}?namespace={ns}&prefix={ns}",
        }
        print(f"{len(records)} queries, 11 models, LinUCB dim 64, sync every {args.interval}s")
        head = ("backend", "route p50", "route p99", "sync p50", "sync p99", "bg syncs")
        print(f"{head[0]:<9} {head[1]:>10} {head[2]:>10} {head[3]:>9} {head[4]:>9} {head[5]:>9}")
        for name in args.backends.split(","):
            try:
                r = run(urls[name], records, args.interval, args.syncs)
            except ConduitError as exc:
                print(f"{name:<9} unavailable: {exc}")
                continue
            sync50 = f"{r['sync_p50_ms']:.2f}" if "sync_p50_ms" in r else "-"
            sync99 = f"{r['sync_p99_ms']:.2f}" if "sync_p99_ms" in r else "-"
            print(
                f"{name:<9} {r['route_p50_ms']:>8.3f}ms {r['route_p99_ms']:>8.3f}ms "
                f"{sync50:>7}ms {sync99:>7}ms {r['syncs_during_routing']:>9.0f}"
            )


if __name__ == "__main__":
    main()
