"""``conduit state show|export|import|prune|reset``: inspect and move a store's learned state.

Wire into the main parser with ``add_state_commands(subparsers)`` and run the
parsed arguments with ``run_state(args)`` (the exit status). Every ``conduit``
command that uses a store takes it the same way, with :func:`add_store_arguments`
(``--store URL --namespace NS``) and :func:`open_from_args`; reading commands open
with ``must_exist=True``, so a mistyped path is an error rather than a new store.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from conduit._errors import ConduitError, StateError, ValidationError
from conduit._state import write_private
from conduit.config import choose_namespace, state_url
from conduit.stores import open_store
from conduit.stores._base import HISTORY_FIELDS, HistoryRecord, Snapshot, Store

__all__ = ["add_state_commands", "add_store_arguments", "open_from_args", "run_state"]


def add_store_arguments(p: argparse.ArgumentParser, *, deprecated_url: bool = False) -> None:
    """``--store URL`` and ``--namespace NS``, the same on every command that uses a store.

    ``deprecated_url`` also accepts ``--url``, the old spelling on ``conduit state``.
    """
    p.add_argument(
        "--store",
        metavar="URL",
        help="state store URL (default: $CONDUIT_STATE_URL or the SQLite file in your data "
        "directory)",
    )
    if deprecated_url:
        p.add_argument("--url", dest="deprecated_url", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--namespace", help="router namespace (default: the URL's, else 'default')")


def open_from_args(args: argparse.Namespace, *, must_exist: bool) -> Store:
    """The store ``--store`` (or the deprecated ``--url``) names, in ``--namespace``."""
    url: str | None = args.store
    old: str | None = getattr(args, "deprecated_url", None)
    if old is not None:
        if url is not None:
            raise ValidationError("give --store only (--url is its deprecated old name)")
        print("conduit: --url is deprecated; use --store", file=sys.stderr)
        url = old
    store = open_store(url, namespace=args.namespace, must_exist=must_exist)
    if must_exist:  # a reader with no --namespace shows the store's only router's learning
        explicit = args.namespace is not None or "namespace=" in (url or state_url())
        try:
            store.namespace = choose_namespace(
                store.namespace, store.namespaces(), explicit=explicit
            )
        except BaseException:
            store.close()
            raise
    return store


def add_state_commands(subparsers: Any) -> None:
    """Add ``state`` with its five subcommands to an ``argparse`` subparsers object."""
    state: argparse.ArgumentParser = subparsers.add_parser(
        "state", help="show, export, import, prune or reset learned state"
    )
    commands = state.add_subparsers(dest="state_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        add_store_arguments(p, deprecated_url=True)

    show = commands.add_parser("show", help="what a namespace has learned (or list namespaces)")
    common(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument(
        "--history", type=int, default=0, metavar="N", help="also the last N decisions"
    )
    show.set_defaults(func=_show)

    export = commands.add_parser("export", help="write a namespace's state to a file (or -)")
    common(export)
    export.add_argument("output", help="file to write (created 0600), or - for stdout")
    export.set_defaults(func=_export)

    imp = commands.add_parser("import", help="add a state file's learning to a namespace")
    common(imp)
    imp.add_argument("input", help="a file written by 'conduit state export', or - for stdin")
    imp.add_argument(
        "--replace",
        action="store_true",
        help="reset the namespace first instead of adding to its learning",
    )
    imp.set_defaults(func=_import)

    prune = commands.add_parser(
        "prune", help="delete old history (learned state is kept); default: the retention"
    )
    common(prune)
    prune.add_argument(
        "--days",
        type=float,
        help="delete decisions older than DAYS (default: the URL's history_days, else 30)",
    )
    prune.add_argument(
        "--keep",
        type=int,
        help="keep at most the KEEP newest decisions (default: history_max, else 200000)",
    )
    prune.set_defaults(func=_prune)

    reset = commands.add_parser("reset", help="forget a namespace's learning and history")
    common(reset)
    reset.add_argument("--yes", action="store_true", help="confirm (required)")
    reset.set_defaults(func=_reset)


def run_state(args: argparse.Namespace) -> int:
    """Run the parsed ``state`` subcommand; ConduitError propagates to the caller."""
    status: int = args.func(args)
    return status


def _open(args: argparse.Namespace, *, must_exist: bool = True) -> Store:
    return open_from_args(args, must_exist=must_exist)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        names = store.namespaces()
        snapshot = store.pull()
        history = [_record(r) for r in store.history(limit=args.history)] if args.history else []
        if args.json:
            print(
                json.dumps(
                    {
                        "store": store.url,
                        "namespaces": names,
                        "namespace": store.namespace,
                        "state": None if snapshot is None else snapshot.summary(),
                        "history": history,
                    }
                )
            )
            return 0
        print(f"{store.url}: namespaces {', '.join(names) or '(none)'}")
        if snapshot is None:
            print(f"namespace {store.namespace!r} has no learned state")
            return 0
        summary = snapshot.summary()
        print(
            f"namespace {store.namespace!r}: {summary['algorithm']} on {summary['features']} "
            f"(dim {summary['dim']}), revision {summary['revision']}, "
            f"{summary['replicas']} replica(s)"
        )
        print(
            f"  {'model':<32} {'decisions':>9} {'feedback':>8} {'quality':>8} "
            f"{'cost':>10} {'latency':>8}"
        )
        for arm, m in summary["models"].items():
            print(
                f"  {arm:<32} {m['decisions']:>9} {m['feedback']:>8} "
                f"{_fmt(m['mean_quality'], '.3f'):>8} {_fmt(m['mean_cost'], '.6f'):>10} "
                f"{_fmt(m['mean_latency'], '.3f'):>8}"
            )
        for name, t in summary["targets"].items():
            print(
                f"  target {name}: {t['decisions']} decisions, goal {_fmt(t['goal'], '.6g')}, "
                f"realised {_fmt(t['realised'], '.6g')}, cost weight {t['cost_weight']:.4g}"
            )
        for r in history:
            print(f"  {r['decision_id']} {r['model']} quality={r['quality']} cost={r['cost']}")
        return 0


def _record(record: HistoryRecord) -> dict[str, Any]:
    return {"decision_id": record.decision_id, **{n: getattr(record, n) for n in HISTORY_FIELDS}}


def _export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        snapshot = store.pull()
        if snapshot is None:
            raise StateError(f"{store.url}: namespace {store.namespace!r} has no learned state")
        text = snapshot.encode()
    if args.output == "-":
        print(text)
    else:
        _write_private(Path(args.output), text)
        print(f"exported revision {snapshot.revision} of {store.namespace!r} to {args.output}")
    return 0


def _write_private(path: Path, text: str) -> None:
    try:
        write_private(path, text)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc}") from exc


def _import(args: argparse.Namespace) -> int:
    source = args.input
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # missing, a directory, or not text at all
        raise StateError(f"cannot read {source}: {exc}") from exc
    snapshot = Snapshot.decode(text, source)
    with _open(args, must_exist=False) as store:
        if args.replace:
            store.reset()
        result = store.push(snapshot.sums, snapshot.meta)
        print(f"imported {source} into {store.namespace!r} (now revision {result.revision})")
    return 0


def _prune(args: argparse.Namespace) -> int:
    with _open(args) as store:
        removed = store.prune(days=args.days, keep=args.keep)
        print(f"pruned {removed} history record(s) of {store.namespace!r}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if not args.yes:
            print(
                f"this forgets everything {store.namespace!r} learned in {store.url}; "
                "add --yes to confirm",
                file=sys.stderr,
            )
            return 2
        found = store.reset()
        print(f"reset {store.namespace!r}" if found else f"{store.namespace!r} had no state")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``state`` commands alone (``python -m conduit.stores._cli state show``)."""
    parser = argparse.ArgumentParser(prog="conduit")
    add_state_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return run_state(args)
    except ConduitError as exc:
        print(f"conduit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
