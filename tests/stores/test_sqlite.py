"""SQLite specifics: file mode, kill -9 mid-write, a file that is not a store, migrations."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conduit._errors import StateError
from conduit.config import STATE_URL_ENV, default_state_url
from conduit.stores import HistoryRecord, open_store
from conduit.stores._sql import LATEST
from conduit.stores._sqlite import SQLiteStore

from .test_contract import META, delta


def test_the_file_is_private_to_the_user(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "state.db"
    store = open_store(f"sqlite:///{path}")
    store.push(delta(1.0), META)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for extra in path.parent.glob("state.db-*"):  # WAL and shared-memory files
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600


def test_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db")
    absolute = open_store(f"sqlite:///{tmp_path / 'abs.db'}")
    assert isinstance(relative, SQLiteStore) and isinstance(absolute, SQLiteStore)
    assert relative.path == Path("rel.db") and (tmp_path / "rel.db").exists()
    assert absolute.path == tmp_path / "abs.db"


def test_the_default_is_a_file_in_the_data_dir_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_state_url() == f"sqlite:///{tmp_path / 'xdg' / 'conduit' / 'state.db'}"
    store = open_store()
    assert (
        isinstance(store, SQLiteStore) and store.path == tmp_path / "xdg" / "conduit" / "state.db"
    )
    monkeypatch.setenv(STATE_URL_ENV, "memory://from-env?namespace=env")
    assert open_store().namespace == "env"


def test_a_file_that_is_not_a_store_is_refused_and_left_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    junk = b"this is not a database, it is someone's notes\n" * 200
    path.write_bytes(junk)
    with pytest.raises(StateError, match=r"not an SQLite database \(left in place"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == junk


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from conduit.stores import open_store
    from conduit.stores._base import Meta
    store = open_store(sys.argv[1])
    meta = Meta(algorithm="linucb", features="hashing:64", dim=64)
    arms = [f"model-{i}" for i in range(11)]
    one = {"bandit": {a: {"A": np.eye(64), "b": np.ones(64), "n": np.array(1.0)} for a in arms},
           "outcomes": {}}
    pushed = 0
    while True:
        store.push(one, meta)
        pushed += 1
        print(pushed, flush=True)
""")


def _kill_writer_midway(url: str, pause: float) -> int:
    """Start the writer, let it commit some pushes, SIGKILL it; how many it saw committed."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, url], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        last = 0
        deadline = time.monotonic() + 60
        while last < 10:
            assert time.monotonic() < deadline, "the writer made no progress"
            last = int(proc.stdout.readline())
        time.sleep(pause)  # land somewhere inside a later write
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        rest = proc.stdout.read().split()
    return int(rest[-1]) if rest else last


@pytest.mark.slow
def test_kill_9_during_writes_leaves_a_loadable_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    before = 0.0
    for pause in (0.004, 0.011, 0.023):
        acknowledged = _kill_writer_midway(url, pause)
        state = open_store(url).pull()  # decodes: checksum and version intact
        assert state is not None
        n = float(state.sums["bandit"]["model-0"]["n"])
        # Every acknowledged push is there; at most the one in flight is also there.
        assert before + acknowledged <= n <= before + acknowledged + 1
        np.testing.assert_allclose(state.sums["bandit"]["model-10"]["A"], np.eye(64) * n)
        before = n


def test_an_older_schema_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = SQLiteStore(path=path, migrate_to=2)
    old.push(delta(3.0), META)
    with sqlite3.connect(path) as conn:  # a row as version 2 wrote it (no prompt column)
        conn.execute(
            "INSERT INTO history (namespace, decision_id, time, model)"
            " VALUES ('default', 'd1', 1.0, 'm')"
        )
    assert old.schema_version() == 2
    new = SQLiteStore(path=path)
    assert new.schema_version() == LATEST == 4
    state = new.pull()
    assert state is not None and state.revision == 1
    np.testing.assert_allclose(state.sums["bandit"]["openai/gpt-4o"]["A"], np.eye(2) * 3.0)
    assert [r.model for r in new.history(limit=5)] == ["m"]


def test_schema_3_gains_explanations_and_kinds_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = SQLiteStore(path=path, migrate_to=3)
    with sqlite3.connect(path) as conn:  # a row as version 3 wrote it
        conn.execute(
            "INSERT INTO history (namespace, decision_id, time, model, quality, prompt)"
            " VALUES ('default', 'd1', 1.0, 'm', 0.5, 'kept by opt-in')"
        )
    assert old.schema_version() == 3
    old.close()
    new = SQLiteStore(path=path)
    assert new.schema_version() == LATEST == 4
    record = new.record("d1")
    assert record is not None
    assert (record.model, record.quality, record.prompt) == ("m", 0.5, "kept by opt-in")
    assert (record.explanation, record.kind) == (None, None)
    new.write_history([HistoryRecord("d1", "default", 9.0, explanation="{}", kind="code")])
    record = new.record("d1")
    assert record is not None and (record.time, record.explanation, record.kind) == (
        1.0,
        "{}",
        "code",
    )
