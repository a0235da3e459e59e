"""State as versioned, checksummed JSON with arrays as (dtype, shape, data); never pickle."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from conduit._errors import StateError

__all__ = [
    "FORMAT",
    "VERSION",
    "decode",
    "encode",
    "make_private_dirs",
    "read_state",
    "write_private",
    "write_state",
]

FORMAT = "conduit-state"
VERSION = 1
_ARRAY = "__ndarray__"


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError("a state array holds NaN or infinity")
        # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
        return {
            _ARRAY: {
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "data": base64.b64encode(value.tobytes(order="C")).decode("ascii"),
            }
        }
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            spec = value[_ARRAY]
            dtype = np.dtype(spec["dtype"])
            if dtype.kind not in "fiub":
                raise StateError(f"state array has unsupported dtype {dtype}")
            data = base64.b64decode(spec["data"], validate=True)
            array = np.frombuffer(data, dtype=dtype).reshape(spec["shape"]).copy()
            if dtype.kind == "f" and not np.isfinite(array).all():
                raise StateError("state array holds NaN or infinity")
            return array
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _checksum(payload_text: str) -> str:
    return hashlib.sha256(payload_text.encode("utf-8")).hexdigest()


def encode(payload: dict[str, Any]) -> str:
    """JSON text of ``payload`` with its format, version and sha256.

    NaN and infinities are refused (:class:`StateError`), in numbers and arrays
    alike: learned statistics holding one are already broken.
    """
    try:
        body = json.dumps(_to_json(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateError(f"state cannot be encoded: {exc}") from exc
    envelope = {
        "format": FORMAT,
        "version": VERSION,
        "sha256": _checksum(body),
        "payload": json.loads(body),
    }
    return json.dumps(
        envelope,
        sort_keys=True,
        separators=(",", ":"),
    )


def decode(text: str | bytes) -> dict[str, Any]:
    """The payload of :func:`encode`'s text; :class:`StateError` if it is not intact."""
    try:
        outer = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a hostile file can nest deeper than the parser recurses
        raise StateError("state is not a Conduit state: JSON nested too deeply") from exc
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise StateError("not a Conduit state (its 'format' is missing or foreign)")
    version = outer.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise StateError(f"state version {version!r} is not supported (expected {VERSION})")
    payload = outer.get("payload")
    if not isinstance(payload, dict):
        raise StateError("state has no payload")
    try:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN or Infinity, which encode never writes
        raise StateError("state checksum does not match: it holds non-finite numbers") from exc
    except RecursionError as exc:
        raise StateError("state is not a Conduit state: JSON nested too deeply") from exc
    if _checksum(body) != outer.get("sha256"):
        raise StateError("state checksum does not match: the file is corrupt or was edited")
    try:
        result: dict[str, Any] = _from_json(payload)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise StateError(f"state holds a malformed array: {exc}") from exc
    return result


def make_private_dirs(directory: str | Path) -> None:
    """Create ``directory`` and any missing parents, each 0700 whatever the umask (another
    local user must not be able to swap a state file in a directory Conduit made)."""
    directory = Path(directory)
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: leave its mode alone
            continue
        os.chmod(created, 0o700)  # mkdir's mode is narrowed by the umask, never widened


def write_private(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the user only (0600) whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_state(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename), private to the user (0600); missing
    parent directories are created 0700."""
    path = Path(path)
    make_private_dirs(path.parent)
    text = encode(payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable: without this a crash can bring back the old file.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state(path: str | Path) -> dict[str, Any]:
    """The payload :func:`write_state` wrote; :class:`StateError` if unreadable or not intact."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read state {path}: {exc}") from exc
    try:
        return decode(text)
    except StateError as exc:
        raise StateError(f"{path}: {exc}") from exc
