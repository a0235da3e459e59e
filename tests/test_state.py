"""State files: versioned, checksummed JSON with typed arrays, written atomically and privately."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conduit._errors import StateError
from conduit._state import FORMAT, VERSION, decode, encode, read_state, write_state

PAYLOAD: dict[str, Any] = {
    "name": "linucb",
    "count": 3,
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
    "f64": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
    "f32": np.array([0.1, -2.5], dtype=np.float32),
    "i64": np.array([[1, -2]], dtype=np.int64),
    "u8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([True, False]),
    "scalar": np.zeros(()),
    "no_rows": np.zeros((0, 4)),
    "numpy_scalar": np.float64(0.25),
    "big_int": 2**100 + 1,
}


def assert_round_trip(value: Any, decoded: Any) -> None:
    if isinstance(value, np.ndarray):
        assert isinstance(decoded, np.ndarray)
        assert (decoded.dtype, decoded.shape) == (value.dtype, value.shape)
        np.testing.assert_array_equal(decoded, value)
        assert decoded.flags.writeable
    elif isinstance(value, dict):
        assert set(decoded) == set(value)
        for key in value:
            assert_round_trip(value[key], decoded[key])
    elif isinstance(value, (list, tuple)):
        assert len(decoded) == len(value)
        for a, b in zip(value, decoded, strict=True):
            assert_round_trip(a, b)
    else:
        assert decoded == value and type(decoded) is type(
            value.item() if isinstance(value, np.generic) else value
        )


def test_round_trip_keeps_values_dtypes_and_shapes() -> None:
    assert_round_trip(PAYLOAD, decode(encode(PAYLOAD)))


def test_decode_accepts_bytes() -> None:
    assert_round_trip(PAYLOAD, decode(encode(PAYLOAD).encode("utf-8")))


def test_non_contiguous_arrays_round_trip() -> None:
    a = np.arange(12.0).reshape(3, 4).T
    assert_round_trip({"a": a}, decode(encode({"a": a})))


DTYPES = [np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]


@st.composite
def finite_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(dtype=dtype, shape=shape, elements=elements))


@settings(max_examples=40, deadline=None, database=None)
@given(finite_arrays(), st.text(max_size=10))
def test_any_array_round_trips(array: np.ndarray, key: str) -> None:
    decoded = decode(encode({key: array, "list": [array]}))
    assert decoded[key].dtype == array.dtype and decoded[key].shape == array.shape
    # Byte-exact, so signed zeros and subnormals survive too.
    assert decoded[key].tobytes() == array.tobytes()
    assert decoded["list"][0].tobytes() == array.tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_array_holding_nan_or_infinity_is_refused(bad: float) -> None:
    with pytest.raises(StateError, match="NaN or infinity"):
        encode({"a": np.array([0.5, bad])})


def test_the_text_is_the_documented_envelope() -> None:
    outer = json.loads(encode({"a": 1}))
    assert (outer["format"], outer["version"]) == (FORMAT, VERSION)
    body = json.dumps(outer["payload"], sort_keys=True, separators=(",", ":"))
    assert outer["sha256"] == hashlib.sha256(body.encode()).hexdigest()


def with_checksum(outer: dict[str, Any]) -> str:
    """An envelope re-signed after editing, to reach the checks behind the checksum."""
    body = json.dumps(outer["payload"], sort_keys=True, separators=(",", ":"))
    return json.dumps({**outer, "sha256": hashlib.sha256(body.encode()).hexdigest()})


def edited(change: Any) -> str:
    outer = json.loads(encode({"a": np.arange(3.0), "n": 1}))
    change(outer)
    return json.dumps(outer)


def resigned(change: Any) -> str:
    outer = json.loads(encode({"a": np.arange(3.0), "n": 1}))
    change(outer)
    return with_checksum(outer)


def set_array(**spec: Any) -> Any:
    def change(outer: dict[str, Any]) -> None:
        outer["payload"]["a"]["__ndarray__"].update(spec)

    return change


BAD_TEXTS = [
    ("not json at all", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    ("[1, 2, 3]", "not a Conduit state"),
    ('{"format": "pickle", "version": 1}', "not a Conduit state"),
    (edited(lambda o: o.update(version=2)), "version 2 is not supported"),
    (edited(lambda o: o.update(version="1")), "version '1' is not supported"),
    (edited(lambda o: o.update(version=True)), "version True is not supported"),
    (edited(lambda o: o.pop("version")), "version None is not supported"),
    (edited(lambda o: o.update(payload=[1])), "no payload"),
    (edited(lambda o: o["payload"].update(n=2)), "checksum"),
    (edited(lambda o: o.update(sha256="0" * 64)), "checksum"),
    (edited(lambda o: o.pop("sha256")), "checksum"),
    (edited(set_array(data="AAAAAAAAAAA=")), "checksum"),
    (
        encode({"n": 1}).replace('"payload":{"n":1}', '"payload":{"n":NaN}'),
        "non-finite",
    ),
    (resigned(set_array(shape=[4])), "malformed array"),
    (resigned(set_array(dtype="O")), "unsupported dtype"),
    (resigned(set_array(dtype="<U4")), "unsupported dtype"),
    (resigned(set_array(dtype="<c16")), "unsupported dtype"),
    (resigned(set_array(dtype="no such dtype")), "malformed array"),
    (resigned(set_array(data="!!not base64!!")), "malformed array"),
    (resigned(lambda o: o["payload"]["a"]["__ndarray__"].pop("shape")), "malformed array"),
    (resigned(lambda o: o["payload"].update(a={"__ndarray__": [1, 2]})), "malformed array"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TEXTS)
def test_anything_but_an_intact_state_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(StateError, match=message):
        decode(text)


@pytest.mark.parametrize(
    "payload",
    [{"x": float("nan")}, {"x": [float("inf")]}, {"x": object()}, {"x": {1, 2}}],
    ids=["nan", "inf", "object", "set"],
)
def test_what_json_cannot_hold_is_refused_on_encode(payload: dict[str, Any]) -> None:
    with pytest.raises(StateError, match="cannot be encoded"):
        encode(payload)


def test_write_state_is_private_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.json"
    write_state(path, PAYLOAD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_round_trip(PAYLOAD, read_state(path))
    assert os.listdir(path.parent) == ["state.json"]


def test_write_state_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    write_state(path, {"generation": 1})
    before = path.read_text()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_state(path, {"generation": 2})
    assert path.read_text() == before, "a failed write leaves the old state whole"
    assert os.listdir(tmp_path) == ["state.json"], "and no temporary file behind"
    monkeypatch.undo()

    write_state(path, {"generation": 2})
    assert read_state(path) == {"generation": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_state_does_not_widen_an_existing_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    path.chmod(0o644)
    write_state(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_state_refuses_non_finite_numbers_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, {"a": 1})
    with pytest.raises(StateError):
        write_state(path, {"a": float("nan")})
    assert read_state(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_read_state_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StateError, match=r"cannot read state .*missing\.json"):
        read_state(missing)
    broken = tmp_path / "broken.json"
    broken.write_text(encode({"a": 1}).replace('"a":1', '"a":2'))
    with pytest.raises(StateError, match=r"broken\.json: state checksum"):
        read_state(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(StateError, match=r"binary\.json"):
        read_state(binary)


# -- files Conduit creates are private whatever the umask -----------------------------------


@pytest.fixture
def open_umask() -> Any:
    old = os.umask(0)
    yield
    os.umask(old)


def test_parent_directories_of_a_state_file_are_private(tmp_path: Path, open_umask: Any) -> None:
    target = tmp_path / "a" / "b" / "state.json"
    write_state(target, {"x": 1})
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_parent_directories_of_an_sqlite_store_are_private(tmp_path: Path, open_umask: Any) -> None:
    from conduit.stores import open_store

    with open_store(f"sqlite:///{tmp_path / 'c' / 'd' / 'state.db'}"):
        pass
    for directory in (tmp_path / "c", tmp_path / "c" / "d"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_replay_json_output_is_private(tmp_path: Path, open_umask: Any) -> None:
    from conduit.cli import main

    log = tmp_path / "log.jsonl"
    lines = [
        json.dumps({"prompt": f"q{i}", "outcomes": {"x": {"quality": 1}, "y": {"quality": 0}}})
        for i in range(20)
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.json"
    argv = ["replay", "--data", str(log), "--embedding-backend", "hashing"]
    assert main([*argv, "--algorithm", "ucb1", "--json", str(out), "-q"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
