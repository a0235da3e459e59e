"""The soak test, short: benchmarks/bench_soak.py's run for 800 requests instead of 30 minutes.

Mixed LiteLLM traffic (async and sync calls, two model groups, preference presets)
against the simulator injecting 5 % provider errors, explicit feedback (some of it
late) and automatic feedback, a 4 s outage of a real redis-server (which the
benchmark starts, stops and restarts) in the middle, and the store flushed near the end
(``--data-loss``; counted in requests, the flush often lands just after the outage,
while a push still waits for its retry: the router must keep its learning and re-seed
the store whole, as tests/stores/test_reliability.py forces deterministically). Every
check of the benchmark must hold.
Between its quiet points the live objects grow by 600 to 1,200 whatever the number of
requests (LiteLLM's pending attempt timers, the outage's last error and its
traceback); with an allowance of 2,500 objects and 480 measured requests it catches a
leak of a few objects per request (the 30-minute run: one per ten). The run is counted
in requests, never timed, so a loaded machine makes it slower, not different; nothing
here asserts a rate or a duration.
Python's allocated blocks (strings and numbers too) move by 1,500 to 6,000 in so short
a run, so their allowance is 10,000. It runs in a fresh interpreter, measuring the
soak alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .stores.conftest import service_missing

pytestmark = [pytest.mark.slow, pytest.mark.redis]

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_soak.py"


def test_soak_with_provider_errors_and_a_store_outage(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary, for the soak's store outage)", "not on PATH")
    # A fresh interpreter: memory is measured for the soak alone, not for what earlier
    # tests left behind (their lazily imported modules and caches).
    out = tmp_path / "soak.json"
    args = [
        "--requests", "800", "--concurrency", "8", "--error-rate", "0.05",
        "--outages", "1", "--outage-seconds", "4", "--prompts", "200", "--cap", "300",
        "--warmup", "0.4", "--memory-bound", "24", "--objects-allowance", "2500",
        "--blocks-allowance", "10000",
        "--sync-interval", "0.5", "--data-loss", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=1800,  # a hang, not a slow machine
    )
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    failed = [name for name, ok in result["checks"].items() if not ok]
    report = done.stdout[-4000:]
    assert not failed and done.returncode == 0, (failed, report)
    # the run was big enough for the checks to mean something
    warm, measured = result["quiet_points"][0]["requests"], result["measured_requests"]
    # the caps filled in the warm-up and churned after it (the cap also has to hold the
    # decisions whose feedback is up to 2 s late: 300 is 3 s of traffic here)
    cap = 300
    assert warm >= cap and measured >= cap, report
    assert sum(result["provider_errors_seen"].values()) >= 20, report
    assert result["store"]["decisions"] == result["requests"]
    assert result["store_sync_errors"] > 0
    assert len(result["store_outages"]) == 3  # down, up, flushed
    assert result["store_state_lost"] >= 1
    assert result["store"]["quality_n"] == result["local"]["quality_n"]
    assert result["explicit_feedback"] > 0.5 * result["successes"]
