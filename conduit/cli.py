"""The ``conduit`` command.

One subcommand per pair of functions: ``_add_<name>(subparsers)`` declares its
arguments and ``_run_<name>(args) -> int`` runs it; :data:`_SUBCOMMANDS` lists
them. Any :class:`~conduit._errors.ConduitError` becomes ``conduit: error: ...``
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

from conduit import __version__, _arguments
from conduit._errors import ConduitError, UnknownDecisionError, ValidationError
from conduit._types import PRESETS
from conduit.engines.bandits import ALGORITHMS
from conduit.engines.features._extractor import Backend
from conduit.stores import HistoryRecord, Store
from conduit.stores._cli import (
    add_state_commands,
    add_store_arguments,
    open_from_args,
    run_state,
)

__all__ = ["main"]

Subparsers = Any  # argparse's _SubParsersAction, which is private


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before the work rather than after it."""
    if path.is_dir():
        raise ValidationError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise ValidationError(f"cannot write {path}: no directory {path.parent}")


def _write_text(path: Path, text: str) -> None:
    """Write a report, private to the user (0600): it may name models, costs and prompts."""
    from conduit._state import write_private

    try:
        write_private(path, text)
    except OSError as exc:
        raise ValidationError(f"cannot write {path}: {exc.strerror or exc}") from exc


# -- conduit replay ----------------------------------------------------------------------------
def _add_replay(subparsers: Subparsers) -> None:
    from conduit.replay._loop import DEFAULT_ALGORITHM, DEFAULT_PREFERENCE, DEFAULT_TIME_STEP

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
        type=_arguments.cost_weight,
        metavar="W",
        help="instead of a preset, weigh cost by W against quality 1 (latency 0)",
    )
    targets = p.add_mutually_exclusive_group()
    targets.add_argument(
        "--budget",
        type=_arguments.positive_fraction,
        metavar="F",
        help="target mean cost per query: F of always using the dearest model (0.2 = 20%%)",
    )
    targets.add_argument(
        "--budget-usd",
        type=_arguments.positive_float,
        metavar="USD",
        help="target mean cost per query",
    )
    targets.add_argument(
        "--quality-floor",
        type=_arguments.positive_fraction,
        metavar="F",
        help="target mean quality: F of the best model's learned quality, as cheaply as possible",
    )
    p.add_argument(
        "--seed",
        type=_arguments.non_negative_int,
        default=0,
        metavar="N",
        help="seed of order and policy (default: 0)",
    )
    p.add_argument(
        "--limit",
        type=_arguments.positive_int,
        metavar="N",
        help="use the first N queries of the log",
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
        type=_arguments.positive_float,
        default=DEFAULT_TIME_STEP,
        metavar="S",
        help="seconds between replayed decisions in the store's history; the last one is "
        f"now (default: {DEFAULT_TIME_STEP:g})",
    )
    p.add_argument(
        "--feedback-rate",
        type=_arguments.fraction,
        default=1.0,
        metavar="R",
        help="share of decisions whose quality the router learns (default: 1, every one)",
    )
    p.add_argument(
        "--feedback-noise",
        type=_arguments.fraction,
        default=0.0,
        metavar="P",
        help="share of those quality labels flipped to 1 - q (default: 0)",
    )
    p.add_argument(
        "--feedback-sampling",
        choices=["uniform", "uncertain"],
        default="uniform",
        help="label decisions uniformly, or more where the router is unsure (default: uniform)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _run_replay(args: argparse.Namespace) -> int:
    from conduit.replay._loop import Labels, load, replay, sweep
    from conduit.replay._report import format_replay, format_sweep

    if args.plot is not None:
        from conduit.replay._plot import require_matplotlib

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
            budget=args.budget,
            budget_usd=args.budget_usd,
            quality_floor=args.quality_floor,
            seed=args.seed,
            progress=progress,
            store=store,
            time_step=args.time_step,
            labels=Labels(
                rate=args.feedback_rate,
                noise=args.feedback_noise,
                uncertain=args.feedback_sampling == "uncertain",
            ),
        )
    finally:
        if store is not None:
            store.close()
    replayed = time.perf_counter()
    print(format_replay(result))
    if (args.feedback_rate, args.feedback_noise) != (1.0, 0.0):
        print(
            f"quality feedback on {100 * args.feedback_rate:g}% of decisions "
            f"({args.feedback_sampling}), {100 * args.feedback_noise:g}% of labels flipped"
        )
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
        from conduit.replay._plot import plot_replay

        print(f"wrote {plot_replay(result, args.plot, sweep=swept)}")
    return 0


