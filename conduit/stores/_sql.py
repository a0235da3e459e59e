"""What the SQL backends share: numbered migrations and the history upsert."""

from __future__ import annotations

from conduit.stores._base import HISTORY_FIELDS

__all__ = ["MIGRATIONS", "history_prune", "history_select", "history_upsert", "record_select"]

#: Numbered schema migrations, oldest first; ``{s}`` is the schema prefix ("" or "conduit.").
#: Never edit an applied one: append a new number. Both SQLite and PostgreSQL accept this SQL.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "state",
        (
            "CREATE TABLE {s}state (namespace TEXT PRIMARY KEY, blob TEXT NOT NULL,"
            " revision BIGINT NOT NULL, updated DOUBLE PRECISION NOT NULL)",
        ),
    ),
    (
        2,
        "history",
        (
            "CREATE TABLE {s}history (namespace TEXT NOT NULL, decision_id TEXT NOT NULL,"
            " time DOUBLE PRECISION NOT NULL, model TEXT, algorithm TEXT,"
            " propensity DOUBLE PRECISION, confidence DOUBLE PRECISION,"
            " pref_quality DOUBLE PRECISION, pref_cost DOUBLE PRECISION,"
            " pref_latency DOUBLE PRECISION, quality DOUBLE PRECISION, cost DOUBLE PRECISION,"
            " latency DOUBLE PRECISION, prompt_hash TEXT, PRIMARY KEY (namespace, decision_id))",
            "CREATE INDEX history_by_time ON {s}history (namespace, time)",
        ),
    ),
    (3, "history prompts (opt-in)", ("ALTER TABLE {s}history ADD COLUMN prompt TEXT",)),
    (
        4,
        "history explanations and query kinds",
        (
            "ALTER TABLE {s}history ADD COLUMN explanation TEXT",
            "ALTER TABLE {s}history ADD COLUMN kind TEXT",
        ),
    ),
)

LATEST = MIGRATIONS[-1][0]


def history_upsert(schema: str, placeholder: str) -> str:
    """An upsert that fills a decision's row field by field and never erases a known value."""
    columns = ("decision_id", *HISTORY_FIELDS)
    values = ", ".join([placeholder] * len(columns))
    updates = ", ".join(
        f"{c} = COALESCE(excluded.{c}, history.{c})"
        for c in HISTORY_FIELDS
        if c not in ("namespace", "time")
    )
    return (
        f"INSERT INTO {schema}history ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT (namespace, decision_id) DO UPDATE SET {updates}"
    )


def history_select(schema: str, placeholder: str) -> str:
    return (
        f"SELECT decision_id, {', '.join(HISTORY_FIELDS)} FROM {schema}history "
        f"WHERE namespace = {placeholder} ORDER BY time DESC LIMIT {placeholder}"
    )


def record_select(schema: str, placeholder: str) -> str:
    """One decision's row, by namespace and decision id."""
    return (
        f"SELECT decision_id, {', '.join(HISTORY_FIELDS)} FROM {schema}history "
        f"WHERE namespace = {placeholder} AND decision_id = {placeholder}"
    )


def history_prune(schema: str, placeholder: str) -> tuple[str, str]:
    """Two deletes: records older than a time; records beyond the N most recent.

    Parameters: (namespace, time) and (namespace, namespace, N).
    """
    return (
        f"DELETE FROM {schema}history WHERE namespace = {placeholder} AND time < {placeholder}",
        f"DELETE FROM {schema}history WHERE namespace = {placeholder} AND time < "
        f"(SELECT time FROM {schema}history WHERE namespace = {placeholder} "
        f"ORDER BY time DESC LIMIT 1 OFFSET {placeholder})",
    )
