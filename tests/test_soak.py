"""The soak test, short: benchmarks/bench_soak.py's run for 20 s instead of 30 minutes.

Mixed LiteLLM traffic (async and sync calls, two model groups, preference presets)
against the simulator injecting 5 % provider errors, explicit feedback (some of it
late) and automatic feedback, and a 4 s outage of a real redis-server (the store
tests' own, stopped and restarted) in the middle. Every check of the benchmark must
hold. Between its quiet points the live objects move by a few hundred (LiteLLM's
pending attempt timers, the outage's last error and its traceback); with an
allowance of 1,500 objects and 500 to 1,200 measured requests (as busy as the
machine is) it catches a leak of a few objects per request (the 30-minute run: one
per ten), so it also asserts the run was big enough for the caps to churn.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .stores.conftest import free_port, service_missing
from .stores.test_redis import RedisServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning"),
]

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_soak.py"


def bench_soak() -> ModuleType:
    """benchmarks/bench_soak.py, imported from its file (benchmarks/ is not a package)."""
    if "bench_soak" in sys.modules:
        return sys.modules["bench_soak"]
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server (binary, for the soak's store outage)", "not on PATH")
    assert binary is not None
    server = RedisServer(binary, free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


async def test_soak_with_provider_errors_and_a_store_outage(redis_server: RedisServer) -> None:
    bench = bench_soak()
    config = bench.SoakConfig(
        seconds=20.0,
        concurrency=8,
        error_rate=0.05,
        outages=1,
        outage_seconds=4.0,
        prompts=200,
        cap=300,
        warmup=0.4,
        memory_bound_mib=24.0,
        objects_allowance=1500,
        sync_interval=0.5,
    )
    result = await bench.soak(config, redis_server)
    failed = [name for name, ok in result["checks"].items() if not ok]
    detail = {
        key: result[key]
        for key in (
            "requests", "local", "expected", "store", "provider_errors_injected",
            "provider_errors_seen", "conduit_failures", "conduit_failure_examples", "blocks_growth",
            "conduit_fallbacks", "quiet_points", "objects_grown_by_type", "rss_growth_mib",
        )
    }  # fmt: skip
    assert not failed, (failed, detail)
    # the run was big enough for the checks to mean something
    warm, measured = result["quiet_points"][0]["requests"], result["measured_requests"]
    # the caps filled in the warm-up and churned after it (the cap also has to hold the
    # decisions whose feedback is up to 2 s late: 300 is 3 s of traffic here)
    assert warm >= config.cap and measured >= 1.5 * config.cap, detail
    assert sum(result["provider_errors_seen"].values()) >= 20, detail
    assert result["store"]["decisions"] == result["requests"]
    assert result["store_sync_errors"] > 0 and len(result["store_outages"]) == 2
    assert result["explicit_feedback"] > 0.5 * result["successes"]
    assert result["added_p50_ms"] < 20.0, detail
