"""A store filled by a real replay of the shipped RouterBench log, shared by the dashboard tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conduit.replay import ReplayResult, load, replay
from conduit.stores import Store, open_store

#: Queries of the shipped log replayed into the store, once per cost preference below.
ROWS = 300


@dataclass(frozen=True)
class Filled:
    url: str
    results: dict[str, ReplayResult]
    """preset -> the replay that wrote it (in this order, into one namespace)."""


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """An SQLite store holding two replays of the shipped log: ``balanced``, then ``cost``."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'replayed.db'}"
    data = load(limit=ROWS, embedding_backend="hashing")
    results = {
        preset: replay(data, preference=preset, seed=seed, store=url)
        for seed, preset in enumerate(("balanced", "cost"))
    }
    return Filled(url=url, results=results)


@pytest.fixture
def store(filled: Filled) -> Iterator[Store]:
    opened = open_store(filled.url)
    yield opened
    opened.close()
