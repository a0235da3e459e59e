"""PostgreSQL specifics: migrations, outages (our own cluster; killed connections), the hint."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conduit._errors import MissingDependencyError, StoreError
from conduit.stores import open_store
from conduit.stores._postgres import PostgresStore
from conduit.stores._sql import LATEST

from .test_contract import META, delta
from .test_sync import global_total, learn, make_router

pytestmark = pytest.mark.postgres


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_older_schema_is_upgraded_and_keeps_its_data(fresh_postgres: str) -> None:
    old = PostgresStore(dsn=fresh_postgres, migrate_to=2)
    old.push(delta(2.0), META)
    assert old.schema_version() == 2
    import psycopg

    with psycopg.connect(fresh_postgres, autocommit=True) as conn:  # a row as version 2 wrote it
        conn.execute(
            "INSERT INTO conduit.history (namespace, decision_id, time, model)"
            " VALUES ('default', 'd1', 1.0, 'm')"
        )
    old.close()
    new = open_store(fresh_postgres)
    assert isinstance(new, PostgresStore)
    assert new.schema_version() == LATEST == 4
    state = new.pull()
    assert state is not None
    np.testing.assert_allclose(state.sums["bandit"]["openai/gpt-4o"]["A"], np.eye(2) * 2.0)
    assert [r.decision_id for r in new.history(limit=5)] == ["d1"]
    new.write_history([_record("d2", prompt="now stored")])  # the column migration 3 added
    assert new.history(limit=1)[0].prompt == "now stored"
    new.close()


def test_schema_3_gains_explanations_and_kinds_and_keeps_its_rows(fresh_postgres: str) -> None:
    old = PostgresStore(dsn=fresh_postgres, migrate_to=3)
    assert old.schema_version() == 3
    import psycopg

    with psycopg.connect(fresh_postgres, autocommit=True) as conn:  # a row as version 3 wrote it
        conn.execute(
            "INSERT INTO conduit.history (namespace, decision_id, time, model, prompt)"
            " VALUES ('default', 'd1', 1.0, 'm', 'kept by opt-in')"
        )
    old.close()
    new = PostgresStore(dsn=fresh_postgres)
    assert new.schema_version() == LATEST == 4
    record = new.record("d1")
    assert record is not None and (record.prompt, record.explanation, record.kind) == (
        "kept by opt-in",
        None,
        None,
    )
    new.write_history([_record("d1", explanation="{}", kind="math")])
    record = new.record("d1")
    assert record is not None and (record.time, record.explanation, record.kind) == (
        1.0,
        "{}",
        "math",
    )
    new.close()


def _record(decision_id: str, prompt: str | None = None, **kw: str):  # type: ignore[no-untyped-def]
    from conduit.stores import HistoryRecord

    return HistoryRecord(
        decision_id=decision_id,
        namespace="default",
        time=time.time(),
        model="m",
        prompt=prompt,
        **kw,
    )


def test_replicas_starting_together_migrate_once(fresh_postgres: str) -> None:
    import threading

    stores = [open_store(fresh_postgres) for _ in range(4)]
    errors: list[BaseException] = []

    def first_use(i: int) -> None:
        try:
            stores[i].push(delta(1.0), META)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = stores[0].pull()
    assert state is not None and float(state.sums["bandit"]["openai/gpt-4o"]["n"]) == 4
    for s in stores:
        s.close()


def test_namespaces_are_parameters_not_sql(postgres_database: str) -> None:
    hostile = "x'); DROP TABLE conduit._state; --"
    store = open_store(postgres_database, namespace=hostile)
    store.push(delta(1.0), META)
    assert hostile in store.namespaces()
    assert store.reset() is True
    store.close()


def test_killed_connections_are_survived(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The outage simulated on the shared server: every connection of ours is terminated."""
    import psycopg

    from .conftest import POSTGRES_URL

    caplog.set_level(logging.INFO, logger="conduit.stores")
    url = f"{postgres_database}?namespace=killed&application_name=conduit_killed_test"
    store = open_store(f"{postgres_database}?namespace=killed")
    router = make_router(url, sync_interval=0.05)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 10, "before")
        _wait_for(lambda: global_total(store) == 10)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'conduit_killed_test'"
            )
        learn(router, 10, "after")
        _wait_for(lambda: global_total(store) == 20)
    finally:
        router.close()
    assert global_total(store) == 20
    assert sync.failures >= 1 and sync.down_since is None
    assert sum("is back after" in r.getMessage() for r in caplog.records) == 1
    store.close()


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class OwnCluster:
    """A PostgreSQL cluster of our own (initdb as the postgres user), to stop and restart."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conduit-pg-"))
        from .conftest import free_port

        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def init(self) -> None:
        shutil.chown(self.dir, user="postgres")
        initdb = _pg_bin("initdb")
        assert initdb is not None
        self._as_postgres(
            initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            pg_ctl,
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-w",
            "-l",
            str(self.dir / "log"),
            "start",
        )

    def stop(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl is not None
        self._as_postgres(pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_cluster() -> Iterator[OwnCluster]:
    from .conftest import service_missing

    if os.geteuid() != 0 or shutil.which("runuser") is None or _pg_bin("initdb") is None:
        service_missing(
            "a PostgreSQL cluster of our own (needs root, runuser, initdb)", "unavailable"
        )
    cluster = OwnCluster()
    try:
        cluster.init()
        cluster.start()
    except (subprocess.SubprocessError, OSError, LookupError) as exc:
        cluster.remove()
        service_missing("a PostgreSQL cluster of our own", exc)
    yield cluster
    with contextlib.suppress(subprocess.SubprocessError):  # already stopped by the test
        cluster.stop()
    cluster.remove()


@pytest.mark.slow
def test_postgres_outage_mid_run(own_cluster: OwnCluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="conduit.stores")
    store = open_store(own_cluster.url)
    router = make_router(own_cluster.url, sync_interval=0.05)
    sync = router.store_sync
    assert sync is not None
    try:
        learn(router, 20, "before")
        _wait_for(lambda: global_total(store) == 20)
        own_cluster.stop()
        learn(router, 30, "during")  # no request fails while the database is down
        _wait_for(lambda: sync.failures >= 3)
        own_cluster.start()
        _wait_for(lambda: sync.down_since is None)
        learn(router, 10, "after")
    finally:
        router.close()
    store.close()  # its connection died with the server; a store reports that once, then reconnects
    store = open_store(own_cluster.url)
    assert global_total(store) == 60
    assert len(store.history(limit=100)) == 60
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert sum("is back after" in r.getMessage() for r in caplog.records) == 1
    store.close()


def test_unreachable_server_is_a_store_error_with_its_cause() -> None:
    from .conftest import free_port

    store = open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(StoreError, match="PostgreSQL store") as info:
        store.pull()
    assert info.value.__cause__ is not None


def test_missing_driver_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[postgres\]'"):
        open_store("postgresql://localhost/x")
