"""How fast is a query turned into features, per embedding backend?

Measures, for each installed backend (static, onnx, sentence-transformers, hashing), in one run:

- load: seconds to build the embedder, importing its libraries on first use (what a
  router's constructor pays in a fresh process);
- short: milliseconds for ``FeatureExtractor.features`` on a new short query, one text
  at a time, as ``route()`` sees it (cache miss: focus, embed, project, metadata);
- long: the same for a new few-shot prompt of about 2 KB;
- cached: microseconds for ``features`` on a text already in the cache.

Usage::

    python benchmarks/bench_features.py [--json OUT] [--backends onnx hashing] [--short 300]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import percentile

from conduit._errors import MissingDependencyError
from conduit.engines.features._extractor import (
    DEFAULT_MODEL,
    Backend,
    FeatureExtractor,
    make_embedder,
)

BACKENDS: tuple[Backend, ...] = ("static", "onnx", "sentence-transformers", "hashing")
LIBRARIES = ("numpy", "onnxruntime", "tokenizers", "torch", "sentence-transformers", "transformers")

_SUBJECTS = [
    "the French revolution",
    "binary search trees",
    "photosynthesis",
    "a REST API in Go",
    "compound interest",
    "the Krebs cycle",
    "quicksort",
    "Kubernetes pods",
    "prime numbers",
    "the stock market",
    "sourdough bread",
    "black holes",
    "SQL joins",
    "the Roman empire",
]
_SHORT = [
    "What is {s}? Explain briefly. ({n})",
    "Write a Python function about {s}, case {n}.",
    "Give me {n} facts about {s}.",
    "How does {s} work, in {n} words?",
    "Summarise {s} for a ten year old (variant {n}).",
    "Compute {n} * 17 and relate it to {s}.",
]
_SHOT = (
    "Question: In the context of {s}, which of the following statements is correct?\n"
    "A. The first option, stated at some length so the example looks like a real one.\n"
    "B. The second option, also fairly long, describing a plausible alternative.\n"
    "C. The third option, which is a distractor for the reader.\n"
    "D. The fourth option, also wrong.\n"
    "Answer: {a}"
)


def short_queries(count: int, rng: random.Random) -> list[str]:
    """Distinct short prompts (20-80 characters), so every one is a cache miss."""
    return [rng.choice(_SHORT).format(s=rng.choice(_SUBJECTS), n=i) for i in range(count)]


def long_queries(count: int, rng: random.Random, size: int = 2048) -> list[str]:
    """Distinct few-shot prompts of about ``size`` characters ending in a new question."""
    out = []
    for i in range(count):
        shots: list[str] = []
        while sum(len(s) + 2 for s in shots) < size - 300:
            shots.append(_SHOT.format(s=rng.choice(_SUBJECTS), a=rng.choice("ABCD")))
        question = _SHOT.format(s=f"{rng.choice(_SUBJECTS)} (question {i})", a="")
        out.append("\n\n".join([*shots, question]))
    return out


def quantiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [1000.0 * s for s in seconds]
    return {
        "median": statistics.median(ms),
        "p90": percentile(ms, 0.9),
        "mean": statistics.fmean(ms),
    }


def time_each(call: Callable[[str], Any], texts: Sequence[str]) -> list[float]:
    """Seconds per call, one text per call."""
    times = []
    for text in texts:
        start = time.perf_counter()
        call(text)
        times.append(time.perf_counter() - start)
    return times


@dataclass
class Result:
    backend: str
    name: str = ""
    skipped: str = ""
    load_s: float = 0.0
    short_ms: dict[str, float] = field(default_factory=dict)
    long_ms: dict[str, float] = field(default_factory=dict)
    cached_us: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)


def bench_backend(
    backend: Backend,
    short: list[str],
    long: list[str],
    warmup: list[str],
    cached: int,
    torch_threads: int | None = None,
) -> Result:
    result = Result(backend=backend)
    start = time.perf_counter()
    try:
        embedder = make_embedder(DEFAULT_MODEL, backend)
    except MissingDependencyError as exc:
        result.skipped = str(exc)
        return result
    result.load_s = time.perf_counter() - start
    result.name = embedder.name
    if backend == "sentence-transformers" and torch_threads is not None:
        sys.modules["torch"].set_num_threads(torch_threads)  # imported by the load above
    extractor = FeatureExtractor(embedder=embedder, cache_size=len(short) + len(long) + 100)
    for text in warmup:  # first calls allocate buffers and fill caches inside the runtimes
        extractor.features(text)
    result.short_ms = quantiles_ms(time_each(extractor.features, short))
    result.long_ms = quantiles_ms(time_each(extractor.features, long))
    seen = (short * (cached // len(short) + 1))[:cached]  # all in the cache by now
    cached_ms = quantiles_ms(time_each(extractor.features, seen))
    result.cached_us = {k: 1000.0 * v for k, v in cached_ms.items()}
    result.samples = {"short": len(short), "long": len(long), "cached": len(seen)}
    return result


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "versions": versions,
        "onnx_threads": 1,
    }
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    return env


def table(results: list[Result]) -> str:
    head = (
        f"{'backend':<22} {'load s':>7} {'short med':>10} {'short p90':>10} "
        f"{'long med':>9} {'long p90':>9} {'cached med':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.backend:<22} skipped: {r.skipped}")
            continue
        lines.append(
            f"{r.backend:<22} {r.load_s:>7.2f} {r.short_ms['median']:>7.2f} ms "
            f"{r.short_ms['p90']:>7.2f} ms {r.long_ms['median']:>6.2f} ms "
            f"{r.long_ms['p90']:>6.2f} ms {r.cached_us['median']:>8.1f} us"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--short", type=int, default=300, help="new short queries (>= 200)")
    parser.add_argument("--long", type=int, default=60, help="new ~2 KB few-shot queries")
    parser.add_argument("--cached", type=int, default=2000, help="cached lookups")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch intra-op threads for sentence-transformers (default: torch's own choice); "
        "the ONNX backend always runs on 1",
    )
    args = parser.parse_args(argv)
    if args.short < 200:
        parser.error("--short must be at least 200 for a stable p90")
    if args.long < 1 or args.cached < 1 or args.warmup < 0:
        parser.error("--long and --cached must be >= 1, --warmup >= 0")
    if args.torch_threads is not None and args.torch_threads < 1:
        parser.error("--torch-threads must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download a model while timing

    rng = random.Random(args.seed)
    short = short_queries(args.short, rng)
    long = long_queries(args.long, rng)
    warmup = [f"warm-up query {i}: {t}" for i, t in enumerate(short_queries(args.warmup, rng))]
    warmup += [f"{t}\n\nwarm-up {i}" for i, t in enumerate(long[: max(args.warmup // 4, 1)])]
    print(
        f"{len(short)} short queries (mean {statistics.fmean(map(len, short)):.0f} chars), "
        f"{len(long)} long (mean {statistics.fmean(map(len, long)):.0f} chars), "
        f"{args.cached} cached lookups; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs",
        flush=True,
    )
    results = []
    for backend in args.backends:
        results.append(bench_backend(backend, short, long, warmup, args.cached, args.torch_threads))
        print(f"  {backend}: done", flush=True)
    print()
    print(table(results))
    report = {"environment": environment(), "results": [asdict(r) for r in results]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
