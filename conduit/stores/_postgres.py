"""PostgreSQL store (psycopg 3): schema ``conduit``, numbered migrations, row-locked merges.

A push is one transaction: ``SELECT ... FOR UPDATE`` on the namespace's row, add
the delta, write it back; concurrent pushers from any number of hosts queue on
the row lock, so none overwrites another. Migrations run under an advisory lock,
so replicas starting together do not race, and an older schema is upgraded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from conduit._errors import MissingDependencyError, StoreError
from conduit.stores._base import HistoryRecord, Store
from conduit.stores._sql import (
    LATEST,
    MIGRATIONS,
    history_prune,
    history_select,
    history_upsert,
    record_select,
)

__all__ = ["PostgresStore"]

SCHEMA = "conduit"
#: Key of the advisory lock held while migrating (any constant shared by all replicas).
_MIGRATION_LOCK = 0x636F6E64


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(
            "the PostgreSQL store needs psycopg 3: pip install 'conduit[postgres]'"
        ) from exc
    return psycopg


class PostgresStore(Store):
    """State and history in PostgreSQL; one connection, reopened after a failure."""

    scheme = "postgresql"

    def __init__(
        self,
        *,
        dsn: str,
        url: str | None = None,
        namespace: str = "default",
        store_prompts: bool = False,
        connect_timeout: float = 5.0,
        migrate_to: int = LATEST,
    ) -> None:
        super().__init__(url=url or dsn, namespace=namespace, store_prompts=store_prompts)
        self._pg = _psycopg()
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._lock = threading.Lock()
        self._migrate_to = migrate_to
        self._migrated = False
        self._closed = False

    # -- connection ---------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in one transaction; a broken connection is dropped and reopened next time."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.url}: store is closed")
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._pg.connect(
                        self._dsn,
                        autocommit=True,
                        connect_timeout=max(1, round(self._connect_timeout)),
                    )
                if not self._migrated:
                    self._migrate(self._conn)
                    self._migrated = True
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except self._pg.Error as exc:
                # The connection may be dead without knowing it yet (terminated backend,
                # restarted server): drop it, the next call opens a new one.
                self._drop()
                raise StoreError(f"PostgreSQL store {self.url}: {exc}".strip()) from exc

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except self._pg.Error:  # the connection is already gone; nothing to release
            pass
        self._conn = None

    def _migrate(self, conn: Any) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            cur.execute(f"SELECT version FROM {SCHEMA}.migrations")
            done = {row[0] for row in cur.fetchall()}
            for version, name, statements in MIGRATIONS:
                if version in done or version > self._migrate_to:
                    continue
                for statement in statements:
                    cur.execute(statement.format(s=f"{SCHEMA}."))
                cur.execute(
                    f"INSERT INTO {SCHEMA}.migrations VALUES (%s, %s, %s)",
                    (version, name, time.time()),
                )

    def schema_version(self) -> int:
        with self._transaction() as cur:
            cur.execute(f"SELECT MAX(version) FROM {SCHEMA}.migrations")
            return int(cur.fetchone()[0] or 0)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    # -- primitives ---------------------------------------------------------------------
    def _read(self, namespace: str) -> str | None:
        with self._transaction() as cur:
            cur.execute(f"SELECT blob FROM {SCHEMA}.state WHERE namespace = %s", (namespace,))
            row = cur.fetchone()
        return None if row is None or not row[0] else str(row[0])

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        select = f"SELECT blob FROM {SCHEMA}.state WHERE namespace = %s FOR UPDATE"
        with self._transaction() as cur:
            cur.execute(select, (namespace,))
            row = cur.fetchone()
            if row is None:
                # Create the row (empty) first so that concurrent first pushers queue on its lock.
                cur.execute(
                    f"INSERT INTO {SCHEMA}.state (namespace, blob, revision, updated)"
                    " VALUES (%s, '', 0, 0) ON CONFLICT (namespace) DO NOTHING",
                    (namespace,),
                )
                cur.execute(select, (namespace,))
                row = cur.fetchone()
            blob = change(str(row[0]) if row[0] else None)
            cur.execute(
                f"UPDATE {SCHEMA}.state SET blob = %s, revision = revision + 1, updated = %s"
                " WHERE namespace = %s",
                (blob, time.time(), namespace),
            )

    def _delete(self, namespace: str) -> bool:
        with self._transaction() as cur:
            cur.execute(f"DELETE FROM {SCHEMA}.history WHERE namespace = %s", (namespace,))
            cur.execute(
                f"DELETE FROM {SCHEMA}.state WHERE namespace = %s AND blob <> ''", (namespace,)
            )
            found = bool(cur.rowcount)
            cur.execute(f"DELETE FROM {SCHEMA}.state WHERE namespace = %s", (namespace,))
            return found

    def _namespaces(self) -> list[str]:
        with self._transaction() as cur:
            cur.execute(f"SELECT namespace FROM {SCHEMA}.state WHERE blob <> ''")
            return [str(r[0]) for r in cur.fetchall()]

    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        with self._transaction() as cur:
            cur.executemany(
                history_upsert(f"{SCHEMA}.", "%s"), [(r.decision_id, *r.values()) for r in records]
            )

    def _prune_history(self, namespace: str, before: float | None, keep: int | None) -> int:
        by_age, by_count = history_prune(f"{SCHEMA}.", "%s")
        removed = 0
        with self._transaction() as cur:
            if before is not None:
                cur.execute(by_age, (namespace, before))
                removed += cur.rowcount
            if keep is not None:
                cur.execute(by_count, (namespace, namespace, keep - 1))
                removed += cur.rowcount
        return int(removed)

    def _read_history(self, namespace: str, limit: int) -> list[HistoryRecord]:
        with self._transaction() as cur:
            cur.execute(history_select(f"{SCHEMA}.", "%s"), (namespace, limit))
            rows = cur.fetchall()
        return [HistoryRecord.from_row(r[0], r[1:]) for r in rows]

    def _read_record(self, namespace: str, decision_id: str) -> HistoryRecord | None:
        with self._transaction() as cur:
            cur.execute(record_select(f"{SCHEMA}.", "%s"), (namespace, decision_id))
            row = cur.fetchone()
        return None if row is None else HistoryRecord.from_row(row[0], row[1:])
