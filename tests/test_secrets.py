"""No API key or bearer token reaches anything Conduit writes: logs, the store and its
history, the saved state, exports, metrics.

One run with real-looking keys everywhere a user puts them (the environment, every
deployment's ``litellm_params.api_key``, an ``Authorization`` header on the request, the
feedback endpoint's token): requests routed through LiteLLM to the simulator, some
answered and some failing (injected 500s and 429s, a model the simulator does not
serve), automatic and explicit feedback (in process and over HTTP), a store with
history, a saved state and an export, with DEBUG logging on and written to a file.
Then every log record, every file under the test's directory and the metrics
exposition are searched for every secret, whole and in part.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import base64
import copy
import inspect
import json
import logging
import random
import string
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import openai
import pytest

from conduit.cli import main as conduit_main
from conduit.simulator import Simulator
from conduit_litellm import ConduitRoutingStrategy, _compat

# LiteLLM's own TypedDicts trip a pydantic warning when first validated; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

_rng = random.Random(20260101)
_ALNUM = string.ascii_letters + string.digits


def _key(prefix: str, length: int, alphabet: str = _ALNUM) -> str:
    return prefix + "".join(_rng.choice(alphabet) for _ in range(length))


SECRETS = {
    "OPENAI_API_KEY": _key("sk-proj-", 48),
    "ANTHROPIC_API_KEY": _key("sk-ant-api03-", 93, _ALNUM + "-_") + "AA",
    "AZURE_API_KEY": _key("", 32, "0123456789abcdef"),
    "deployment small": _key("sk-proj-", 48),
    "deployment large": _key("sk-ant-api03-", 93, _ALNUM + "-_") + "AA",
    "deployment missing": _key("", 32, "0123456789abcdef"),
    "Authorization header": _key("sk-proj-", 48),
    "feedback token": _key("", 40),
}


def _forms(secret: str) -> set[str]:
    """The secret and what would still give it away: its distinctive parts (a prefix, the
    body without its prefix), and base64 or JSON-escaped copies of it."""
    body = secret.split("-")[-1] if "-" in secret else secret
    return {
        secret,
        body[:24],
        body[-24:],
        base64.b64encode(secret.encode()).decode()[:32],
        json.dumps(secret)[1:-1],
    }


def find_secrets(text: str) -> list[str]:
    return sorted(
        name for name, secret in SECRETS.items() if any(f in text for f in _forms(secret))
    )


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[tuple[Path, list[logging.LogRecord]]]:
    """Every logger at DEBUG, written to a file and kept as records; levels restored after."""
    path = tmp_path / "debug.log"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # renders args and the traceback into the record
            records.append(record)

    to_file = logging.FileHandler(path, encoding="utf-8")
    keep = Keep()
    for handler in (to_file, keep):
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    names = ["conduit", "conduit_litellm", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy"]
    levels = {name: logging.getLogger(name).level for name in names}
    root_level = root.level
    root.addHandler(to_file)
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield path, records
    root.removeHandler(to_file)
    root.removeHandler(keep)
    to_file.close()
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def restore_litellm() -> Iterator[None]:
    callbacks = {name: list(getattr(litellm, name)) for name in _compat._CALLBACK_LISTS}
    cost_map = copy.deepcopy(litellm.model_cost)
    yield
    for name, entries in callbacks.items():
        getattr(litellm, name)[:] = entries
    litellm.model_cost.clear()
    litellm.model_cost.update(cost_map)


def _log(tmp_path: Path) -> Path:
    path = tmp_path / "log.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} + {i}?",
            "outcomes": {
                "small": {"quality": 0.5, "cost": 1e-4},
                "large": {"quality": 1.0, "cost": 1e-2},
            },
        }
        for i in range(6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def close_sync_clients() -> None:
    """LiteLLM caches the OpenAI clients of sync calls and never closes them; close the ones
    this test opened (to the simulator), so no socket is left to the interpreter's exit."""
    cached = getattr(litellm.in_memory_llm_clients_cache, "cache_dict", {})
    for client in list(cached.values()):
        if isinstance(client, openai.OpenAI):
            client.close()


