"""Learning survives a restart by default: the embedded store, one namespace per model list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conduit.config import model_list_namespace, resolve_state_url

# One process of an application using ConduitRoutingStrategy() with default arguments; the
# embedding backend comes from CONDUIT_EMBEDDING_BACKEND (hashing: fast, no model file).
APP = """
import asyncio, json, sys, time
import litellm
from conduit_litellm import ConduitRoutingStrategy

MODEL_LIST = [
    {"model_name": "chat", "model_info": {"id": "mini"},
     "litellm_params": {"model": "gpt-4o-mini", "mock_response": "Paris."}},
    {"model_name": "chat", "model_info": {"id": "4o"},
     "litellm_params": {"model": "gpt-4o", "mock_response": "Paris."}},
]
REQUESTS = int(sys.argv[1])

async def main():
    router = litellm.Router(model_list=MODEL_LIST, num_retries=0)
    strategy = ConduitRoutingStrategy()
    ConduitRoutingStrategy.setup_strategy(router, strategy)
    before = strategy.conduit_router.stats().total_decisions
    for i in range(REQUESTS):
        response = await router.acompletion(
            model="chat", messages=[{"role": "user", "content": f"q{i}"}]
        )
        strategy.record_feedback(response, thumbs=True)
    deadline = time.monotonic() + 60
    while strategy.feedback.stats()["learned"] < REQUESTS and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
            await GLOBAL_LOGGING_WORKER.flush()
        except ImportError:
            pass
    stats = strategy.conduit_router.stats()
    strategy.cleanup()
    print(json.dumps({"before": before, "after": stats.total_decisions,
                      "feedback": stats.total_feedback}))

asyncio.run(main())
"""


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no CONDUIT_STATE_URL, a data directory of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["CONDUIT_EMBEDDING_BACKEND"] = "hashing"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    )
    return env


@pytest.mark.slow
def test_a_second_process_starts_from_what_the_first_learned(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    first = json.loads(run([str(app), "6"], user_env, tmp_path).splitlines()[-1])
    assert (first["before"], first["after"], first["feedback"]) == (0, 6, 6)
    database = tmp_path / "data" / "conduit" / "state.db"
    assert database.is_file()  # the embedded store, in the user's data directory

    second = json.loads(run([str(app), "4"], user_env, tmp_path).splitlines()[-1])
    assert (second["before"], second["after"], second["feedback"]) == (6, 10, 10)

    shown = json.loads(run(["-m", "conduit.cli", "stats", "--json"], user_env, tmp_path))
    assert shown["namespace"] == model_list_namespace(["mini", "4o"])
    assert (shown["total_decisions"], shown["total_feedback"]) == (10, 10)
    assert {line["model"] for line in shown["models"]} == {"mini", "4o"}


@pytest.mark.slow
def test_memory_opts_out_and_another_model_list_does_not_mix(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    run([str(app), "3"], user_env, tmp_path)
    in_memory = {**user_env, "CONDUIT_STATE_URL": "memory://"}
    again = json.loads(run([str(app), "2"], in_memory, tmp_path).splitlines()[-1])
    assert again["before"] == 0  # memory:// neither reads nor writes the store
    other = tmp_path / "other.py"
    other.write_text(APP.replace('"id": "4o"', '"id": "4o-b"'))
    fresh = json.loads(run([str(other), "1"], user_env, tmp_path).splitlines()[-1])
    assert fresh["before"] == 0  # another model list, another namespace


def test_the_default_store_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONDUIT_STATE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_state_url() == f"sqlite:///{tmp_path / 'conduit' / 'state.db'}"
    monkeypatch.setenv("CONDUIT_STATE_URL", "redis://127.0.0.1:6379/0")
    assert resolve_state_url() == "redis://127.0.0.1:6379/0"
    assert resolve_state_url("memory://") == "memory://"
