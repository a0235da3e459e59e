"""Latency Conduit adds to a LiteLLM request, against LiteLLM's simple-shuffle, in one run.

    python benchmarks/bench_litellm.py [-n 2000] [--new 500] [--sync 1000] [--json OUT]
                                       [--backend auto|onnx|hashing]

Two ``litellm.Router`` instances serve the same 11 deployments (the shipped
RouterBench log's models, answered by ``mock_response``: no network, a near
constant provider time): one with LiteLLM's default routing, one with Conduit
installed by ``ConduitRoutingStrategy.setup_strategy`` (hybrid policy, default
embedding backend). Requests go one at a time, alternating A/B and which router
goes first, so both see the same machine; the added latency is the median of
the paired differences. Measured:

- ``acompletion`` with prompts whose features are cached (the issue's claim:
  median added latency <= 2 ms);
- ``acompletion`` with new prompts (embedding included);
- ``completion`` (the sync path), cached prompts;
- the feedback path: the logger hook's handling time (its ``stats()``), and
  whether any request's outcome was handled before its response was returned
  (LiteLLM's async logging worker runs it after the call, off the request path).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import _common  # noqa: F401 - the offline environment, before LiteLLM is imported
import litellm
from _common import messages, percentile, summary_ms
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
from litellm.router import Router as LiteLLMRouter

from conduit.replay.log import read_log, shipped_log
from conduit_litellm import ConduitRoutingStrategy

GROUP = "routerbench"
#: The issue's bound on the median added latency with cached features.
CLAIM_MS = 2.0


def model_list(models: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "model_name": GROUP,
            "litellm_params": {
                "model": f"openai/{m}",
                "mock_response": "A",
                "api_key": "sk-dummy",
            },
            "model_info": {"id": m},
        }
        for m in models
    ]


async def flush() -> None:
    await GLOBAL_LOGGING_WORKER.flush()


def paired(baseline: list[float], conduit: list[float]) -> dict[str, Any]:
    diffs = [c - b for b, c in zip(baseline, conduit, strict=True)]
    return {
        "n": len(diffs),
        "baseline": summary_ms(baseline),
        "conduit": summary_ms(conduit),
        "added_median_ms": statistics.median(diffs),
        "added_p90_ms": percentile(diffs, 0.9),
    }


async def interleaved(
    call: Callable[[Any, str], Awaitable[object]],
    baseline: Any,
    conduit: Any,
    prompts: list[str],
) -> dict[str, Any]:
    """One request per router per prompt; which router goes first alternates."""
    times: dict[int, list[float]] = {0: [], 1: []}
    routers = (baseline, conduit)
    for i, prompt in enumerate(prompts):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            started = time.perf_counter_ns()
            await call(routers[which], prompt)
            times[which].append((time.perf_counter_ns() - started) / 1e6)
    return paired(times[0], times[1])


def interleaved_sync(baseline: Any, conduit: Any, prompts: list[str]) -> dict[str, Any]:
    times: dict[int, list[float]] = {0: [], 1: []}
    routers = (baseline, conduit)
    for i, prompt in enumerate(prompts):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            started = time.perf_counter_ns()
            routers[which].completion(model=GROUP, messages=messages(prompt))
            times[which].append((time.perf_counter_ns() - started) / 1e6)
    return paired(times[0], times[1])


async def acall(router: Any, prompt: str) -> object:
    return await router.acompletion(model=GROUP, messages=messages(prompt))


async def settle(strategy: ConduitRoutingStrategy, events: int, timeout: float = 30.0) -> None:
    """Wait until the feedback logger has seen ``events`` events (LiteLLM hands them over
    from its logging thread and worker a little after each call returns)."""
    deadline = time.monotonic() + timeout
    while strategy.feedback.stats()["events"] < events and time.monotonic() < deadline:
        await flush()
        await asyncio.sleep(0.0001)


async def feedback_probe(
    strategy: ConduitRoutingStrategy, router: Any, prompts: list[str]
) -> dict[str, Any]:
    """Was any outcome handled before its response reached the caller? (It must not block.)

    Before each request the logger has seen every earlier event, so an event
    counted when the call returns was handled on the request path; otherwise we
    time how long after the return it was handled.
    """
    inline, missing = 0, 0
    after_ms: list[float] = []
    for prompt in prompts:
        before = strategy.feedback.stats()["events"]
        await acall(router, prompt)
        returned = time.perf_counter_ns()
        if strategy.feedback.stats()["events"] > before:
            inline += 1
            continue
        await settle(strategy, int(before) + 1, timeout=10.0)
        if strategy.feedback.stats()["events"] > before:
            after_ms.append((time.perf_counter_ns() - returned) / 1e6)
        else:
            missing += 1
    return {
        "requests": len(prompts),
        "handled_before_return": inline,
        "never_handled": missing,
        "handled_after_return": summary_ms(after_ms) if after_ms else None,
    }


async def run_async(
    baseline: Any,
    conduit: Any,
    strategy: ConduitRoutingStrategy,
    args: argparse.Namespace,
    cached: list[str],
    new: list[str],
) -> dict[str, Any]:
    # builds Conduit's router (loads the embedding model) and warms both LiteLLM paths
    for prompt in cached[: args.warmup]:
        await acall(baseline, prompt)
        await acall(conduit, prompt)
    built = strategy.conduit_router
    if built is None or built.extractor is None:
        raise SystemExit("Conduit router was not built by the warm-up requests")
    started = time.perf_counter()
    built.extractor.features_batch(cached)
    warm_s = time.perf_counter() - started
    await flush()
    results: dict[str, Any] = {"feature_cache_warm_s": warm_s}
    results["acompletion_cached"] = await interleaved(acall, baseline, conduit, cached)
    await flush()
    results["acompletion_new"] = await interleaved(acall, baseline, conduit, new)
    await flush()
    seen = 2 * (min(args.warmup, len(cached)) + len(cached) + len(new))
    await settle(strategy, seen)
    results["feedback_probe"] = await feedback_probe(strategy, conduit, cached[: args.probe])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="cached-prompt requests per router")
    parser.add_argument("--new", type=int, default=500, help="new-prompt requests per router")
    parser.add_argument("--sync", type=int, default=1000, help="sync completion() per router")
    parser.add_argument("--probe", type=int, default=200, help="requests in the feedback probe")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per router")
    parser.add_argument("--backend", default="auto", help="Conduit's embedding backend")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    litellm.suppress_debug_info = True
    warnings.filterwarnings("ignore", message=".*ReadOnly.*")  # LiteLLM's TypedDicts and pydantic

    records = read_log(shipped_log())
    models = sorted(records[0].outcomes)
    prompts = list(dict.fromkeys(r.prompt for r in records))
    if args.n + args.new > len(prompts):
        parser.error(f"-n + --new must be at most {len(prompts)} (distinct logged prompts)")
    cached, new = prompts[: args.n], prompts[args.n : args.n + args.new]

    baseline = LiteLLMRouter(model_list=model_list(models), num_retries=0)
    conduit = LiteLLMRouter(model_list=copy.deepcopy(model_list(models)), num_retries=0)
    strategy = ConduitRoutingStrategy(use_hybrid=True, embedding_backend=args.backend, seed=0)
    ConduitRoutingStrategy.setup_strategy(conduit, strategy)
    try:
        results = asyncio.run(run_async(baseline, conduit, strategy, args, cached, new))
        results["completion_sync_cached"] = interleaved_sync(baseline, conduit, cached[: args.sync])
        # every request's event, the default router's too: the logger is a global callback
        requests = 2 * (min(args.warmup, len(cached)) + len(cached) + len(new))
        requests += args.probe + 2 * len(cached[: args.sync])
        asyncio.run(settle(strategy, requests))
        results["requests"] = requests
        results["feedback"] = strategy.feedback.stats()
        router = strategy.conduit_router
        if router is None:
            raise SystemExit("Conduit router was never built")
        results["embedder"] = router.extractor.name if router.extractor else "none"
        results["algorithm"] = router.algorithm
        results["conduit_decisions"] = router.stats().total_decisions
    finally:
        strategy.cleanup()
    results["models"] = len(models)

    print(
        f"{len(models)} mock_response deployments; Conduit {results['algorithm']} on "
        f"{results['embedder']}; feature cache warmed in {results['feature_cache_warm_s']:.1f} s"
    )
    head = ("case", "n", "shuffle p50", "p90", "conduit p50", "p90", "added p50", "added p90")
    print(
        f"{head[0]:<28} {head[1]:>5} {head[2]:>11} {head[3]:>7} {head[4]:>11} {head[5]:>7} "
        f"{head[6]:>9} {head[7]:>9}"
    )
    for key, label in (
        ("acompletion_cached", "acompletion, cached features"),
        ("acompletion_new", "acompletion, new prompts"),
        ("completion_sync_cached", "completion (sync), cached"),
    ):
        r = results[key]
        print(
            f"{label:<28} {r['n']:>5} {r['baseline']['median_ms']:>9.3f}ms "
            f"{r['baseline']['p90_ms']:>5.2f}ms {r['conduit']['median_ms']:>9.3f}ms "
            f"{r['conduit']['p90_ms']:>5.2f}ms {r['added_median_ms']:>7.3f}ms "
            f"{r['added_p90_ms']:>7.3f}ms"
        )
    fb, probe = results["feedback"], results["feedback_probe"]
    print(
        f"feedback hook: {fb['events']:.0f} of {results['requests']} events "
        f"({fb['learned']:.0f} learned, {fb['unmatched']:.0f} default-router, "
        f"{fb['errors']:.0f} errors), mean {fb['mean_handling_us']:.1f} us, "
        f"max {fb['max_handling_us']:.1f} us per event"
    )
    late = probe["handled_after_return"] or {"median_ms": float("nan"), "p90_ms": float("nan")}
    print(
        f"feedback off the request path: {probe['handled_before_return']}/{probe['requests']} "
        f"outcomes handled before their response returned, {probe['never_handled']} never; "
        f"the rest {late['median_ms']:.2f} ms (median, p90 {late['p90_ms']:.2f} ms) after it"
    )
    added = results["acompletion_cached"]["added_median_ms"]
    verdict = "meets" if added <= CLAIM_MS else "MISSES"
    print(f"claim: median added latency, cached features {added:.3f} ms {verdict} <= {CLAIM_MS} ms")
    results["claim_met"] = added <= CLAIM_MS
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
