"""Redis store (redis-py, synchronous client): optimistic WATCH/MULTI merges.

All store I/O happens in the router's background sync thread, never on the event
loop, so the blocking client is the simple and right one: one code path serves
both the sync and the async router API, and no event loop is needed in the
worker. A push WATCHes the namespace's key, reads, adds the delta and writes in
MULTI/EXEC; if another replica wrote in between, EXEC fails and the push is
redone on the new value, so no writer's learning is overwritten.

Keys (``prefix`` from ``?prefix=``, default ``conduit``): ``{prefix}:state:{ns}``
(the state blob), ``{prefix}:namespaces`` (a set), ``{prefix}:history:{ns}`` (a
sorted set of decision ids by time) and ``{prefix}:decision:{ns}:{id}`` (hashes).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from conduit._errors import MissingDependencyError, StoreError
from conduit.stores._base import HISTORY_FIELDS, HistoryRecord, Store

__all__ = ["RedisStore"]

_TEXT_FIELDS = {"namespace", "model", "algorithm", "prompt_hash", "prompt", "explanation", "kind"}


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            "the Redis store needs redis-py: pip install 'conduit[redis]'"
        ) from exc
    return redis


class RedisStore(Store):
    """State and history in Redis under one key prefix."""

    scheme = "redis"

    def __init__(
        self,
        *,
        redis_url: str,
        url: str | None = None,
        namespace: str = "default",
        store_prompts: bool = False,
        prefix: str = "conduit",
        timeout: float = 5.0,
        max_retries: int = 100,
    ) -> None:
        super().__init__(url=url or redis_url, namespace=namespace, store_prompts=store_prompts)
        self._redis = _redis()
        self.prefix = prefix
        self.max_retries = max_retries
        try:
            self._client = self._redis.Redis.from_url(
                redis_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0),
            )
        except (ValueError, self._redis.RedisError) as exc:
            raise StoreError(f"Redis store {self.url}: {exc}") from exc

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._redis.RedisError as exc:
            raise StoreError(f"Redis store {self.url}: {exc}") from exc

    def close(self) -> None:
        self._call(self._client.close)

    def _read(self, namespace: str) -> str | None:
        value = self._call(lambda: self._client.get(self._key("state", namespace)))
        return None if value is None else bytes(value).decode("utf-8")

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        key = self._key("state", namespace)
        watch_error = self._redis.WatchError

        def attempt() -> None:
            with self._client.pipeline() as pipe:
                for tries in range(self.max_retries):
                    try:
                        pipe.watch(key)
                        current = pipe.get(key)
                        blob = change(None if current is None else bytes(current).decode("utf-8"))
                        pipe.multi()
                        pipe.set(key, blob)
                        pipe.sadd(self._key("namespaces"), namespace)
                        pipe.execute()
                        return
                    except watch_error:
                        # Another replica wrote first: redo on its value after a short random pause.
                        time.sleep(random.uniform(0, 0.002 * min(tries + 1, 10)))
            raise StoreError(
                f"Redis store {self.url}: {self.max_retries} conflicting writes in a row"
            )

        self._call(attempt)

    def _delete(self, namespace: str) -> bool:
        def delete() -> bool:
            index = self._key("history", namespace)
            ids = [bytes(i).decode() for i in self._client.zrange(index, 0, -1)]
            pipe = self._client.pipeline()
            for decision_id in ids:
                pipe.delete(self._key("decision", namespace, decision_id))
            pipe.delete(index)
            pipe.srem(self._key("namespaces"), namespace)
            pipe.delete(self._key("state", namespace))
            return bool(pipe.execute()[-1])

        result: bool = self._call(delete)
        return result

    def _namespaces(self) -> list[str]:
        members = self._call(lambda: self._client.smembers(self._key("namespaces")))
        return [bytes(m).decode("utf-8") for m in members]

    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            for r in records:
                key = self._key("decision", r.namespace, r.decision_id)
                fields = {
                    n: str(getattr(r, n))
                    for n in HISTORY_FIELDS
                    if n != "time" and getattr(r, n) is not None
                }
                pipe.hsetnx(key, "time", repr(r.time))
                pipe.hset(key, mapping=fields)
                pipe.zadd(self._key("history", r.namespace), {r.decision_id: r.time}, nx=True)
            pipe.execute()

        self._call(write)

    def _prune_history(self, namespace: str, before: float | None, keep: int | None) -> int:
        index = self._key("history", namespace)

        def prune() -> int:
            gone: set[bytes] = set()
            if before is not None:
                gone.update(self._client.zrangebyscore(index, "-inf", f"({before!r}"))
            if keep is not None:
                gone.update(self._client.zrange(index, 0, -(keep + 1)))
            if not gone:
                return 0
            pipe = self._client.pipeline(transaction=False)
            for decision_id in gone:
                pipe.delete(self._key("decision", namespace, bytes(decision_id).decode()))
            pipe.zrem(index, *gone)
            pipe.execute()
            return len(gone)

        removed: int = self._call(prune)
        return removed

    def _read_history(self, namespace: str, limit: int) -> list[HistoryRecord]:
        if limit == 0:
            return []

        def read() -> list[HistoryRecord]:
            ids = [
                bytes(i).decode()
                for i in self._client.zrevrange(self._key("history", namespace), 0, limit - 1)
            ]
            pipe = self._client.pipeline(transaction=False)
            for decision_id in ids:
                pipe.hgetall(self._key("decision", namespace, decision_id))
            return [
                _record(namespace, decision_id, raw)
                for decision_id, raw in zip(ids, pipe.execute(), strict=True)
            ]

        result: list[HistoryRecord] = self._call(read)
        return result

    def _read_record(self, namespace: str, decision_id: str) -> HistoryRecord | None:
        key = self._key("decision", namespace, decision_id)
        raw = self._call(lambda: self._client.hgetall(key))
        return _record(namespace, decision_id, raw) if raw else None


def _record(namespace: str, decision_id: str, raw: dict[Any, Any]) -> HistoryRecord:
    """A history record from a decision's hash (numbers stored as text)."""
    values = {bytes(k).decode(): bytes(v).decode() for k, v in raw.items()}
    row = [
        values.get(n) if n in _TEXT_FIELDS or values.get(n) is None else float(values[n])
        for n in HISTORY_FIELDS
    ]
    row[0] = namespace
    return HistoryRecord.from_row(decision_id, row)
