"""Sparse, noisy quality feedback in the replay loop (``Labels``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conduit import ConfigurationError, Router
from conduit._types import Preferences
from conduit.cli import main
from conduit.replay._loop import ALL_LABELS, Labels, _replay_once, _run, load

from .conftest import THREE_MODELS


@pytest.fixture
def data(write_log: Callable[..., Path]) -> object:
    return load(write_log(THREE_MODELS * 25), embedding_backend="hashing")


def test_the_rate_of_decisions_is_labelled(data: object) -> None:
    prefs = Preferences.of("balanced")
    for rate in (0.0, 0.2, 1.0):
        trace = _replay_once(data, "ucb1", prefs, 0, None, labels=Labels(rate=rate, noise=0.1))  # type: ignore[arg-type]
        assert abs(trace.labelled - rate * 100) <= 1
    assert _replay_once(data, "ucb1", prefs, 0, None).labelled == 100  # type: ignore[arg-type]


def test_no_labels_learns_no_quality_and_full_noise_learns_the_opposite(data: object) -> None:
    prefs = Preferences.of("balanced")
    order = np.arange(100)
    silent = Router(["big", "mid", "small"], bandit_algorithm="ucb1", seed=0,
                    extractor=data.extractor)  # type: ignore[attr-defined]  # fmt: skip
    _run(silent, data, order, prefs, labels=Labels(rate=0.0))  # type: ignore[arg-type]
    assert silent.stats().total_feedback == 0
    assert silent.stats().total_cost > 0  # cost is always learned
    # one arm, so both routers make the same choices and only the labels differ
    exact = Router(["small"], bandit_algorithm="ucb1", seed=0, extractor=data.extractor)  # type: ignore[attr-defined]
    flipped = Router(["small"], bandit_algorithm="ucb1", seed=0, extractor=data.extractor)  # type: ignore[attr-defined]
    _run(exact, data, order, prefs)  # type: ignore[arg-type]
    _run(flipped, data, order, prefs, labels=Labels(rate=1.0, noise=1.0))  # type: ignore[arg-type]
    first = exact.stats().models["small"]
    assert first.mean_quality is not None
    assert flipped.stats().models["small"].mean_quality == pytest.approx(1 - first.mean_quality)


@pytest.mark.parametrize("kwargs", [{"rate": 1.5}, {"noise": -0.1}, {"rate": True}])
def test_bad_labels_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="feedback"):
        Labels(**kwargs)  # type: ignore[arg-type]


def test_all_labels_is_the_default() -> None:
    assert Labels() == ALL_LABELS


def test_replay_command_takes_the_feedback_flags(
    write_log: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_log(THREE_MODELS * 10)
    argv = ["replay", "--data", str(path), "--embedding-backend", "hashing", "-q",
            "--feedback-rate", "0.2", "--feedback-noise", "0.15",
            "--feedback-sampling", "uncertain"]  # fmt: skip
    assert main(argv) == 0
    assert "quality feedback on 20% of decisions (uncertain), 15% of labels flipped" in (
        capsys.readouterr().out
    )
    assert main([*argv[:-6], "--feedback-rate", "2"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
