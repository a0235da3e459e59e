from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conduit._errors import ConfigurationError
from conduit.simulator._command import (
    add_simulate_arguments,
    parse_alias,
    parse_latency,
    run_simulate,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conduit simulate")
    add_simulate_arguments(p)
    return p


@pytest.mark.parametrize(
    ("function", "text", "pattern"),
    [
        (parse_latency, "fast", "must be MS or MS:JITTER"),
        (parse_latency, "10:x", "must be MS or MS:JITTER"),
        (parse_latency, "10:20", "0 <= JITTER <= MS"),
        (parse_latency, "-1", "0 <= JITTER <= MS"),
        (parse_latency, "inf", "finite"),
        (parse_alias, "gpt-4o-mini", "NAME=LOGGED_MODEL"),
        (parse_alias, "=small", "NAME=LOGGED_MODEL"),
    ],
)
def test_invalid_option_values(function: object, text: str, pattern: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=pattern):
        function(text)  # type: ignore[operator]


def test_defaults_and_every_option() -> None:
    assert vars(parser().parse_args([])) == {
        "data": None,
        "host": "127.0.0.1",
        "port": 0,
        "latency_ms": (0.0, 0.0),
        "error_rate": 0.0,
        "seed": None,
        "alias": [],
        "judge_noise": 0.0,
        "judge_length_bias": 0.0,
        "judge_position_bias": 0.0,
    }
    args = parser().parse_args(
        [
            "--data",
            "log.jsonl",
            "--port",
            "8123",
            "--latency-ms",
            "30:5",
            "--error-rate",
            "0.1",
            "--seed",
            "7",
            "--alias",
            "gpt-4o-mini=small",
            "--alias",
            "gpt-4o=large",
        ]
    )
    assert args.latency_ms == (30.0, 5.0) and args.error_rate == 0.1 and args.seed == 7
    assert args.alias == [("gpt-4o-mini", "small"), ("gpt-4o", "large")]
    args = parser().parse_args(["--judge-noise", "0.15", "--judge-position-bias", "0.3"])
    assert (args.judge_noise, args.judge_position_bias) == (0.15, 0.3)
    with pytest.raises(SystemExit):
        parser().parse_args(["--judge-noise", "2"])


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "lots"])
def test_error_rate_outside_zero_one_is_refused(
    rate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--error-rate", rate])
    err = capsys.readouterr().err
    assert "argument --error-rate:" in err
    assert "must be in [0, 1]" in err or "expected a number" in err


def test_non_loopback_host_is_a_configuration_error(tiny_log: Path) -> None:
    args = parser().parse_args(["--data", str(tiny_log), "--host", "0.0.0.0"])
    with pytest.raises(ConfigurationError, match="binds loopback only"):
        run_simulate(args)


def test_serves_until_interrupted(tiny_log: Path) -> None:
    code = (
        "import sys; from conduit.simulator._command import *; "
        "p = __import__('argparse').ArgumentParser(); add_simulate_arguments(p); "
        "sys.exit(run_simulate(p.parse_args(sys.argv[1:])))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--data", str(tiny_log), "--alias", "gpt-4o-mini=small"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        with urllib.request.urlopen(f"{match.group(1)}/models", timeout=10) as response:
            ids = [m["id"] for m in json.load(response)["data"]]
        assert ids == ["large", "medium", "small", "gpt-4o-mini"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
