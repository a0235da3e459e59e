"""``conduit demo``: Conduit routing real LiteLLM traffic, offline, in a couple of minutes.

A local simulator (:mod:`conduit.simulator`) serves every model of a routing
log behind an OpenAI-compatible endpoint; a ``litellm.Router`` holds one
deployment per model, all in one model group, priced from the log so that
LiteLLM's ``response_cost`` is real; Conduit is installed exactly as the usage
guide shows. Logged queries go through ``router.acompletion`` and the logged
quality each answer carries is fed back with ``strategy.record_feedback``.
The closing table compares what Conduit paid and got with always sending the
strongest model and with the per-query oracle, on the same queries.

``--feedback`` chooses where quality comes from: ``explicit`` (the logged quality
of every answer, through ``record_feedback``), ``judge`` (a :class:`conduit.judge.Judge`
grades ``--judge-rate`` of the answers; the simulator's judge reads the log and
grades ``--judge-noise`` of them wrong), ``shadow`` (the same, each grade a pairwise
comparison with the dearest model) or ``none`` (cost, latency and failures only).
Several, comma-separated, run one after another and share one table.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from conduit import _arguments, _validate
from conduit._errors import (
    ConduitError,
    ConfigurationError,
    MissingDependencyError,
    UnknownDecisionError,
    ValidationError,
)
from conduit.replay._metrics import oracle_choices
from conduit.replay._report import Level, _ToJSON
from conduit.replay.log import LogRecord, read_log, shipped_log

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_N",
    "FEEDBACK_MODES",
    "JUDGE_GROUP",
    "MODEL_GROUP",
    "Answers",
    "DemoResult",
    "add_demo_arguments",
    "answer_all",
    "comparison",
    "model_list",
    "pick_queries",
    "run",
    "run_demo",
    "summarise",
]

#: Queries the demo sends unless told otherwise.
DEFAULT_N = 2000
#: Requests in flight at once.
DEFAULT_CONCURRENCY = 16
#: The LiteLLM model group every simulated deployment belongs to.
MODEL_GROUP = "conduit-demo"
#: What the closing table calls the spend each way of calling the models measured.
SPEND_LABEL = {"LiteLLM": "LiteLLM response_cost", "PydanticAI": "PydanticAI usage x price"}
#: Tries of ``record_feedback`` before LiteLLM's callback has mapped the response (~3 s).
FEEDBACK_ATTEMPTS = 40
#: The LiteLLM model group of the judge: the log's strongest model, served by the simulator.
JUDGE_GROUP = "conduit-demo-judge"
#: Where quality feedback comes from (``--feedback``).
FEEDBACK_MODES = ("explicit", "judge", "shadow", "none")
DEFAULT_JUDGE_RATE = 0.2
DEFAULT_JUDGE_NOISE = 0.15


@dataclass(frozen=True)
class DemoResult(_ToJSON):
    """What Conduit chose and what it got, beside fixed policies on the same queries."""

    _omit: ClassVar[frozenset[str]] = frozenset({"choices"})

    source: str
    n: int
    seed: int
    models: tuple[str, ...]
    conduit: Level
    strongest: Level
    oracle: Level
    share: dict[str, float]
    litellm_spend: float
    """Sum of LiteLLM's own ``response_cost`` (priced from the deployments' token prices)."""
    failed: int
    learned: int
    """Answers whose quality ``record_feedback`` taught the router."""
    seconds: float
    choices: tuple[str, ...] = field(repr=False, default=())
    """The model Conduit chose for each query, in the order sent ("" where it failed)."""
    algorithm: str = "hybrid"
    """The policy the strategy's Conduit router ran."""
    via: str = "LiteLLM"
    """What called the models: LiteLLM (the routing strategy) or PydanticAI (ConduitModel)."""
    feedback: str = "explicit"
    """Where quality came from: explicit, judge, shadow or none."""
    judge_cost: float = 0.0
    """USD the judge spent (its calls and shadow reference answers), priced by LiteLLM."""
    judged: int = 0
    """Answers whose judge grade was learned."""

    @property
    def cost_saving(self) -> float:
        """Share of the strongest model's cost that Conduit did not spend."""
        strong, mine = self.strongest.mean_cost, self.conduit.mean_cost
        if not strong or mine is None:
            return 0.0
        return 1.0 - mine / strong

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "cost_saving": self.cost_saving}

    def table(self) -> str:
        """The closing table the command prints."""

        def row(name: str, level: Level) -> str:
            cost = "n/a" if level.mean_cost is None else f"{level.mean_cost:.6f}"
            return f"  {name:<34} {level.mean_quality:>12.3f} {cost:>14}"

        answered = self.n - self.failed
        rate = answered / self.seconds if self.seconds > 0 else math.inf
        lines = [
            f"Conduit through {self.via} on {self.n} logged queries of {self.source} "
            f"({len(self.models)} models, seed {self.seed})",
            "",
            f"  {'policy':<34} {'mean quality':>12} {'mean cost $':>14}",
            row(f"Conduit ({self.algorithm})", self.conduit),
            row(f"always {self.strongest.model}", self.strongest),
            row("oracle (best model per query)", self.oracle),
            "",
            f"  cost saving vs always the strongest model: {100 * self.cost_saving:.1f}%",
            f"  quality kept: {100 * self.conduit.mean_quality / self.strongest.mean_quality:.1f}%"
            if self.strongest.mean_quality > 0
            else "  quality kept: n/a",
            f"  {SPEND_LABEL.get(self.via, 'spend')} total: ${self.litellm_spend:.4f}",
            "",
            "  share of queries per model:",
        ]
        for model, share in sorted(self.share.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {model:<40} {100 * share:5.1f}%")
        lines += [
            "",
            f"  {answered} answered, {self.failed} failed, {self.learned} learned from "
            f"feedback, in {self.seconds:.1f} s ({rate:.1f} queries/s)",
        ]
        if self.feedback in ("judge", "shadow"):
            lines.append(
                f"  quality from the judge: {self.judged} answers graded, "
                f"judge cost ${self.judge_cost:.4f}"
            )
        return "\n".join(lines)


def comparison(results: Sequence[DemoResult]) -> str:
    """One line per feedback mode: quality, cost, what routing saved, what judging cost."""
    first = results[0]
    lines = [
        f"Quality feedback compared on {first.n} logged queries of {first.source} "
        f"(seed {first.seed}; always {first.strongest.model}: quality "
        f"{first.strongest.mean_quality:.3f}, cost ${first.strongest.mean_cost or 0:.6f})",
        "",
        f"  {'feedback':<10} {'quality':>8} {'mean cost $':>12} {'saving':>7} "
        f"{'judge cost $':>13} {'graded':>7}",
    ]
    for r in results:
        cost = "n/a" if r.conduit.mean_cost is None else f"{r.conduit.mean_cost:.6f}"
        lines.append(
            f"  {r.feedback:<10} {r.conduit.mean_quality:>8.3f} {cost:>12} "
            f"{100 * r.cost_saving:>6.1f}% {r.judge_cost:>13.4f} "
            f"{r.judged if r.feedback in ('judge', 'shadow') else r.learned:>7}"
        )
    return "\n".join(lines)


def pick_queries(records: Sequence[LogRecord], n: int, seed: int) -> list[LogRecord]:
    """``n`` records in seeded random order; past the log's length, a new shuffle each pass.

    >>> rows = [LogRecord(str(i), f"q{i}", "", {}) for i in range(3)]
    >>> [r.id for r in pick_queries(rows, 5, seed=0)]
    ['2', '0', '1', '2', '1']
    """
    _validate.integer("n", n, low=1)
    rng = np.random.default_rng(seed)
    picked: list[LogRecord] = []
    while len(picked) < n:
        picked += [records[i] for i in rng.permutation(len(records))[: n - len(picked)]]
    return picked


def model_list(
    base_url: str, prices: dict[str, float], *, group: str = MODEL_GROUP
) -> list[dict[str, Any]]:
    """One LiteLLM deployment per simulated model, all in ``group``.

    ``model_info.id`` is the log's model name (Conduit's arm); the per-token price
    is set on the deployment because LiteLLM's cost map does not know these names.
    """
    return [
        {
            "model_name": group,
            # Cache prices only quiet LiteLLM's warning about models missing from its cost map.
            "model_info": {
                "id": model,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
            },
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": base_url,
                "api_key": "sk-conduit-demo",
                "input_cost_per_token": price,
                "output_cost_per_token": price,
            },
        }
        for model, price in prices.items()
    ]


