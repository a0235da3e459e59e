"""Load test: concurrent LiteLLM requests with feedback, Conduit's learning kept in each store.

    python benchmarks/bench_load.py [-n 1000] [--stores memory,sqlite,postgres,redis]
                                    [--latency-ms 20] [--uncached] [--json OUT]

For each store, a ``litellm.Router`` over the simulator's 11 models (the shipped
RouterBench log served on loopback, ``--latency-ms`` per answer) with Conduit
installed (``router_options={"state_store": url, "sync_interval": 0.5}``) takes
``-n`` concurrent ``acompletion`` calls (one ``asyncio.gather``), each followed by
``strategy.record_feedback(response, quality=<the logged quality>)``. Then the
feedback logger and the store sync are flushed and the counts checked: decisions
and quality feedback equal the requests sent, in the router and in the store
(its summed state and its history). The same load through the same deployments
with LiteLLM's simple-shuffle, run just before, gives the added latency.

Features are embedded once before the load (one shared extractor, so the store
and the routing, not the embedding model, are what is measured); ``--uncached``
embeds every prompt on the request path instead. PostgreSQL gets a database
created and dropped for the run; Redis a unique key prefix, deleted afterwards.
Exits 1 if any count mismatches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _common  # also the offline environment, before LiteLLM is imported
import litellm
from _common import messages, percentile
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
from litellm.router import Router as LiteLLMRouter

from conduit._errors import ConduitError
from conduit.engines.features._extractor import FeatureExtractor, make_embedder
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator, quality_of
from conduit.stores import open_store
from conduit_litellm import ConduitRoutingStrategy

GROUP = "routerbench"
WARMUP = 20


def model_list(sim: Simulator) -> list[dict[str, Any]]:
    return _common.deployments(sim, GROUP, sim.models)


# -- stores -------------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A database created for this run and dropped after it; yields its URL."""
    import psycopg

    name = f"conduit_bench_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(urlsplit(server)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_leftovers(server: str, prefix: str, delete: bool) -> int:
    """Keys under ``prefix`` (deleted with ``delete``); the store's reset should leave none."""
    import redis

    client = redis.Redis.from_url(server)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if delete and keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


@contextlib.contextmanager
def store_url(name: str, args: argparse.Namespace, tmp: str) -> Iterator[str]:
    ns = f"load-{uuid.uuid4().hex[:10]}"
    if name == "memory":
        yield f"memory://{ns}?namespace={ns}"
    elif name == "sqlite":
        yield f"sqlite:///{tmp}/{ns}.db?namespace={ns}"
    elif name == "postgres":
        with postgres_database(args.postgres) as url:
            yield f"{url}?namespace={ns}"
    elif name == "redis":
        prefix = f"conduit-bench-{ns}"
        try:
            yield f"{args.redis}?prefix={prefix}&namespace={ns}"
        finally:
            left = redis_leftovers(args.redis, prefix, delete=True)
            if left:
                print(f"  redis: {left} keys under {prefix} were left after reset; deleted")
    else:
        raise SystemExit(f"unknown store {name!r}; choose from memory, sqlite, postgres, redis")


def store_counts(url: str) -> dict[str, int]:
    """Decisions and quality feedback in the store: its summed state and its history rows."""
    with open_store(url) as store:
        snapshot = store.pull()
        outcomes = snapshot.sums["outcomes"] if snapshot is not None else {}
        history = store.history(limit=10**6)
    return {
        "decisions": round(sum(float(s["decisions"]) for s in outcomes.values())),
        "feedback": round(sum(float(s["quality_n"]) for s in outcomes.values())),
        "history_rows": len(history),
        "history_with_quality": sum(1 for h in history if h.quality is not None),
    }


def reset_store(url: str) -> None:
    with open_store(url) as store:
        store.reset()


