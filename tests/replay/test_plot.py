from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conduit._errors import MissingDependencyError, ValidationError
from conduit.replay._loop import load, replay, sweep
from conduit.replay._plot import plot_replay, require_matplotlib

WriteLog = Callable[..., Path]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def data(write_log: WriteLog, two_models: list[Any]) -> Any:
    return load(write_log(two_models * 30), embedding_backend="hashing")


def test_saves_the_learning_curve(data: Any, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = replay(data, algorithm="hybrid")
    assert result.policy.switch_at is not None
    path = plot_replay(result, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == PNG


def test_saves_the_sweep_panel_too(data: Any, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot_replay(
        replay(data, algorithm="ucb1"),
        tmp_path / "curve.png",
        sweep=sweep(data, algorithm="ucb1", cost_weights=[0.0, 1.0]),
    )
    assert path.read_bytes()[:8] == PNG


def test_missing_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'conduit\[plot\]'"):
        require_matplotlib()


@pytest.mark.parametrize("name", ["no/such/dir/curve.png", "curve.unknownformat"])
def test_an_unwritable_path_is_a_clean_error(data: Any, tmp_path: Path, name: str) -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ValidationError, match="cannot write the plot to"):
        plot_replay(replay(data, algorithm="ucb1"), tmp_path / name)
