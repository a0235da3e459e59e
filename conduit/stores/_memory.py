"""An in-process store: for tests, and for several routers in one process.

``memory://`` is private to the store object; ``memory://name`` is shared by
every store opened with that name in this process (until the process ends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from conduit.stores._base import HistoryRecord, Store

__all__ = ["MemoryStore"]


class _Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blobs: dict[str, str] = {}
        self.history: dict[str, dict[str, HistoryRecord]] = {}


_REGISTRY: dict[str, _Shared] = {}
_REGISTRY_LOCK = threading.Lock()


class MemoryStore(Store):
    """Blobs and history in a dict, guarded by one lock."""

    scheme = "memory"

    def __init__(
        self,
        *,
        url: str = "memory://",
        name: str = "",
        namespace: str = "default",
        store_prompts: bool = False,
    ) -> None:
        super().__init__(url=url, namespace=namespace, store_prompts=store_prompts)
        if name:
            with _REGISTRY_LOCK:
                self._data = _REGISTRY.setdefault(name, _Shared())
        else:
            self._data = _Shared()

    def _read(self, namespace: str) -> str | None:
        with self._data.lock:
            return self._data.blobs.get(namespace)

    def _update(self, namespace: str, change: Callable[[str | None], str]) -> None:
        with self._data.lock:
            self._data.blobs[namespace] = change(self._data.blobs.get(namespace))

    def _delete(self, namespace: str) -> bool:
        with self._data.lock:
            self._data.history.pop(namespace, None)
            return self._data.blobs.pop(namespace, None) is not None

    def _namespaces(self) -> list[str]:
        with self._data.lock:
            return list(self._data.blobs)

    def _write_history(self, records: Sequence[HistoryRecord]) -> None:
        with self._data.lock:
            for record in records:
                table = self._data.history.setdefault(record.namespace, {})
                old = table.get(record.decision_id)
                table[record.decision_id] = old.merged(record) if old is not None else record

    def _prune_history(self, namespace: str, before: float | None, keep: int | None) -> int:
        with self._data.lock:
            table = self._data.history.get(namespace, {})
            newest = sorted(table.values(), key=lambda r: r.time, reverse=True)
            gone = [r for r in newest if before is not None and r.time < before]
            if keep is not None:
                gone += [r for r in newest[keep:] if r not in gone]
            for record in gone:
                del table[record.decision_id]
        return len(gone)

    def _read_history(self, namespace: str, limit: int) -> list[HistoryRecord]:
        with self._data.lock:
            records = list(self._data.history.get(namespace, {}).values())
        records.sort(key=lambda r: r.time, reverse=True)
        return records[:limit]

    def _read_record(self, namespace: str, decision_id: str) -> HistoryRecord | None:
        with self._data.lock:
            return self._data.history.get(namespace, {}).get(decision_id)