# -- load ---------------------------------------------------------------------------------------
async def one(
    router: Any, prompt: str, strategy: ConduitRoutingStrategy | None, qualities: list[float]
) -> float:
    started = time.perf_counter_ns()
    response = await router.acompletion(model=GROUP, messages=messages(prompt))
    elapsed = (time.perf_counter_ns() - started) / 1e6
    quality = quality_of(response)
    if quality is None:
        raise SystemExit(f"the simulator answered without a logged quality for {prompt[:40]!r}")
    qualities.append(quality)
    if strategy is not None:
        strategy.record_feedback(response, quality=quality)
    return elapsed


async def load(
    router: Any, prompts: list[str], strategy: ConduitRoutingStrategy | None
) -> dict[str, Any]:
    """``WARMUP`` requests one by one (connections, LiteLLM's caches, Conduit's router built),
    then the rest all at once."""
    qualities: list[float] = []
    for prompt in prompts[:WARMUP]:
        await one(router, prompt, strategy, qualities)
    qualities.clear()
    started = time.perf_counter()
    latencies = await asyncio.gather(
        *(one(router, p, strategy, qualities) for p in prompts[WARMUP:])
    )
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "wall_s": wall,
        "mean_quality": statistics.fmean(qualities),
    }


def handled(strategy: ConduitRoutingStrategy) -> float:
    """Events of this strategy's decisions the logger has handled (late events of the
    default router's load, also seen by the global callback, are "unmatched")."""
    stats = strategy.feedback.stats()
    return stats["events"] - stats["unmatched"]


async def settle(strategy: ConduitRoutingStrategy, events: int, timeout: float = 60.0) -> None:
    """Wait until LiteLLM has handed the feedback logger ``events`` events of our decisions."""
    deadline = time.monotonic() + timeout
    while handled(strategy) < events and time.monotonic() < deadline:
        await GLOBAL_LOGGING_WORKER.flush()
        await asyncio.sleep(0.01)


async def run_store(
    name: str,
    url: str,
    sim: Simulator,
    prompts: list[str],
    extractor: FeatureExtractor | None,
    args: argparse.Namespace,
    *,
    shuffle_first: bool,
) -> dict[str, Any]:
    """The same load through simple-shuffle and through Conduit (the order alternates per
    store, so neither side always gets the machine in the same state)."""

    async def shuffle_load() -> dict[str, Any]:
        baseline = LiteLLMRouter(model_list=model_list(sim), num_retries=0)
        result = await load(baseline, prompts, None)
        await GLOBAL_LOGGING_WORKER.flush()
        await asyncio.sleep(0.5)  # its last events, from LiteLLM's logging thread
        return result

    if shuffle_first:
        shuffle = await shuffle_load()
    router = LiteLLMRouter(model_list=model_list(sim), num_retries=0)
    options: dict[str, Any] = {"state_store": url, "sync_interval": args.sync_interval}
    if extractor is not None:
        options["extractor"] = extractor
    strategy = ConduitRoutingStrategy(use_hybrid=True, seed=0, router_options=options)
    ConduitRoutingStrategy.setup_strategy(router, strategy)
    sent = len(prompts)
    try:
        conduit = await load(router, prompts, strategy)
        await settle(strategy, sent)
        engine = strategy.conduit_router
        if engine is None or engine.store_sync is None:
            raise SystemExit("Conduit's router or its store sync was not built")
        started = time.perf_counter()
        engine.store_sync.sync_now()
        sync_ms = (time.perf_counter() - started) * 1e3
        stats = engine.stats()
        local = {"decisions": stats.total_decisions, "feedback": stats.total_feedback}
        stored = store_counts(url)
        feedback = strategy.feedback.stats()
    finally:
        strategy.cleanup()
        with contextlib.suppress(ConduitError):
            reset_store(url)
    if not shuffle_first:
        shuffle = await shuffle_load()
    checks = {
        "local decisions": local["decisions"],
        "local feedback": local["feedback"],
        "store decisions": stored["decisions"],
        "store feedback": stored["feedback"],
        "history rows": stored["history_rows"],
        "history with quality": stored["history_with_quality"],
    }
    return {
        "store": name,
        "url": url.split("?", 1)[0],
        "sent": sent,
        "shuffle": shuffle,
        "conduit": conduit,
        "added_p50_ms": conduit["p50_ms"] - shuffle["p50_ms"],
        "added_p99_ms": conduit["p99_ms"] - shuffle["p99_ms"],
        "sync_now_ms": sync_ms,
        "counts": checks,
        "feedback_events": feedback,
        "ok": all(v == sent for v in checks.values()),
    }


