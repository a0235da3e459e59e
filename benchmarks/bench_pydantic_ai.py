"""Latency ConduitModel adds to a PydanticAI agent run, against calling the model directly.

    python benchmarks/bench_pydantic_ai.py [-n 400] [--new 200] [--http 200] [--json OUT]
                                           [--backend auto|onnx|hashing]

The same agent run, paired A/B (alternating which goes first, so both see the same
machine), with the model given directly or behind a ConduitModel over the shipped
RouterBench log's 11 models (hybrid router, default embedding backend):

- ``function``: the models are PydanticAI ``FunctionModel``s that answer at once, so
  the run's time is PydanticAI's own plus what Conduit adds (route, learn, stamp);
  prompts whose features are cached, then new prompts (embedding included);
- ``http``: the models are ``OpenAIChatModel``s served by the local simulator over
  HTTP, so the baseline includes a real (loopback) request, as in production.

Reported per case: median and p90 of each side, the median of the paired
differences (the added latency) and the ratio of the medians.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import asyncio
import json
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import percentile
from pydantic_ai import Agent
from pydantic_ai.exceptions import DeprecatedModelWarning
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from conduit.engines.router import Router
from conduit.pydantic_ai import ConduitModel
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("42")])


async def timed(agent: Agent[None, str], prompt: str) -> float:
    start = time.perf_counter()
    await agent.run(prompt)
    return (time.perf_counter() - start) * 1000.0


async def paired(
    direct: Agent[None, str], routed: Agent[None, str], prompts: Sequence[str]
) -> dict[str, float]:
    """Each prompt through both agents, alternating which goes first."""
    a: list[float] = []
    b: list[float] = []
    for i, prompt in enumerate(prompts):
        if i % 2:
            a.append(await timed(direct, prompt))
            b.append(await timed(routed, prompt))
        else:
            b.append(await timed(routed, prompt))
            a.append(await timed(direct, prompt))
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    return {
        "n": len(prompts),
        "direct_median_ms": statistics.median(a),
        "direct_p90_ms": percentile(a, 0.9),
        "conduit_median_ms": statistics.median(b),
        "conduit_p90_ms": percentile(b, 0.9),
        "added_median_ms": statistics.median(diffs),
        "ratio": statistics.median(b) / statistics.median(a),
    }


def conduit_agent(models: dict[str, Model], backend: str) -> tuple[Agent[None, str], Router]:
    router = Router(models=list(models), use_hybrid=True, embedding_backend=backend)  # type: ignore[arg-type]
    return Agent(ConduitModel(models, router=router)), router


async def bench(n: int, new: int, http: int, backend: str) -> dict[str, Any]:
    records = read_log(shipped_log())
    names = sorted({m for r in records for m in r.outcomes})
    prompts = [r.prompt for r in records]
    cached, fresh = prompts[:n], prompts[n : n + new]
    results: dict[str, Any] = {"backend": backend, "models": len(names)}

    routed, router = conduit_agent({m: FunctionModel(answer, model_name=m) for m in names}, backend)
    direct: Agent[None, str] = Agent(FunctionModel(answer, model_name=names[0]))
    for prompt in cached:  # warm up: features of these prompts cached, imports and JIT done
        await routed.run(prompt)
        await direct.run(prompt)
    results["function_cached"] = await paired(direct, routed, cached)
    results["function_new"] = await paired(direct, routed, fresh)
    router.close()

    if http:
        with Simulator(seed=0) as sim, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecatedModelWarning)
            provider = OpenAIProvider(base_url=sim.base_url, api_key="sk-bench")
            models: dict[str, Model] = {m: OpenAIChatModel(m, provider=provider) for m in names}
            routed, router = conduit_agent(models, backend)
            direct = Agent(OpenAIChatModel(names[0], provider=provider))
            sample = prompts[:http]
            for prompt in sample[:20]:
                await routed.run(prompt)
                await direct.run(prompt)
            for prompt in sample:  # features cached, as for a prompt seen before
                router.features(prompt)
            results["http_cached"] = await paired(direct, routed, sample)
            router.close()
            await provider.client.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=400, help="cached-prompt pairs (default 400)")
    parser.add_argument("--new", type=int, default=200, help="new-prompt pairs (default 200)")
    parser.add_argument("--http", type=int, default=200, help="pairs over HTTP (default 200)")
    parser.add_argument("--backend", default="auto", help="embedding backend (default auto)")
    parser.add_argument("--json", type=Path, default=None, help="also write results to OUT")
    args = parser.parse_args(argv)
    results = asyncio.run(bench(args.n, args.new, args.http, args.backend))
    for case, row in results.items():
        if isinstance(row, dict):
            print(
                f"{case:<16} n={row['n']:<4} direct {row['direct_median_ms']:7.3f} ms "
                f"(p90 {row['direct_p90_ms']:7.3f})  conduit {row['conduit_median_ms']:7.3f} ms "
                f"(p90 {row['conduit_p90_ms']:7.3f})  added {row['added_median_ms']:6.3f} ms  "
                f"ratio {row['ratio']:.2f}x"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
