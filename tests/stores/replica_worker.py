"""One replica of the multi-process tests: routes its share of the shipped log through a store.

Run as ``python replica_worker.py URL SHARD SHARDS LIMIT INTERVAL``; prints one JSON
line with what it routed and learned. Each record's model is forced (by a hash of
its id, through ``allowed_models``), so the summed learning does not depend on
how the records were split between replicas.
"""

from __future__ import annotations

import json
import sys
import time
import zlib

from conduit import Constraints, Router
from conduit.replay.log import LogRecord, read_log, shipped_log


def forced_model(record: LogRecord, models: list[str]) -> str:
    return models[zlib.crc32(record.id.encode()) % len(models)]


def make_router(models: list[str], **kwargs: object) -> Router:
    router = Router(
        models, bandit_algorithm="linucb", embedding_backend="hashing", seed=0, **kwargs
    )  # type: ignore[arg-type]
    return router.start()


def route_all(router: Router, records: list[LogRecord], pause: float = 0.0) -> int:
    models = list(router.models)
    for record in records:
        model = forced_model(record, models)
        only = Constraints(allowed_models=frozenset({model}))
        decision = router.route_sync(record.prompt, constraints=only)
        outcome = record.outcomes[model]
        router.update_sync(
            decision.decision_id,
            quality=outcome.quality,
            cost=outcome.cost or 0.0,
            latency=0.1 + len(record.prompt) / 10_000,
        )
        if pause:
            time.sleep(pause)
    return len(records)


def main() -> None:
    url, shard, shards, limit, interval = sys.argv[1:6]
    records = read_log(shipped_log(), limit=int(limit))
    mine = records[int(shard) :: int(shards)]
    router = make_router(list(records[0].outcomes), state_store=url, sync_interval=float(interval))
    routed = route_all(router, mine, pause=0.002)
    sync = router.store_sync
    router.close()
    print(
        json.dumps(
            {
                "routed": routed,
                "syncs": sync.syncs if sync else 0,
                "failures": sync.failures if sync else 0,
            }
        )
    )


if __name__ == "__main__":
    main()