async def run(args: argparse.Namespace, sim: Simulator, prompts: list[str]) -> list[dict[str, Any]]:
    extractor = None
    if not args.uncached:
        extractor = FeatureExtractor(embedder=make_embedder("all-MiniLM-L6-v2", args.backend))
        extractor.features_batch(prompts)
    # one untimed load first: the first big gather of a process opens the connections
    await load(LiteLLMRouter(model_list=model_list(sim), num_retries=0), prompts, None)
    await GLOBAL_LOGGING_WORKER.flush()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.stores.split(",")):
            with store_url(name, args, tmp) as url:
                result = await run_store(
                    name, url, sim, prompts, extractor, args, shuffle_first=i % 2 == 0
                )
            results.append(result)
            report(result)
    await litellm.close_litellm_async_clients()  # type: ignore[attr-defined,no-untyped-call]
    return results


def report(r: dict[str, Any]) -> None:
    s, c = r["shuffle"], r["conduit"]
    counts = " ".join(f"{v}" for v in r["counts"].values())
    print(
        f"{r['store']:<9} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} {c['p50_ms']:>8.1f} "
        f"{c['p99_ms']:>8.1f} {r['added_p50_ms']:>+9.1f} {r['added_p99_ms']:>+9.1f} "
        f"{s['wall_s']:>6.2f}s {c['wall_s']:>6.2f}s {r['sync_now_ms']:>7.1f}  "
        f"{'OK' if r['ok'] else 'MISMATCH'} {r['sent']}: {counts}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="concurrent requests per store")
    parser.add_argument("--stores", default="memory,sqlite,postgres,redis")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulated answer time")
    parser.add_argument("--sync-interval", type=float, default=0.5)
    parser.add_argument("--backend", default="auto", help="embedding backend")
    parser.add_argument("--uncached", action="store_true", help="embed on the request path")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    litellm.suppress_debug_info = True
    warnings.filterwarnings("ignore", message=".*ReadOnly.*")  # LiteLLM's TypedDicts and pydantic

    records = read_log(shipped_log())
    prompts = list(dict.fromkeys(r.prompt for r in records))[: args.n + WARMUP]
    if len(prompts) < args.n + WARMUP:
        parser.error(f"-n must be at most {len(prompts) - WARMUP} (distinct logged prompts)")
    with Simulator(latency_ms=args.latency_ms, seed=0) as sim:
        print(
            f"{args.n} concurrent acompletion + record_feedback per store, {len(sim.models)} "
            f"simulated models ({args.latency_ms:g} ms), sync every {args.sync_interval:g} s, "
            f"features {'embedded on the request path' if args.uncached else 'cached'}; "
            f"counts include {WARMUP} warm-up requests"
        )
        print(
            f"{'store':<9} {'shuf p50':>8} {'shuf p99':>8} {'cond p50':>8} {'cond p99':>8} "
            f"{'added p50':>9} {'added p99':>9} {'shuf':>7} {'cond':>7} {'sync ms':>7}  counts "
            "(local decisions/feedback, store decisions/feedback, history rows/with quality)"
        )
        results = asyncio.run(run(args, sim, prompts))
    _common.write_json(
        args.json, {"latency_ms": args.latency_ms, "uncached": args.uncached, "results": results}
    )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