def _import_litellm() -> tuple[Any, Any]:
    """LiteLLM and the strategy, configured to stay offline (local cost map, no telemetry)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import litellm

        from conduit_litellm import ConduitRoutingStrategy  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError(
            f"the demo needs LiteLLM and conduit_litellm ({exc}): pip install 'conduit[litellm]'"
        ) from exc
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm, ConduitRoutingStrategy


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _header(response: Any, name: str) -> str | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    value = headers.get(f"llm_provider-{name}", headers.get(name))
    return None if value is None else str(value)


async def _record_feedback(strategy: Any, response: Any, quality: float) -> object:
    """``strategy.record_feedback``, retried while LiteLLM's success callback is still pending.

    LiteLLM runs logging callbacks as tasks after ``acompletion`` returns, and the
    strategy learns which decision a response id belongs to in that callback; a
    judgement that arrives first waits a few event-loop turns for it.
    """
    for attempt in range(FEEDBACK_ATTEMPTS):
        try:
            outcome = strategy.record_feedback(response, quality=quality)
            return await outcome if inspect.isawaitable(outcome) else outcome
        except UnknownDecisionError:
            if attempt == FEEDBACK_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.005 * min(attempt, 20))
    return None


@dataclass
class Answers:
    """What each query got (in the order sent): the model chosen ("" where it failed), its
    quality and cost (NaN: not known), and how many qualities the router learned."""

    chosen: list[str]
    quality: np.ndarray
    cost: np.ndarray
    learned: int = 0
    seconds: float = 0.0


async def answer_all(
    queries: Sequence[LogRecord],
    request: Callable[[LogRecord], Awaitable[Any]],
    learn: Callable[[int, LogRecord, Any, Answers, Callable[[str], None]], Awaitable[None]],
    *,
    concurrency: int,
    progress: bool,
) -> Answers:
    """``request`` every query, at most ``concurrency`` at once, behind a progress bar; then
    ``learn(i, record, response, answers, say)`` from each answer. A failed request is counted
    (its model stays ""), not fatal; ``say`` writes a line above the bar."""
    answers = Answers([""] * len(queries), np.full(len(queries), np.nan),
                      np.full(len(queries), np.nan))  # fmt: skip
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(queries), desc="conduit demo", unit="query", disable=not progress)

    async def ask(i: int, record: LogRecord) -> None:
        async with gate:
            try:
                response = await request(record)
            except Exception as exc:  # a failed query is counted, not fatal
                bar.write(f"query {record.id} failed: {type(exc).__name__}: {exc}")
                bar.update(1)
                return
            await learn(i, record, response, answers, bar.write)
            bar.update(1)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(ask(i, r) for i, r in enumerate(queries)))
    finally:
        answers.seconds = time.perf_counter() - start
        bar.close()
    return answers


async def run(
    data: str | Path | None = None,
    *,
    n: int = DEFAULT_N,
    seed: int = 0,
    concurrency: int = DEFAULT_CONCURRENCY,
    latency_ms: float = 0.0,
    progress: bool = True,
    feedback: str = "explicit",
    judge_rate: float = DEFAULT_JUDGE_RATE,
    judge_noise: float = DEFAULT_JUDGE_NOISE,
) -> DemoResult:
    """Serve the log, route ``n`` of its queries through LiteLLM with Conduit, feed back quality
    (``feedback``: explicit, judge, shadow or none; see the module docstring)."""
    from conduit.judge import Judge
    from conduit.simulator import Simulator, quality_of
    from conduit.simulator._judge import SimulatedJudge

    if feedback not in FEEDBACK_MODES:
        raise ConfigurationError(f"feedback must be one of {FEEDBACK_MODES}, got {feedback!r}")
    judged_mode = feedback in ("judge", "shadow")
    explicit = feedback == "explicit"
    judge = (
        Judge(JUDGE_GROUP, sample_rate=judge_rate, seed=seed,
              shadow_rate=1.0 if feedback == "shadow" else 0.0)
        if judged_mode else None
    )  # fmt: skip

    _validate.integer("concurrency", concurrency, low=1)
    path = shipped_log() if data is None else Path(data)
    records = read_log(path)
    queries = pick_queries(records, n, seed)
    litellm, ConduitRoutingStrategy = _import_litellm()

    simulated_judge = SimulatedJudge(noise=judge_noise, seed=seed)
    with Simulator(path, latency_ms=latency_ms, seed=seed, judge=simulated_judge) as sim:
        models = sim.catalog.logged_models
        prices = {m: sim.price_per_token(m) for m in models}
        strongest = max(models, key=lambda m: sum(r.outcomes[m].quality for r in records))
        judges = model_list(sim.base_url, {strongest: prices[strongest]}, group=JUDGE_GROUP)
        judges[0]["model_info"]["id"] = JUDGE_GROUP
        router = litellm.Router(
            model_list=model_list(sim.base_url, prices) + (judges if judged_mode else []),
            num_retries=2,
        )
        strategy = ConduitRoutingStrategy(
            use_hybrid=True, scope="group", judge=judge,
            signal_grace=0.0 if judged_mode else 300.0,
            state_store="memory://",  # each demo learns from scratch, not from the last one
        )  # fmt: skip
        ConduitRoutingStrategy.setup_strategy(router, strategy)
        spend = 0.0

        async def request(record: LogRecord) -> Any:
            return await router.acompletion(
                model=MODEL_GROUP, messages=[{"role": "user", "content": record.prompt}]
            )

        async def learn(
            i: int, record: LogRecord, response: Any, answers: Answers, say: Callable[[str], None]
        ) -> None:
            nonlocal spend
            q = quality_of(response)
            if q is not None and explicit:
                try:
                    outcome = await _record_feedback(strategy, response, q)
                except ConduitError as exc:  # counted as not learned; the demo goes on
                    say(f"feedback on query {record.id} not learned: {exc}")
                    outcome = None
                if isinstance(outcome, (set, frozenset)) and "quality" in outcome:
                    answers.learned += 1
            hidden = getattr(response, "_hidden_params", None) or {}
            answers.chosen[i] = str(hidden.get("model_id") or response.model)
            answers.quality[i] = np.nan if q is None else q
            logged_cost = _header(response, "x-conduit-cost")
            answers.cost[i] = np.nan if logged_cost is None else float(logged_cost)
            spend += float(hidden.get("response_cost") or 0.0)

        try:
            got = await answer_all(
                queries, request, learn, concurrency=concurrency, progress=progress
            )
        finally:
            conduit_router = strategy.conduit_router
            algorithm = "none" if conduit_router is None else str(conduit_router.algorithm)
            strategy.cleanup()  # the judge's queued grades are finished first
            stats = strategy.stats()
            await litellm.close_litellm_async_clients()

    return summarise(
        path,
        queries,
        models,
        got,
        seed=seed,
        spend=spend,
        algorithm=algorithm,
        feedback=feedback,
        judge_cost=float(stats.get("judge.cost", 0.0)),
        judged=int(stats.get("judge.judge_learned", 0.0)),
    )


def summarise(
    path: Path,
    queries: Sequence[LogRecord],
    models: Sequence[str],
    answers: Answers,
    *,
    seed: int,
    spend: float,
    algorithm: str,
    via: str = "LiteLLM",
    feedback: str = "explicit",
    judge_cost: float = 0.0,
    judged: int = 0,
) -> DemoResult:
    """What was chosen and got, beside the strongest model and the oracle on the same queries."""
    models = tuple(models)
    chosen, quality, cost = answers.chosen, answers.quality, answers.cost
    index = {m: k for k, m in enumerate(models)}

    def mean(values: np.ndarray) -> float | None:
        known = values[np.isfinite(values)]
        return float(known.mean()) if known.size else None

    q_all = np.array([[r.outcomes[m].quality for m in models] for r in queries])
    c_all = np.array(
        [
            [np.nan if r.outcomes[m].cost is None else r.outcomes[m].cost for m in models]
            for r in queries
        ]
    )
    rows = np.arange(len(queries))
    pick = oracle_choices(q_all, c_all)
    means = q_all.mean(axis=0)
    mean_costs = [mean(c_all[:, k]) for k in range(len(models))]
    # The strongest model: best mean quality, the cheaper among ties (as replay's best single).
    strong = min(range(len(models)), key=lambda k: (-means[k], _or_inf(mean_costs[k])))
    answered = np.array([c in index for c in chosen])
    counts = Counter(c for c in chosen if c)

    return DemoResult(
        source=path.name,
        n=len(queries),
        seed=seed,
        models=models,
        conduit=Level(mean(quality[answered]) or 0.0, mean(cost[answered])),
        strongest=Level(float(means[strong]), mean_costs[strong], model=models[strong]),
        oracle=Level(float(q_all[rows, pick].mean()), mean(c_all[rows, pick])),
        share={m: counts[m] / len(queries) for m in models},
        litellm_spend=spend,
        failed=int((~answered).sum()),
        learned=answers.learned,
        seconds=answers.seconds,
        choices=tuple(chosen),
        algorithm=algorithm,
        via=via,
        feedback=feedback,
        judge_cost=judge_cost,
        judged=judged,
    )


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in FEEDBACK_MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(
            f"feedback modes are {', '.join(FEEDBACK_MODES)}, got {text!r}"
        )
    return modes


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``conduit demo``."""
    parser.add_argument(
        "--data",
        metavar="LOG",
        default=None,
        help="routing log to serve and replay (default: the shipped RouterBench log)",
    )
    parser.add_argument(
        "--n",
        type=_arguments.positive_int,
        default=DEFAULT_N,
        metavar="N",
        help="queries to send (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=_arguments.non_negative_int,
        default=0,
        metavar="N",
        help="seed of the query order (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_arguments.positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="K",
        help="requests in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="simulated latency of each answer (default: 0)",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        type=Path,
        default=None,
        help="also write the results as JSON to OUT",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--via",
        choices=("litellm", "pydantic-ai"),
        default="litellm",
        help="call the models through LiteLLM's router with the Conduit "
        "strategy, or through PydanticAI with conduit.pydantic_ai's "
        "ConduitModel (the pydantic-ai extra) (default: %(default)s)",
    )
    parser.add_argument(
        "--feedback",
        type=_modes,
        default=("explicit",),
        metavar="MODES",
        help="where quality comes from: explicit, judge, shadow or none; several, "
        "comma-separated, share one table (default: explicit)",
    )
    parser.add_argument(
        "--judge-rate",
        type=_arguments.fraction,
        default=DEFAULT_JUDGE_RATE,
        metavar="R",
        help="share of answers the judge grades (default: %(default)s)",
    )
    parser.add_argument(
        "--judge-noise",
        type=_arguments.fraction,
        default=DEFAULT_JUDGE_NOISE,
        metavar="P",
        help="share of answers the simulated judge grades wrong (default: %(default)s)",
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo, print the closing table, optionally write JSON. Returns the exit code."""
    if getattr(args, "via", "litellm") == "pydantic-ai":  # raises MissingDependencyError without
        from conduit.pydantic_ai._demo import run as run_pydantic_ai

        if tuple(args.feedback) != ("explicit",):
            raise ValidationError(
                "--via pydantic-ai learns from explicit feedback only; the judge, shadow and "
                "none modes run through LiteLLM (--via litellm)"
            )
        results = [
            asyncio.run(
                run_pydantic_ai(
                    args.data,
                    n=args.n,
                    seed=args.seed,
                    concurrency=args.concurrency,
                    latency_ms=args.latency_ms,
                    progress=not args.no_progress,
                )
            )
        ]
    else:
        results = [
            asyncio.run(run(
                args.data, n=args.n, seed=args.seed, concurrency=args.concurrency,
                latency_ms=args.latency_ms, progress=not args.no_progress, feedback=mode,
                judge_rate=args.judge_rate, judge_noise=args.judge_noise,
            ))
            for mode in args.feedback
        ]  # fmt: skip
    for result in results:
        print(result.table())
        print()
    if len(results) > 1:
        print(comparison(results))
    if args.json is not None:
        out: Any = results[0].to_json() if len(results) == 1 else [r.to_json() for r in results]
        try:
            args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot write {args.json}: {exc.strerror or exc}") from exc
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if all(r.failed == 0 for r in results) else 1
