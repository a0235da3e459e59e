"""Where Conduit's pick spends its time on a new prompt, called directly (no LiteLLM request).

    python benchmarks/bench_pick.py [-n 1200] [--train 300] [--backend auto] [--json OUT]

The strategy routes for a ``litellm.Router`` of the 11 mock deployments of
``bench_litellm.py``, learning in memory: ``--train`` RouterBench prompts with their
logged quality and cost as feedback (so the hybrid policy is in its LinUCB phase),
then ``-n`` prompts it has never seen (RouterBench's next ones, 2 KB few-shot prompts),
each picked through ``get_available_deployment`` as LiteLLM's sync path calls it. Of
every three, one pick is timed whole in CPU time, one in wall time, and one is split:
the features alone (embedding and metadata flags), then the pick with them cached, and
in it the Conduit router's decision (``route_sync``); the rest of that pick is the
strategy's own work (candidates, LiteLLM's group and cooldown look-ups, stamping the
request metadata).
Medians of the calling thread's CPU time, which other processes on a shared machine
disturb less than wall time; wall time of the whole pick too.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import _common  # also the offline environment, before LiteLLM is imported
from bench_litellm import GROUP, model_list, quiet

from conduit.engines.features._metadata import metadata_features
from conduit.replay.log import read_log, shipped_log


def request(prompt: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Messages and request kwargs as LiteLLM's router hands them to a custom strategy."""
    messages = _common.messages(prompt)
    return messages, {
        "model": GROUP,
        "messages": messages,
        "litellm_trace_id": str(uuid.uuid4()),
        "metadata": {"model_group": GROUP, "model_group_alias": None},
    }


def timed(clock: Callable[[], int], fn: Callable[[], object]) -> float:
    """Microseconds of ``clock`` that ``fn()`` takes."""
    started = clock()
    fn()
    return (clock() - started) / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__)
    parser.add_argument("-n", type=int, default=1200, help="new prompts measured")
    parser.add_argument("--train", type=int, default=300, help="prompts learned from first")
    parser.add_argument("--backend", default="auto", help="Conduit's embedding backend")
    args = parser.parse_args(argv)

    from litellm.router import Router as LiteLLMRouter

    from conduit_litellm import ConduitRoutingStrategy
    from conduit_litellm.feedback import DECISION_KEY

    quiet()
    records = read_log(shipped_log())
    if args.train + args.n > len(records):
        parser.error(f"asks for {args.train + args.n} prompts; the log holds {len(records)}")
    models = sorted(records[0].outcomes)
    litellm_router = LiteLLMRouter(model_list=model_list(models), num_retries=0)
    strategy = ConduitRoutingStrategy(
        use_hybrid=True, embedding_backend=args.backend, seed=0, state_store="memory://"
    )
    ConduitRoutingStrategy.setup_strategy(litellm_router, strategy)
    router = strategy.conduit_router
    if router is None or router.extractor is None:
        raise SystemExit("the strategy built no contextual Conduit router")
    extractor = router.extractor

    def pick(prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        messages, kwargs = request(prompt)
        chosen = strategy.get_available_deployment(
            model=GROUP, messages=messages, request_kwargs=kwargs
        )
        return chosen, kwargs

    for record in records[: args.train]:
        chosen, kwargs = pick(record.prompt)
        outcome = record.outcomes[chosen["model_info"]["id"]]
        router.update_sync(
            kwargs["metadata"][DECISION_KEY], quality=outcome.quality, cost=outcome.cost
        )

    cpu = time.thread_time_ns
    decisions: list[float] = []
    route_sync = router.route_sync

    def timed_route(*a: Any, **k: Any) -> Any:
        started = cpu()
        out = route_sync(*a, **k)
        decisions.append((cpu() - started) / 1e3)
        return out

    router.route_sync = timed_route  # type: ignore[method-assign]
    whole, wall, features, flags, cached = [], [], [], [], []
    for i, record in enumerate(records[args.train : args.train + args.n]):
        prompt = record.prompt
        if i % 3 < 2:  # the whole pick: CPU time, or wall time
            clock = cpu if i % 3 == 0 else time.perf_counter_ns
            (whole if i % 3 == 0 else wall).append(timed(clock, lambda p=prompt: pick(p)))
            decisions.pop()
            continue
        flags.append(timed(cpu, lambda p=prompt: metadata_features(p)))
        features.append(timed(cpu, lambda p=prompt: extractor.compute(p)))
        cached.append(timed(cpu, lambda p=prompt: pick(p)))
    strategy.cleanup()

    median = statistics.median
    results = {
        "phase": getattr(router.bandit, "phase", router.algorithm),
        "embedder": extractor.name,
        "new_prompts": args.n,
        "pick_new_prompt_us": median(whole),
        "pick_new_prompt_wall_us": median(wall),
        "features_us": median(features),
        "metadata_flags_us": median(flags),
        "pick_features_cached_us": median(cached),
        "decision_us": median(decisions),
        "strategy_us": median(c - d for c, d in zip(cached, decisions, strict=True)),
    }
    print(f"Conduit {results['phase']} on {results['embedder']}, 11 deployments; medians, us")
    for key, value in results.items():
        if key.endswith("_us"):
            print(f"{key.removesuffix('_us').replace('_', ' '):36s} {value:8.0f}")
    _common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