#: (name, declare arguments, run) of every subcommand.
def _add_simulate(subparsers: Subparsers) -> None:
    from conduit.simulator._command import add_simulate_arguments

    add_simulate_arguments(
        subparsers.add_parser(
            "simulate", help="serve a routing log as a local OpenAI-compatible endpoint"
        )
    )


def _run_simulate(args: argparse.Namespace) -> int:
    from conduit.simulator._command import run_simulate

    return run_simulate(args)


def _add_demo(subparsers: Subparsers) -> None:
    from conduit._demo import add_demo_arguments

    add_demo_arguments(
        subparsers.add_parser(
            "demo", help="route logged queries through LiteLLM with Conduit, offline, and score it"
        )
    )


def _run_demo(args: argparse.Namespace) -> int:
    from conduit._demo import run_demo

    return run_demo(args)


# -- conduit stats -----------------------------------------------------------------------------
def _add_stats(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "stats",
        help="what a router learned and did, from its store: traffic, quality, cost, savings",
        description=(
            "Per model: share of traffic, mean quality, cost and latency (from the learned "
            "state); savings against always the dearest model (or --baseline-model); the share "
            "of exploring "
            "decisions and the most recent decisions with their reasons (from the history)."
        ),
    )
    add_store_arguments(p)
    p.add_argument(
        "--recent", type=int, default=10, metavar="N", help="recent decisions shown (default: 10)"
    )
    p.add_argument(
        "--baseline-model",
        metavar="MODEL",
        help="measure savings against always this model (default: the dearest one)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_stats(args: argparse.Namespace) -> int:
    from conduit.dashboard._summary import format_summary, summarize

    if args.recent < 0:
        raise ValidationError(f"--recent must be >= 0, got {args.recent}")
    with open_from_args(args, must_exist=True) as store:
        summary = summarize(store, recent=args.recent, baseline_model=args.baseline_model)
    print(json.dumps(summary.to_json()) if args.json else format_summary(summary))
    return 0


# -- conduit explain ---------------------------------------------------------------------------
#: How far back ``conduit explain`` looks for the decision a short id names.
PREFIX_WINDOW = 100_000


def _find_decision(store: Store, text: str) -> HistoryRecord:
    """The decision ``text`` names: its full id, or a prefix of it (the short id that
    ``conduit stats`` prints) that only one of the last PREFIX_WINDOW decisions has."""
    record = store.record(text)
    if record is not None:
        return record
    where = f"{store.url} (namespace {store.namespace!r})"
    found = [r for r in store.history(limit=PREFIX_WINDOW) if r.decision_id.startswith(text)]
    if len(found) > 1:
        shown = ", ".join(r.decision_id for r in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ValidationError(
            f"{text!r} is the start of {len(found)} decision ids in {where} ({shown}); "
            "give more of the id"
        )
    if not found:
        raise UnknownDecisionError(f"no decision {text!r} in the history of {where}")
    return found[0]


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
    p.add_argument(
        "decision_id",
        metavar="DECISION_ID",
        help="a decision id, or its first characters (the short id 'conduit stats' prints)",
    )
    add_store_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_explain(args: argparse.Namespace) -> int:
    with open_from_args(args, must_exist=True) as store:
        record = _find_decision(store, args.decision_id)
    explanation = record.explain()
    if explanation is None:
        raise UnknownDecisionError(
            f"decision {record.decision_id!r} in {store.url} (namespace {store.namespace!r}) "
            "was recorded without an explanation (by an older Conduit, or only its outcome "
            "reached the store)"
        )
    print(explanation.model_dump_json() if args.json else explanation.format())
    if not args.json and record.quality is not None:
        print(
            f"outcome: quality {record.quality:.3f}"
            + (f", cost ${record.cost:.6f}" if record.cost is not None else "")
        )
    return 0


# -- conduit dashboard -------------------------------------------------------------------------
def _add_dashboard(subparsers: Subparsers) -> None:
    from conduit.dashboard._server import DEFAULT_HOST, DEFAULT_PORT

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
    add_store_arguments(p)
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    p.add_argument(
        "--port", type=_arguments.port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    p.add_argument(
        "--token",
        help="require this bearer token, 16+ characters (default: $CONDUIT_DASHBOARD_TOKEN, "
        "which, unlike an argument, other users cannot see in the process list)",
    )


def _run_dashboard(args: argparse.Namespace) -> int:
    from conduit.config import dashboard_token
    from conduit.dashboard._server import DashboardServer

    token = args.token or dashboard_token()
    with open_from_args(args, must_exist=True) as store:
        server = DashboardServer(
            store, host=args.host, port=args.port, token=token, namespace=args.namespace
        )
        shown = f"{server.url}?token=<token>" if token else server.url
        print(f"conduit dashboard of {store.url} at {shown} (Ctrl-C to stop)", flush=True)
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
