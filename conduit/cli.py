"""The ``conduit`` command.

One subcommand per pair of functions: ``_add_<name>(subparsers)`` declares its
arguments and ``_run_<name>(args) -> int`` runs it; :data:`_SUBCOMMANDS` lists
them. Any :class:`~conduit.errors.ConduitError` becomes ``conduit: error: ...``
on stderr and exit status 2, like a usage error, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from conduit import __version__
from conduit.config import state_url
from conduit.engines.bandits import ALGORITHMS
from conduit.engines.features.extractor import Backend
from conduit.errors import ConduitError, ValidationError
from conduit.stores.cli import add_state_commands, run_state
from conduit.types import PRESETS

__all__ = ["main"]

Subparsers = Any  # argparse's _SubParsersAction, which is private


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _cost_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 100.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be in [0, 100], got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
    return value


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before the work rather than after it."""
    if path.is_dir():
        raise ValidationError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise ValidationError(f"cannot write {path}: no directory {path.parent}")


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot write {path}: {exc.strerror or exc}") from exc


# -- conduit replay ----------------------------------------------------------------------------
def _add_replay(subparsers: Subparsers) -> None:
    from conduit.replay.loop import DEFAULT_ALGORITHM, DEFAULT_PREFERENCE, DEFAULT_TIME_STEP

    p = subparsers.add_parser(
        "replay",
        help="replay a routing log through a learning router and score it",
        description=(
            "Stream a routing log (every model's real quality and cost per query) through a "
            "learning router in seeded random order. The router sees only the outcome of the "
            "model it chose; the oracle, every single model and random routing are scored on "
            "the same queries. Without --data it runs on the shipped RouterBench log (11 models)."
        ),
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="a JSONL or JSONL.gz routing log, or the name of a log shipped with conduit",
    )
    p.add_argument(
        "--algorithm",
        default=DEFAULT_ALGORITHM,
        choices=sorted(ALGORITHMS),
        metavar="A",
        help=f"routing policy: {', '.join(sorted(ALGORITHMS))} (default: {DEFAULT_ALGORITHM})",
    )
    prefs = p.add_mutually_exclusive_group()
    prefs.add_argument(
        "--preference",
        choices=sorted(PRESETS),
        metavar="P",
        help=f"preset every query carries: {', '.join(sorted(PRESETS))} "
        f"(default: {DEFAULT_PREFERENCE})",
    )
    prefs.add_argument(
        "--cost-weight",
        type=_cost_weight,
        metavar="W",
        help="instead of a preset, weigh cost by W against quality 1 (latency 0)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, metavar="N", help="seed of order and policy (default: 0)"
    )
    p.add_argument(
        "--limit", type=_positive_int, metavar="N", help="use the first N queries of the log"
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also replay at a grid of cost weights: the cost-quality curve "
        "(and RouteLLM's APGR, CPT(50%%), CPT(80%%) for two-model logs)",
    )
    p.add_argument("--json", metavar="OUT", type=Path, help="write the results as JSON to OUT")
    p.add_argument(
        "--plot", metavar="OUT.png", type=Path, help="save the learning curve (needs conduit[plot])"
    )
    p.add_argument(
        "--embedding-backend",
        default="auto",
        choices=list(get_args(Backend)),
        help="how prompts are embedded (default: auto)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="also fill this state store (learned state and a history record per decision, "
        "as production traffic would) for 'conduit stats' and 'conduit dashboard'",
    )
    p.add_argument("--namespace", help="namespace in --store (default: the URL's, else 'default')")
    p.add_argument(
        "--time-step",
        type=_positive_float,
        default=DEFAULT_TIME_STEP,
        metavar="S",
        help="seconds between replayed decisions in the store's history; the last one is "
        f"now (default: {DEFAULT_TIME_STEP:g})",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _run_replay(args: argparse.Namespace) -> int:
    from conduit.replay.loop import load, replay, sweep
    from conduit.replay.report import format_replay, format_sweep

    if args.plot is not None:
        from conduit.replay.plot import require_matplotlib

        require_matplotlib()  # fail before the work, not after it
    for out in (args.json, args.plot):
        if out is not None:
            _check_writable(out)
    progress = not args.quiet
    store = None
    if args.store is not None:  # opened (and checked) before the work, not after it
        from conduit.stores import open_store

        store = open_store(args.store, namespace=args.namespace)
    started = time.perf_counter()
    data = load(
        args.data, limit=args.limit, embedding_backend=args.embedding_backend, progress=progress
    )
    embedded = time.perf_counter()
    try:
        result = replay(
            data,
            algorithm=args.algorithm,
            preference=args.preference,
            cost_weight=args.cost_weight,
            seed=args.seed,
            progress=progress,
            store=store,
            time_step=args.time_step,
        )
    finally:
        if store is not None:
            store.close()
    replayed = time.perf_counter()
    print(format_replay(result))
    if store is not None:
        print(
            f"wrote {result.n} decisions, their outcomes and the learned state to {store.url} "
            f"(namespace {store.namespace!r}); see them with: conduit stats --store URL"
        )
    print(
        f"({data.extractor.name} features in {embedded - started:.1f} s, "
        f"replay in {replayed - embedded:.1f} s)"
    )
    swept = None
    if args.sweep:
        swept = sweep(data, algorithm=args.algorithm, seed=args.seed, progress=progress)
        print()
        print(format_sweep(swept))
        print(f"({len(swept.points)} replays in {time.perf_counter() - replayed:.1f} s)")
    if args.json is not None:
        report: dict[str, Any] = result.to_json()
        if swept is not None:
            sweep_json = swept.to_json()
            for key in ("strong", "weak", "curve", "apgr", "cpt50", "cpt80"):
                report[key] = sweep_json[key]
        _write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        from conduit.replay.plot import plot_replay

        print(f"wrote {plot_replay(result, args.plot, sweep=swept)}")
    return 0


#: (name, declare arguments, run) of every subcommand.
def _add_simulate(subparsers: Subparsers) -> None:
    from conduit.simulator.command import add_simulate_arguments

    add_simulate_arguments(
        subparsers.add_parser(
            "simulate", help="serve a routing log as a local OpenAI-compatible endpoint"
        )
    )


def _run_simulate(args: argparse.Namespace) -> int:
    from conduit.simulator.command import run_simulate

    return run_simulate(args)


def _add_demo(subparsers: Subparsers) -> None:
    from conduit.demo import add_demo_arguments

    add_demo_arguments(
        subparsers.add_parser(
            "demo", help="route logged queries through LiteLLM with Conduit, offline, and score it"
        )
    )


def _run_demo(args: argparse.Namespace) -> int:
    from conduit.demo import run_demo

    return run_demo(args)


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        help="state store URL (default: $CONDUIT_STATE_URL or the SQLite file in your data "
        "directory)",
    )
    p.add_argument("--namespace", help="router namespace (default: the URL's, else 'default')")


# -- conduit stats -----------------------------------------------------------------------------
def _add_stats(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "stats",
        help="what a router learned and did, from its store: traffic, quality, cost, savings",
        description=(
            "Per model: share of traffic, mean quality, cost and latency (from the learned "
            "state); savings against always the strongest model; the share of exploring "
            "decisions and the most recent decisions with their reasons (from the history)."
        ),
    )
    _store_arguments(p)
    p.add_argument(
        "--recent", type=int, default=10, metavar="N", help="recent decisions shown (default: 10)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_stats(args: argparse.Namespace) -> int:
    from conduit.dashboard.summary import format_summary, summarize
    from conduit.stores import open_store

    if args.recent < 0:
        raise ValidationError(f"--recent must be >= 0, got {args.recent}")
    with open_store(args.store, namespace=args.namespace) as store:
        summary = summarize(store, recent=args.recent)
    print(json.dumps(summary.to_json()) if args.json else format_summary(summary))
    return 0


# -- conduit explain ---------------------------------------------------------------------------
def _add_explain(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "explain",
        help="why one decision chose its model: scores, exploration, constraints",
        description=(
            "Print the explanation a store's history keeps for one decision: every "
            "candidate's predicted utility, quality, exploration bonus, cost and latency, the "
            "preferences it was made under, and the models its constraints excluded."
        ),
    )
    p.add_argument("decision_id", metavar="DECISION_ID")
    _store_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_explain(args: argparse.Namespace) -> int:
    from conduit.errors import UnknownDecisionError
    from conduit.stores import open_store

    with open_store(args.store, namespace=args.namespace) as store:
        record = store.record(args.decision_id)
        where = f"{store.url} (namespace {store.namespace!r})"
    if record is None:
        raise UnknownDecisionError(f"no decision {args.decision_id!r} in the history of {where}")
    explanation = record.explain()
    if explanation is None:
        raise UnknownDecisionError(
            f"decision {args.decision_id!r} in {where} was recorded without an explanation "
            "(by an older Conduit, or only its outcome reached the store)"
        )
    print(explanation.to_json() if args.json else explanation.format())
    if not args.json and record.quality is not None:
        print(
            f"outcome: quality {record.quality:.3f}"
            + (f", cost ${record.cost:.6f}" if record.cost is not None else "")
        )
    return 0


# -- conduit dashboard -------------------------------------------------------------------------
def _add_dashboard(subparsers: Subparsers) -> None:
    from conduit.dashboard.server import DEFAULT_HOST, DEFAULT_PORT

    p = subparsers.add_parser(
        "dashboard",
        help="serve a live web view of a store: traffic, quality against cost, savings",
        description=(
            "Serve a small web page (standard library only, nothing loaded from the internet) "
            "charting what the router learned and did. Binds 127.0.0.1 unless told otherwise; "
            "any other address needs a token (--token or $CONDUIT_DASHBOARD_TOKEN), which "
            "every request must then carry."
        ),
    )
    _store_arguments(p)
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    p.add_argument(
        "--token",
        help="require this bearer token, 16+ characters (default: $CONDUIT_DASHBOARD_TOKEN, "
        "which, unlike an argument, other users cannot see in the process list)",
    )


def _run_dashboard(args: argparse.Namespace) -> int:
    from conduit.config import dashboard_token
    from conduit.dashboard.server import DashboardServer

    token = args.token or dashboard_token()
    server = DashboardServer(
        args.store if args.store is not None else state_url(),
        host=args.host,
        port=args.port,
        token=token,
        namespace=args.namespace,
    )
    shown = f"{server.url}?token=<token>" if token else server.url
    print(f"conduit dashboard of {server.store.url} at {shown} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0


_SUBCOMMANDS: tuple[
    tuple[str, Callable[[Subparsers], None], Callable[[argparse.Namespace], int]], ...
] = (
    ("replay", _add_replay, _run_replay),
    ("state", add_state_commands, run_state),
    ("stats", _add_stats, _run_stats),
    ("explain", _add_explain, _run_explain),
    ("dashboard", _add_dashboard, _run_dashboard),
    ("simulate", _add_simulate, _run_simulate),
    ("demo", _add_demo, _run_demo),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit: learned LLM routing.")
    parser.add_argument("--version", action="version", version=f"conduit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add, run in _SUBCOMMANDS:
        add(subparsers)
        subparsers.choices[name].set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``conduit`` command; returns the exit status (2 for any usage or input error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="conduit: %(message)s")
    try:
        status: int = args.run(args)
    except ConduitError as exc:
        print(f"conduit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conduit: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
