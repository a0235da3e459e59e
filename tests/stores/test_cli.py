"""``conduit state show|export|import|reset`` on an SQLite store."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from conduit.stores import open_store
from conduit.stores._cli import main

from .test_contract import META, delta
from .test_sync import learn, make_router


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    router = make_router(url)
    learn(router, 9)
    router.close()
    return url


def test_show_lists_models_and_counts(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "show", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "linucb on hashing" in out and "namespaces default" in out and "openai/gpt-4o" in out
    assert main(["state", "show", "--url", url, "--json", "--history", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sum(m["decisions"] for m in shown["state"]["models"].values()) == 9
    assert len(shown["history"]) == 3 and shown["history"][0]["prompt"] is None


def test_export_import_and_reset(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported.json"
    assert main(["state", "export", "--url", url, str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["state", "import", "--url", other, str(out)]) == 0
    assert main(["state", "import", "--url", other, str(out)]) == 0  # adds: now twice the learning
    state = open_store(other).pull()
    assert state is not None
    assert sum(float(s["decisions"]) for s in state.sums["outcomes"].values()) == 18
    assert main(["state", "import", "--url", other, "--replace", str(out)]) == 0
    state = open_store(other).pull()
    assert state is not None
    assert sum(float(s["decisions"]) for s in state.sums["outcomes"].values()) == 9
    assert main(["state", "reset", "--url", other]) == 2  # needs --yes
    assert main(["state", "reset", "--url", other, "--yes"]) == 0
    assert open_store(other).pull() is None


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["state", "import", "--url", "memory://", "{missing}"], "cannot read"),
        (["state", "import", "--url", "memory://", "{junk}"], "not valid JSON"),
        (["state", "export", "--url", "memory://", "-"], "no learned state"),
    ],
)
def test_errors_are_one_line_and_a_status(
    argv: list[str], pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk").write_text("{nope")
    argv = [a.format(missing=tmp_path / "none", junk=tmp_path / "junk") for a in argv]
    assert main(argv) == 2
    assert pattern in capsys.readouterr().err


def test_importing_a_foreign_router_state_is_refused(tmp_path: Path, url: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.push(delta(1.0), META)  # linucb on 2 dimensions, unlike the exported one
    out = tmp_path / "e.json"
    assert main(["state", "export", "--url", url, str(out)]) == 0
    assert main(["state", "import", "--url", f"sqlite:///{tmp_path / 'x.db'}", str(out)]) == 2
