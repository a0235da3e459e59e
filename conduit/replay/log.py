"""Routing logs: per query, every model's real quality and cost (gzip'd or plain JSONL).

One JSON object per line::

    {"id": "...", "prompt": "...", "task": "...",
     "outcomes": {"model-a": {"quality": 1.0, "cost": 0.00031}, ...}}

``quality`` is in [0, 1]; ``cost`` is USD or null where unknown. Every line must
carry an outcome for the same set of models. A malformed line raises
:class:`~conduit._errors.LogFormatError` naming the file and line number.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from conduit import _validate
from conduit._errors import LogFormatError, ValidationError

__all__ = ["DEFAULT_LOG", "LogRecord", "Outcome", "iter_log", "read_log", "shipped_log"]

#: The log that ships inside the package (RouterBench ARC + Winogrande, 11 models).
DEFAULT_LOG = "routerbench-arc-winogrande.jsonl.gz"


@dataclass(frozen=True, slots=True)
class Outcome:
    quality: float
    cost: float | None


@dataclass(frozen=True, slots=True)
class LogRecord:
    id: str
    prompt: str
    task: str
    outcomes: dict[str, Outcome]


def shipped_log(name: str = DEFAULT_LOG) -> Path:
    """Path of a log shipped in ``conduit/data`` (see its NOTICE for attribution)."""
    path = Path(str(resources.files("conduit").joinpath("data", name)))
    if not path.is_file():
        raise LogFormatError(f"no shipped log named {name!r}")
    return path


def _open(path: Path) -> IO[bytes]:
    """The log's bytes, gunzipped if it is gzip'd; lines are decoded one by one, so that
    a line that is not UTF-8 is named by its number."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile is an IO[bytes]
    return path.open("rb")


def _outcome(where: str, model: object, value: object) -> Outcome:
    if not isinstance(model, str) or not model:
        raise LogFormatError(f"{where}: model names must be non-empty strings")
    try:
        model.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: no store can keep it
        raise LogFormatError(
            f"{where}: model name {model!r} is not valid Unicode text (a lone surrogate)"
        ) from None
    if not isinstance(value, dict) or "quality" not in value:
        raise LogFormatError(f"{where}: outcome of {model!r} must be an object with 'quality'")
    quality, cost = value["quality"], value.get("cost")
    quality = _validate.number(
        f"{where}: quality of {model!r}",
        quality,
        low=0.0,
        high=1.0,
        what="a number in [0, 1]",
        error=LogFormatError,
    )
    if cost is not None:
        cost = _validate.number(
            f"{where}: cost of {model!r}",
            cost,
            low=0.0,
            what="a number >= 0 or null",
            error=LogFormatError,
        )
    return Outcome(quality, cost)


def iter_log(path: str | Path) -> Iterator[LogRecord]:
    """Stream the records of a log, validating each line."""
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"{path}: no such file")
    models: tuple[str, ...] | None = None
    number = 0
    try:
        with _open(path) as fh:
            for number, raw in enumerate(fh, start=1):
                where = f"{path}:{number}"
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # -sig: a BOM
                except UnicodeDecodeError as exc:
                    raise LogFormatError(f"{where}: not UTF-8 text ({exc.reason})") from None
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise LogFormatError(f"{where}: not valid JSON ({exc})") from None
                except RecursionError:
                    raise LogFormatError(f"{where}: JSON nested too deeply") from None
                if not isinstance(row, dict):
                    raise LogFormatError(f"{where}: each line must be a JSON object")
                prompt, outcomes = row.get("prompt"), row.get("outcomes")
                if not isinstance(prompt, str) or not prompt.strip():
                    raise LogFormatError(f"{where}: 'prompt' must be a non-empty string")
                if not isinstance(outcomes, dict) or not outcomes:
                    raise LogFormatError(f"{where}: 'outcomes' must be a non-empty object")
                parsed = {m: _outcome(where, m, v) for m, v in outcomes.items()}
                names = tuple(sorted(parsed))
                if models is None:
                    models = names
                elif names != models:
                    raise LogFormatError(
                        f"{where}: outcomes name models {list(names)}, earlier lines {list(models)}"
                    )
                yield LogRecord(
                    id=str(row.get("id", number)),
                    prompt=prompt,
                    task=str(row.get("task", "")),
                    outcomes=parsed,
                )
    except (OSError, EOFError, zlib.error) as exc:  # e.g. a truncated gzip, after line `number`
        where = f"{path}:{number + 1}" if number else str(path)
        raise LogFormatError(f"{where}: cannot read ({exc})") from exc


def read_log(path: str | Path, limit: int | None = None) -> list[LogRecord]:
    """All records (or the first ``limit``) of a log; an empty log is an error."""
    if limit is not None:
        _validate.integer("limit", limit, low=0, strict_low=True, error=ValidationError)
    records: list[LogRecord] = []
    for record in iter_log(path):
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise LogFormatError(f"{path}: the log holds no records")
    return records
