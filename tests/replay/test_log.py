from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conduit._errors import LogFormatError, ValidationError
from conduit.replay.log import DEFAULT_LOG, Outcome, iter_log, read_log, shipped_log

WriteLog = Callable[..., Path]
GOOD = '{"id": "a", "prompt": "p", "outcomes": {"x": {"quality": 1, "cost": 0.5}}}'


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_reads_plain_and_gzip_alike(write_log: WriteLog, three_models: list[Any], gz: bool) -> None:
    path = write_log(three_models, name="log.jsonl.gz" if gz else "log.jsonl", gz=gz)
    records = read_log(path)
    assert [r.id for r in records] == ["q0", "q1", "q2", "q3"]
    assert records[0].prompt == "question 0: what is 0 + 0?"
    assert records[0].task == "test"
    assert records[3].outcomes["mid"] == Outcome(quality=1.0, cost=None)
    assert records[2].outcomes["small"] == Outcome(quality=0.5, cost=0.001)


def test_gzip_is_recognised_by_content_not_name(
    write_log: WriteLog, three_models: list[Any]
) -> None:
    assert len(read_log(write_log(three_models, name="log.txt", gz=True))) == 4


def test_limit_takes_the_first_records(write_log: WriteLog, three_models: list[Any]) -> None:
    assert [r.id for r in read_log(write_log(three_models), limit=2)] == ["q0", "q1"]


def test_blank_lines_and_a_byte_order_mark_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("\ufeff" + GOOD + "\n\n   \n" + GOOD + "\n", encoding="utf-8")
    assert len(read_log(path)) == 2


def test_missing_id_and_task_default_to_line_number_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("\n" + '{"prompt": "p", "outcomes": {"x": {"quality": 0}}}\n')
    (record,) = read_log(path)
    assert (record.id, record.task, record.outcomes["x"].cost) == ("2", "", None)


def test_shipped_logs_are_found_and_read() -> None:
    assert shipped_log().name == DEFAULT_LOG
    first = next(iter_log(shipped_log("routellm-mmlu.jsonl.gz")))
    assert sorted(first.outcomes) == ["gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"]


def test_an_unknown_shipped_log_is_refused() -> None:
    with pytest.raises(LogFormatError, match=r"no shipped log named 'nope\.jsonl'"):
        shipped_log("nope.jsonl")


def _line(outcomes: object, prompt: object = "p") -> str:
    return json.dumps({"prompt": prompt, "outcomes": outcomes})


BAD_LINES = [
    ("{not json", r"log\.jsonl:2: not valid JSON"),
    ("[1, 2]", r"log\.jsonl:2: each line must be a JSON object"),
    (_line({"x": {"quality": 1}}, prompt=""), r":2: 'prompt' must be a non-empty string"),
    (_line({"x": {"quality": 1}}, prompt=3), r":2: 'prompt' must be a non-empty string"),
    (_line({}), r":2: 'outcomes' must be a non-empty object"),
    (_line([1]), r":2: 'outcomes' must be a non-empty object"),
    (_line({"x": 1}), r":2: outcome of 'x' must be an object with 'quality'"),
    (_line({"x": {"cost": 1}}), r":2: outcome of 'x' must be an object with 'quality'"),
    (_line({"x": {"quality": 1.5}}), r":2: quality of 'x' must be a number in \[0, 1\], got 1.5"),
    (_line({"x": {"quality": -0.1}}), r":2: quality of 'x' must be a number in \[0, 1\]"),
    (_line({"x": {"quality": "1"}}), r":2: quality of 'x' must be a number in \[0, 1\]"),
    (_line({"x": {"quality": True}}), r":2: quality of 'x' must be a number in \[0, 1\]"),
    ('{"prompt": "p", "outcomes": {"x": {"quality": NaN}}}', r":2: quality of 'x' must be"),
    (_line({"x": {"quality": 1, "cost": -1}}), r":2: cost of 'x' must be a number >= 0 or null"),
    (_line({"x": {"quality": 1, "cost": "1"}}), r":2: cost of 'x' must be a number >= 0 or null"),
    ('{"prompt": "p", "outcomes": {"x": {"quality": 1, "cost": Infinity}}}', r":2: cost of 'x'"),
    (
        '{"prompt": "p", "outcomes": {"x\\ud800": {"quality": 1}}}',
        r":2: model name .* lone surrogate",
    ),
    (_line({"y": {"quality": 1}}), r":2: outcomes name models \['y'\], earlier lines \['x'\]"),
    (
        _line({"x": {"quality": 1}, "y": {"quality": 1}}),
        r":2: outcomes name models \['x', 'y'\], earlier lines \['x'\]",
    ),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_malformed_line_is_named_by_its_number(
    write_log: WriteLog, line: str, message: str, gz: bool
) -> None:
    path = write_log(lines=[GOOD, line, GOOD], gz=gz)
    with pytest.raises(LogFormatError, match=message):
        read_log(path)


def test_records_before_a_bad_line_are_streamed(write_log: WriteLog) -> None:
    records = iter_log(write_log(lines=[GOOD, "{oops"]))
    assert next(records).id == "a"
    with pytest.raises(LogFormatError, match=":2: not valid JSON"):
        next(records)


def test_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    empty_gz = tmp_path / "empty.jsonl.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(gzip.compress(((GOOD + "\n") * 50).encode())[:-30])
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"\x00" * 40)  # gzip.BadGzipFile
    garbled = bytearray(gzip.compress(((GOOD + "\n") * 50).encode()))
    garbled[12:30] = bytes(b ^ 0xFF for b in garbled[12:30])
    bad_deflate = tmp_path / "garbled.jsonl.gz"
    bad_deflate.write_bytes(bytes(garbled))  # zlib.error
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(GOOD.replace('"p"', '"caf\xe9"').encode("latin-1") + b"\n")
    cases = [
        (tmp_path / "missing.jsonl", r"missing\.jsonl: no such file"),
        (tmp_path, "no such file"),
        (empty, r"empty\.jsonl: the log holds no records"),
        (blank, r"blank\.jsonl: the log holds no records"),
        (empty_gz, r"empty\.jsonl\.gz: the log holds no records"),
        (truncated, r"truncated\.jsonl\.gz(:\d+)?: cannot read"),
        (corrupt, r"corrupt\.jsonl\.gz: cannot read"),
        (bad_deflate, r"garbled\.jsonl\.gz: cannot read"),
        (latin1, r"latin1\.jsonl:1: not UTF-8 text"),
    ]
    for path, message in cases:
        with pytest.raises(LogFormatError, match=message):
            read_log(path)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "3"])
def test_limit_must_be_a_positive_int(
    write_log: WriteLog, three_models: list[Any], limit: object
) -> None:
    with pytest.raises(
        ValidationError, match=re.escape(f"limit must be a positive int, got {limit!r}")
    ):
        read_log(write_log(three_models), limit=limit)  # type: ignore[arg-type]
