"""Many processes, one learner: 4 replicas routing a quarter each end where one process would."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from conduit.replay.log import read_log, shipped_log
from conduit.stores import Snapshot, open_store

WORKER = Path(__file__).with_name("replica_worker.py")
RECORDS = 320
REPLICAS = 4


def _worker_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("replica_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_replicas(url: str, interval: float = 0.05) -> list[dict[str, int]]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(k), str(REPLICAS), str(RECORDS), str(interval)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(REPLICAS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _assert_same_learning(global_state: Snapshot) -> None:
    """The store's sums equal those of one process that routed every record itself."""
    worker = _worker_module()
    records = read_log(shipped_log(), limit=RECORDS)
    single = worker.make_router(list(records[0].outcomes))
    worker.route_all(single, records)
    expected_bandit = single.bandit.stats()
    expected_outcomes = single._outcomes.stats()
    got = global_state.sums
    assert sorted(got["bandit"]) == sorted(expected_bandit)
    for arm, stats in expected_bandit.items():
        for key, value in stats.items():
            np.testing.assert_allclose(
                got["bandit"][arm][key], value, rtol=1e-9, atol=1e-9, err_msg=f"{arm}.{key}"
            )
    for arm, sums in expected_outcomes.items():
        for key, value in sums.items():
            assert float(got["outcomes"][arm][key]) == pytest.approx(value, rel=1e-9, abs=1e-12), (
                f"{arm}.{key}"
            )
    total = {
        k: sum(float(s[k]) for s in got["outcomes"].values()) for k in ("decisions", "quality_n")
    }
    assert total == {"decisions": RECORDS, "quality_n": RECORDS}  # none of the updates is lost
    assert sum(float(s["n"]) for s in got["bandit"].values()) == RECORDS


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_four_replicas_learn_as_one(store_url: str) -> None:
    results = _run_replicas(store_url)
    assert sum(r["routed"] for r in results) == RECORDS
    assert all(r["failures"] == 0 and r["syncs"] >= 2 for r in results), results
    with open_store(store_url) as store:
        state = store.pull()
    assert state is not None
    assert len(state.replicas) == REPLICAS
    _assert_same_learning(state)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_replica_started_later_begins_from_the_others(store_url: str) -> None:
    _run_replicas(store_url)
    worker = _worker_module()
    records = read_log(shipped_log(), limit=1)
    late = worker.make_router(list(records[0].outcomes), state_store=store_url, sync_interval=60)
    try:
        assert late.stats().total_feedback == RECORDS  # before it has routed anything itself
    finally:
        late.close()
