"""Computed features of a log, kept on disk so a second replay of the same log embeds nothing.

One ``.npy`` file (float64, ``allow_pickle=False``) per log content, extractor and limit,
under the user cache directory, written atomically with mode 0600. A file that cannot be
read or does not fit is ignored with a warning and rebuilt: the cache never fails a replay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from conduit.engines.bandits._base import FloatArray

__all__ = ["cache_key", "default_dir", "log_digest", "read_features", "write_features"]

logger = logging.getLogger("conduit.replay")

#: Bump when the layout of what is cached changes, so old files are never read.
FORMAT = 1


def default_dir() -> Path:
    """``<user cache dir>/conduit/features`` (platformdirs)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("conduit", appauthor=False)) / "features"


def log_digest(path: Path) -> str:
    """sha256 of the log file's bytes: an edited log gets new features."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cache_key(digest: str, extractor: str, max_chars: int, limit: int | None) -> str:
    """The file stem for a log's features under one extractor (backend, model, projection)."""
    parts = f"v{FORMAT}|{digest}|{extractor}|{max_chars}|{limit}"
    return hashlib.sha256(parts.encode()).hexdigest()[:32]


def read_features(path: Path, shape: tuple[int, int]) -> FloatArray | None:
    """The cached matrix, or None (with a warning when a file is there but unusable)."""
    if not path.is_file():
        return None
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("Ignoring the feature cache file %s (%s); rebuilding it", path, exc)
        return None
    if matrix.dtype != np.float64 or matrix.shape != shape or not np.isfinite(matrix).all():
        logger.warning(
            "Ignoring the feature cache file %s (%s %s, expected float64 %s); rebuilding it",
            path,
            matrix.dtype,
            matrix.shape,
            shape,
        )
        return None
    features: FloatArray = matrix
    return features


def write_features(path: Path, matrix: FloatArray) -> None:
    """Write atomically with mode 0600; a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:  # mkstemp creates the file 0600
                np.save(fh, np.ascontiguousarray(matrix, dtype=np.float64), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("Could not write the feature cache file %s (%s)", path, exc)
