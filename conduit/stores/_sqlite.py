"""The embedded store: one SQLite file (WAL), safe across threads and processes.

A push is one ``BEGIN IMMEDIATE`` transaction (read, add, write), so concurrent
writers on one machine serialise on SQLite's write lock and a process killed
mid-write leaves the last committed state. The file is created 0600.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from conduit._errors import StateError, StoreError
from conduit._state import make_private_dirs
from conduit.stores._base import HistoryRecord, Store
from conduit.stores._sql import (
    LATEST,
    MIGRATIONS,
    history_prune,
    history_select,
    history_upsert,
    record_select,
)

__all__ = ["SQLiteStore"]


class SQLiteStore(Store):
    """State and history in one SQLite file, migrated to the latest schema on open."""

    scheme = "sqlite"

    def __init__(
        self,
        *,
        path: str | Path,
        url: str | None = None,
        namespace: str = "default",
        store_prompts: bool = False,
        timeout: float = 30.0,
        migrate_to: int = LATEST,
    ) -> None:
        self.path = Path(path).expanduser()
        super().__init__(
            url=url or f"sqlite:///{self.path}", namespace=namespace, store_prompts=store_prompts
        )
        self.timeout = float(timeout)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            make_private_dirs(self.path.parent)
            if not self.path.exists():
                # Private before SQLite writes a byte; SQLite gives its -wal and -shm files
                # the database file's mode. fchmod: the umask cannot widen or narrow it.
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot create SQLite store {self.path}: {exc}") from exc
        with self._transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied REAL NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM migrations")}
            for version, name, statements in MIGRATIONS:
                if version in done or version > migrate_to:
                    continue
                for statement in statements:
                    conn.execute(statement.format(s=""))
                conn.execute(
                    "INSERT INTO migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
        with self._connect() as conn:
            self._call(conn.execute, "PRAGMA journal_mode=WAL")

    def _call(self, fn: Callable[..., object], *args: object) -> object:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError | StateError:
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            return StateError(
                f"{self.path} is not an SQLite database (left in place for inspection): {exc}"
            )
        return StoreError(f"SQLite store {self.path}: {exc}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, kept open: closing the last one checkpoints the WAL,
        which would cost tens of milliseconds per sync."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._conns_lock:
                if self._closed:
                    raise StoreError(f"SQLite store {self.path} is closed")
                try:
                    conn = sqlite3.connect(
                        self.path,
                        timeout=self.timeout,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                except sqlite3.Error as exc:
                    raise self._error(exc) from exc
                try:
                    # WAL + NORMAL: a commit survives the process being killed (not a power
                    # cut), the guarantee a sync interval needs, without an fsync per sync.
                    conn.execute("PRAGMA synchronous=NORMAL")
                except sqlite3.Error as exc:
                    conn.close()
                    raise self._error(exc) from exc
                self._conns.append(conn)
            self._local.conn = conn
        yield conn

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._error(exc) from exc
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT MAX(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    def _read(self, namespace: str) -> str | None:
        with self._connect() as conn:
            cur = self._call(
                conn.execute, "SELECT blob FROM state WHERE namespace = ?", (namespace,)
            )
            row = cur.fetchone()  # type: ignore[attr-defined]
        return None if row is None else str(row[0])

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT blob FROM state WHERE namespace = ?", (namespace,)
            ).fetchone()
            blob = change(None if row is None else str(row[0]))
            conn.execute(
                "INSERT INTO state (namespace, blob, revision, updated) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (namespace) DO UPDATE SET blob = excluded.blob,"
                " revision = state.revision + 1, updated = excluded.updated",
                (namespace, blob, time.time()),
            )

    def _delete(self, namespace: str) -> bool:
        with self._transaction() as conn:
            conn.execute("DELETE FROM history WHERE namespace = ?", (namespace,))
            return conn.execute("DELETE FROM state WHERE namespace = ?", (namespace,)).rowcount > 0

    def _namespaces(self) -> list[str]:
        with self._connect() as conn:
            cur = self._call(conn.execute, "SELECT namespace FROM state")
            return [str(r[0]) for r in cur.fetchall()]  # type: ignore[attr-defined]

    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                history_upsert("", "?"), [(r.decision_id, *r.values()) for r in records]
            )

    def _prune_history(self, namespace: str, before: float | None, keep: int | None) -> int:
        by_age, by_count = history_prune("", "?")
        removed = 0
        with self._transaction() as conn:
            if before is not None:
                removed += conn.execute(by_age, (namespace, before)).rowcount
            if keep is not None:
                removed += conn.execute(by_count, (namespace, namespace, keep - 1)).rowcount
        return removed

    def _read_history(self, namespace: str, limit: int) -> list[HistoryRecord]:
        with self._connect() as conn:
            cur = self._call(conn.execute, history_select("", "?"), (namespace, limit))
            rows = cur.fetchall()  # type: ignore[attr-defined]
        return [HistoryRecord.from_row(r[0], r[1:]) for r in rows]

    def _read_record(self, namespace: str, decision_id: str) -> HistoryRecord | None:
        with self._connect() as conn:
            cur = self._call(conn.execute, record_select("", "?"), (namespace, decision_id))
            row = cur.fetchone()  # type: ignore[attr-defined]
        return None if row is None else HistoryRecord.from_row(row[0], row[1:])
