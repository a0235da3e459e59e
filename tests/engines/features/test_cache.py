"""FeatureCache: bounded LRU, counters, read-only values, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from conduit._errors import ConfigurationError
from conduit.engines.features._cache import FeatureCache, text_key


def test_keeps_at_most_maxsize_evicting_the_least_recently_used() -> None:
    cache = FeatureCache(maxsize=3)
    for key in "abcd":
        cache.put(key, np.full(2, ord(key), dtype=float))
    assert len(cache) == 3
    assert cache.get("a") is None
    assert cache.get("b") is not None  # b is now the most recent
    cache.put("e", np.zeros(2))
    assert cache.get("c") is None
    assert [k for k in "bde" if cache.get(k) is not None] == ["b", "d", "e"]


def test_put_of_a_known_key_replaces_and_refreshes_it() -> None:
    cache = FeatureCache(maxsize=2)
    cache.put("a", np.zeros(1))
    cache.put("b", np.zeros(1))
    cache.put("a", np.ones(1))
    cache.put("c", np.zeros(1))
    value = cache.get("a")
    assert value is not None and value[0] == 1.0
    assert cache.get("b") is None


def test_counts_hits_and_misses() -> None:
    cache = FeatureCache(maxsize=4)
    cache.put("a", np.zeros(1))
    cache.get("a")
    cache.get("a")
    cache.get("missing")
    assert (cache.hits, cache.misses) == (2, 1)


def test_stored_arrays_are_read_only() -> None:
    cache = FeatureCache(maxsize=4)
    cache.put("a", np.zeros(3))
    value = cache.get("a")
    assert value is not None and not value.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        value[0] = 1.0


def test_maxsize_zero_stores_nothing() -> None:
    cache = FeatureCache(maxsize=0)
    cache.put("a", np.zeros(1))
    assert len(cache) == 0 and cache.get("a") is None


def test_concurrent_puts_stay_bounded() -> None:
    cache = FeatureCache(maxsize=50)

    def fill(offset: int) -> None:
        for i in range(500):
            cache.put(f"{offset}-{i}", np.zeros(1))
            cache.get(f"{offset}-{i // 2}")

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 2000


def test_text_key_is_a_stable_128_bit_digest() -> None:
    assert text_key("hello") == text_key("hello") != text_key("hello ")
    assert len(text_key("x" * 1_000_000)) == 32
    assert text_key("lone surrogate \ud800") != text_key("lone surrogate")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"maxsize": -1}, ConfigurationError, r"maxsize must be an int >= 0, got -1"),
        ({"maxsize": 1.5}, ConfigurationError, r"got 1\.5"),
        ({"maxsize": True}, ConfigurationError, r"got True"),
        ({"maxsize": None}, ConfigurationError, r"got None"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        FeatureCache(**kwargs)  # type: ignore[arg-type]


def test_maxsize_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        FeatureCache(10)  # type: ignore[misc]
