"""The on-disk feature cache of ``load``: hit, miss, invalidation, bad files, file mode."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conduit._errors import ConfigurationError
from conduit.replay import _cache, load

WriteLog = Callable[..., Path]
#: Three models, four queries (the shape of conftest's THREE_MODELS).
THREE_MODELS = [{"big": (1.0, 0.01), "small": (0.0, 0.001), "mid": (0.5, None)}] * 4


def _line(prompt: str) -> str:
    outcomes = {m: {"quality": q, "cost": c} for m, (q, c) in THREE_MODELS[0].items()}
    return json.dumps({"prompt": prompt, "outcomes": outcomes})


def _embedded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from conduit.engines.features._hashing import HashingEmbedder

    calls: list[int] = []
    real = HashingEmbedder.embed

    def counting(self: HashingEmbedder, texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(HashingEmbedder, "embed", counting)
    return calls


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npy"))


def test_second_load_embeds_nothing_and_gives_the_same_features(
    write_log: WriteLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, folder = write_log(THREE_MODELS), tmp_path / "cache"
    calls = _embedded(monkeypatch)
    first = load(path, embedding_backend="hashing", cache=folder)
    assert sum(calls) == len(THREE_MODELS) and len(_files(folder)) == 1
    calls.clear()
    second = load(path, embedding_backend="hashing", cache=folder)
    assert calls == []
    for prompt in first.prompts:
        np.testing.assert_array_equal(
            first.extractor.features(prompt), second.extractor.features(prompt)
        )


def test_cache_false_writes_nothing(write_log: WriteLog, tmp_path: Path) -> None:
    load(write_log(THREE_MODELS), embedding_backend="hashing", cache=False)
    assert list(tmp_path.rglob("*.npy")) == []


def test_a_changed_log_limit_or_backend_is_a_miss(
    write_log: WriteLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    path = write_log(THREE_MODELS)
    load(path, embedding_backend="hashing", cache=folder)
    load(path, embedding_backend="hashing", cache=folder, limit=2)
    assert len(_files(folder)) == 2
    calls = _embedded(monkeypatch)
    changed = write_log(lines=[_line(f"another question {i}?") for i in range(4)])
    assert changed == path  # same file, new content
    load(changed, embedding_backend="hashing", cache=folder)
    assert sum(calls) == len(THREE_MODELS) and len(_files(folder)) == 3


def test_the_key_depends_on_content_extractor_and_limit() -> None:
    base = _cache.cache_key("a" * 64, "hashing:384/p64", 1200, None)
    assert base == _cache.cache_key("a" * 64, "hashing:384/p64", 1200, None)
    others = {
        _cache.cache_key("b" * 64, "hashing:384/p64", 1200, None),
        _cache.cache_key("a" * 64, "static:all-MiniLM-L6-v2/p64", 1200, None),
        _cache.cache_key("a" * 64, "hashing:384/p64", 600, None),
        _cache.cache_key("a" * 64, "hashing:384/p64", 1200, 10),
    }
    assert base not in others and len(others) == 4


@pytest.mark.parametrize(
    "bad",
    [
        b"not a numpy file at all",
        b"",
        "wrong shape",
        "not finite",
        "pickled object",
    ],
)
def test_a_bad_cache_file_is_ignored_with_a_warning_and_rebuilt(
    write_log: WriteLog,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bad: bytes | str,
) -> None:
    path, folder = write_log(THREE_MODELS), tmp_path / "cache"
    good = load(path, embedding_backend="hashing", cache=folder)
    (file,) = _files(folder)
    expected = np.load(file)
    if isinstance(bad, bytes):
        file.write_bytes(bad)
    elif bad == "wrong shape":
        np.save(file, np.zeros((2, 3)))
    elif bad == "not finite":
        np.save(file, np.full(expected.shape, np.nan))
    else:
        np.save(file, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with caplog.at_level(logging.WARNING, logger="conduit.replay"):
        again = load(path, embedding_backend="hashing", cache=folder)
    assert "Ignoring the feature cache file" in caplog.text
    np.testing.assert_array_equal(np.load(file), expected)  # rebuilt
    prompt = good.prompts[0]
    np.testing.assert_array_equal(again.extractor.features(prompt), good.extractor.features(prompt))


def test_files_are_private(write_log: WriteLog, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    load(write_log(THREE_MODELS), embedding_backend="hashing", cache=folder)
    (file,) = _files(folder)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert list(folder.glob("*.tmp")) == []


def test_an_unwritable_cache_folder_warns_and_the_load_succeeds(
    write_log: WriteLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="conduit.replay"):
        data = load(write_log(THREE_MODELS), embedding_backend="hashing", cache=blocker / "sub")
    assert len(data) == len(THREE_MODELS)
    assert "Could not write the feature cache file" in caplog.text


def test_the_default_folder_is_the_user_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert _cache.default_dir() == Path("/somewhere/cache/conduit/features")


@pytest.mark.parametrize("cache", [1, None, 2.5, ["folder"]])
def test_a_cache_that_is_not_a_bool_or_a_path_is_refused(
    write_log: WriteLog, cache: object
) -> None:
    with pytest.raises(ConfigurationError, match="cache must be a bool or a folder path"):
        load(write_log(THREE_MODELS), embedding_backend="hashing", cache=cache)  # type: ignore[arg-type]
