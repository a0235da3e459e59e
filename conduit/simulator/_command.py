"""``conduit simulate``: serve a routing log as an OpenAI-compatible endpoint until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING

from conduit import _arguments

if TYPE_CHECKING:
    from conduit.simulator._server import Simulator

__all__ = ["add_simulate_arguments", "parse_alias", "parse_latency", "run_simulate"]


def parse_latency(text: str) -> tuple[float, float]:
    """``"M"`` or ``"M:JITTER"`` in milliseconds, as (latency, jitter).

    >>> parse_latency("40"), parse_latency("40:10")
    ((40.0, 0.0), (40.0, 10.0))
    """
    head, _, tail = text.partition(":")
    try:
        latency, jitter = float(head), float(tail) if tail else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"latency must be MS or MS:JITTER in milliseconds, got {text!r}"
        ) from None
    if not (0 <= jitter <= latency < float("inf")):
        raise argparse.ArgumentTypeError(
            f"latency must be finite with 0 <= JITTER <= MS, got {text!r}"
        )
    return latency, jitter


def parse_alias(text: str) -> tuple[str, str]:
    """``"NAME=LOGGED_MODEL"``: answer requests for NAME with a logged model's outcomes.

    >>> parse_alias("gpt-4o-mini=gpt-3.5-turbo-1106")
    ('gpt-4o-mini', 'gpt-3.5-turbo-1106')
    """
    name, sep, target = text.partition("=")
    if not sep or not name or not target:
        raise argparse.ArgumentTypeError(f"alias must be NAME=LOGGED_MODEL, got {text!r}")
    return name, target


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``conduit simulate``."""
    parser.add_argument(
        "--data",
        metavar="LOG",
        default=None,
        help="routing log (JSONL, optionally gzip'd); default: the shipped RouterBench log",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_arguments.port,
        default=0,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-ms",
        type=parse_latency,
        default=(0.0, 0.0),
        metavar="MS[:JITTER]",
        help="delay of each answer, in milliseconds",
    )
    parser.add_argument(
        "--error-rate",
        type=_arguments.fraction,
        default=0.0,
        metavar="P",
        help="share of requests answered with HTTP 500 or 429 (default: 0)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the latency jitter and injected errors"
    )
    parser.add_argument(
        "--alias",
        type=parse_alias,
        action="append",
        default=[],
        metavar="NAME=LOGGED_MODEL",
        help="also answer to NAME, with a logged model's outcomes (repeatable)",
    )
    parser.add_argument(
        "--judge-noise",
        type=_arguments.fraction,
        default=0.0,
        metavar="P",
        help="share of answers the simulated judge grades wrong (quality flipped; default: 0)",
    )
    parser.add_argument(
        "--judge-length-bias",
        type=_arguments.fraction,
        default=0.0,
        metavar="B",
        help="quality the simulated judge adds to long answers (default: 0)",
    )
    parser.add_argument(
        "--judge-position-bias",
        type=_arguments.fraction,
        default=0.0,
        metavar="P",
        help="share of pairwise verdicts that favour the first answer (default: 0)",
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Serve until interrupted, after printing the base URL and the models; returns 0.

    A bad setting or a busy port raises :class:`~conduit._errors.ConfigurationError`
    (``conduit`` turns it into ``conduit: error: ...`` and exit status 2).
    """
    from conduit.simulator._judge import SimulatedJudge
    from conduit.simulator._server import Simulator

    latency, jitter = args.latency_ms
    judge = SimulatedJudge(
        noise=args.judge_noise,
        length_bias=args.judge_length_bias,
        position_bias=args.judge_position_bias,
        seed=args.seed or 0,
    )
    simulator = Simulator(
        args.data,
        host=args.host,
        port=args.port,
        latency_ms=latency,
        jitter_ms=jitter,
        error_rate=args.error_rate,
        seed=args.seed,
        aliases=dict(args.alias),
        judge=judge,
    )

    def ready(sim: Simulator) -> None:
        print(
            f"Serving {len(sim.models)} models for {len(sim.catalog)} logged prompts "
            f"at {sim.base_url} (Ctrl-C to stop)",
            flush=True,
        )
        for model in sim.models:
            print(f"  {model}  {sim.price_per_token(model):.3g} USD/token", flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the simulator stops
        asyncio.run(simulator.serve(ready))
    return 0