def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_no_secret_reaches_logs_files_or_metrics(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_log: tuple[Path, list[logging.LogRecord]],
    restore_litellm: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_KEY"):
        monkeypatch.setenv(name, SECRETS[name])
    log_path, records = debug_log
    store_url = f"sqlite:///{tmp_path / 'store.db'}?namespace=secrets"
    metrics = "metrics" in inspect.signature(ConduitRoutingStrategy).parameters
    served = 0
    failed = 0
    with Simulator(_log(tmp_path), seed=3, error_rate=0.25) as sim:
        model_list = [
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": sim.base_url,
                    "api_key": SECRETS[f"deployment {model}"],
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                },
                "model_info": {"id": model},
            }
            for model in ("small", "large", "missing")  # "missing": the simulator answers 404
        ]
        router = litellm.Router(model_list=model_list, num_retries=0)
        strategy = ConduitRoutingStrategy(
            embedding_backend="hashing",
            seed=0,
            signal_grace=0.05,
            state_path=tmp_path / "state.json",
            router_options={"state_store": store_url, "sync_interval": 0.1},
            **({"metrics": True} if metrics else {}),
        )
        ConduitRoutingStrategy.setup_strategy(router, strategy)
        server = strategy.serve_feedback(token=SECRETS["feedback token"])
        responses = []
        for i in range(24):
            call = router.acompletion if i % 3 else asyncio.to_thread
            messages = [{"role": "user", "content": f"What is {i % 6} + {i % 6}?"}]
            headers = {"Authorization": f"Bearer {SECRETS['Authorization header']}"}
            try:
                if i % 3:
                    response = await call(model="chat", messages=messages, extra_headers=headers)
                else:
                    response = await call(
                        router.completion, model="chat", messages=messages, extra_headers=headers
                    )
            except openai.APIStatusError as exc:  # 500, 429, 404: LiteLLM's errors, raised
                assert exc.status_code in (404, 429, 500), exc
                failed += 1
            else:
                served += 1
                responses.append(response)
        assert served >= 5 and failed >= 3, (served, failed)
        for response in responses[::2]:
            strategy.record_feedback(response, thumbs=True)
        for response in responses[1::2]:
            status, body = await asyncio.to_thread(
                _post,
                server.url,
                {"response_id": response.id, "rating": 4},
                SECRETS["feedback token"],
            )
            assert status == 200, body
        status, _ = await asyncio.to_thread(
            _post, server.url, {"response_id": responses[0].id, "rating": 4}, "wrong-" + "x" * 20
        )
        assert status == 401
        exposition = b""
        if metrics and getattr(strategy, "metrics", None) is not None:
            exposition = strategy.metrics.exposition()
            assert b"conduit_" in exposition
        conduit = strategy.conduit_router
        assert conduit is not None
        await asyncio.sleep(0.1)  # automatic qualities past their grace period
        strategy.cleanup()  # saves the state, pushes the last learning and history
        await litellm.close_litellm_async_clients()
        close_sync_clients()
    assert conduit.stats().total_feedback >= served
    assert conduit.store_sync is not None and conduit.store_sync.syncs > 0

    assert conduit_main(["state", "export", str(tmp_path / "export.json"), "--url", store_url]) == 0
    assert conduit_main(["state", "show", "--url", store_url, "--history", "50", "--json"]) == 0
    shown = capsys.readouterr().out
    assert '"history": [{' in shown  # the history was written, and is scanned below too

    # -- the scan -------------------------------------------------------------------------------
    for record in records:
        text = record.getMessage() + (record.exc_text or "") + (record.stack_info or "")
        assert not find_secrets(text), (record.name, text[:500])
    assert records and any(r.name.startswith("conduit") for r in records)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    names = {p.name for p in written}
    assert {"debug.log", "store.db", "state.json", "export.json"} <= names, names
    for path in written:
        data = path.read_bytes()
        text = data.decode("utf-8", "replace") + data.decode("latin-1")
        assert not find_secrets(text), path
    assert not find_secrets(shown)
    assert not find_secrets(exposition.decode())
    assert log_path.stat().st_size > 10_000  # DEBUG really was on


def test_the_scan_finds_a_leak() -> None:
    """The scanner is not vacuous: a key in any of the forms it looks for is found."""
    for name, secret in SECRETS.items():
        assert find_secrets(f"api_key={secret}") == [name]
        assert find_secrets(json.dumps({"key": secret})) == [name]
        assert find_secrets(base64.b64encode(secret.encode()).decode()) == [name]
    assert find_secrets("sk-proj-" + "x" * 48) == []
