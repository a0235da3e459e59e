"""ConduitRoutingPlugin in LiteLLM's real proxy, started as a subprocess on loopback.

The proxy runs ``examples/proxy_config.yaml`` as docs/proxy.md says (plugins,
master key, ``CONDUIT_*`` environment), with its model list pointed at the
simulator: three provider models under one name, priced as the simulator bills
them. The ``openai`` client sends logged prompts; each answer's logged quality
goes back through the plugin's feedback endpoint; what the plugin learned is
read from its state file, and its Prometheus metrics are scraped from its own
endpoint (``CONDUIT_METRICS_PORT``) and from the proxy's ``/metrics`` (LiteLLM's
``prometheus`` callback on).

The proxy needs ``litellm[proxy]``'s dependencies. Without them this test is
skipped loudly, or fails under ``CONDUIT_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conduit._state import read_state
from conduit.replay.log import read_log, shipped_log
from conduit.simulator import Simulator

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "proxy_config.yaml"
REQUIRE = os.environ.get("CONDUIT_REQUIRE_SERVICES", "") not in ("", "0")
MASTER_KEY = "sk-conduit-e2e-" + "7f3a9c" * 6
#: Logged models behind the model name "chat". mistral-7b is the cheapest and by far the
#: worst on these prompts: the price prior favours it, so only learned quality moves away.
GOOD = ("gpt-4-1106-preview", "zero-one-ai/Yi-34B-Chat")
BAD = "mistralai/mistral-7b-chat"
REQUESTS = 300
#: Requests sent with a target of their own after the others.
TARGETED = 40
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Proxy:
    url: str
    feedback_url: str
    metrics_url: str
    state_path: Path
    log_path: Path


def proxy_missing(log: str) -> None:
    """Skip loudly when the proxy's dependencies are absent; fail when CI demands them."""
    lines = [line for line in log.splitlines() if "Missing dependency" in line]
    message = (
        f"LITELLM PROXY MISSING: {lines[-1] if lines else 'it cannot start'}; the proxy "
        "end-to-end test did NOT run. Install the proxy's dependencies (docs/proxy.md), or set "
        "CONDUIT_REQUIRE_SERVICES=1 to make this a failure."
    )
    if REQUIRE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the proxy's process group, SIGKILL it if it has not exited within 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(shipped_log(), port=0, seed=0) as sim:
        yield sim


@pytest.fixture
def proxy(simulator: Simulator, tmp_path: Path) -> Iterator[Proxy]:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["model_list"] = [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": simulator.base_url,
                "api_key": "sk-dummy",
                "input_cost_per_token": simulator.price_per_token(model),
                "output_cost_per_token": simulator.price_per_token(model),
            },
        }
        for model in (*GOOD, BAD)
    ]
    config.setdefault("litellm_settings", {})["callbacks"] = ["prometheus"]  # its /metrics
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port, metrics_port = free_port(), free_port()
    state_path = tmp_path / "conduit-state.json"
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "CONDUIT_EMBEDDING_BACKEND": "hashing",
        "CONDUIT_SEED": "0",
        "CONDUIT_STATE_PATH": str(state_path),
        "CONDUIT_SAVE_INTERVAL": "0.2",
        "CONDUIT_METRICS_PORT": str(metrics_port),
    }
    env.pop("CONDUIT_PREFERENCES", None)
    env.pop("CONDUIT_BANDIT_ALGORITHM", None)
    log_path = tmp_path / "proxy.log"
    litellm = Path(sys.executable).with_name("litellm")
    command = [str(litellm), "--config", str(config_path), "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--num_workers", "1"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown leaves no orphan
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                text = log_path.read_text(errors="replace")
                if "Missing dependency" in text:
                    proxy_missing(text)
                pytest.fail(f"the proxy exited with {process.returncode}:\n{text[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health/liveliness", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    text = log_path.read_text(errors="replace")
                    pytest.fail(f"the proxy was not ready in {STARTUP_SECONDS} s:\n{text[-4000:]}")
                time.sleep(0.2)
        yield Proxy(
            url=url,
            feedback_url=f"{url}/conduit/feedback",  # on the proxy's own app and port
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            state_path=state_path,
            log_path=log_path,
        )
    finally:
        stop(process)
    assert process.returncode is not None


def post_feedback(url: str, body: dict[str, Any], token: str = MASTER_KEY) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def learned(state: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per arm, the plugin's saved outcome sums (decisions, quality_n, cost_n, ...)."""
    outcomes = state["router"]["outcomes"]
    return {
        model: {key: float(outcomes["sums"][i, j]) for j, key in enumerate(outcomes["keys"])}
        for i, model in enumerate(outcomes["models"])
    }


def saved_targets(state: dict[str, Any]) -> dict[str, Any]:
    """The plugin's saved target controllers, by target."""
    return dict(state["router"]["targets"]["targets"])


def wait_for_saved(
    state_path: Path,
    read: Callable[[dict[str, Any]], Any],
    ready: Callable[[Any], bool],
    expected: object,
) -> Any:
    """``read(state)`` of the saved state once ``ready`` holds for it (the plugin saves
    on its own schedule); fails, showing the last one read, after 20 seconds."""
    deadline = time.monotonic() + 20.0
    found = None
    while time.monotonic() < deadline:
        if state_path.exists():
            found = read(read_state(state_path))
            if ready(found):
                return found
        time.sleep(0.2)
    pytest.fail(f"the saved state never held {expected}: {found}")


def wait_for_state(state_path: Path, served: Counter[str]) -> dict[str, Any]:
    """The saved sums once they hold every decision, cost and quality of ``served``."""
    want = {m: (float(n), float(n), float(n)) for m, n in served.items()}

    def ready(sums: dict[str, dict[str, float]]) -> bool:
        have = {m: (s["decisions"], s["quality_n"], s["cost_n"]) for m, s in sums.items()}
        return {m: v for m, v in have.items() if any(v)} == want

    return dict(wait_for_saved(state_path, learned, ready, f"what was served, {dict(served)}"))


def wait_for_targets(state_path: Path, target: str, decisions: int) -> dict[str, Any]:
    """The saved target controllers once ``target`` holds ``decisions`` outcomes."""

    def ready(found: dict[str, Any]) -> bool:
        t = found.get(target, {})
        return bool(t.get("decisions") == decisions and t.get("quality_n") == decisions)

    return dict(
        wait_for_saved(state_path, saved_targets, ready, f"{decisions} outcomes of {target}")
    )


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Conduit's counters in a Prometheus exposition (parsed strictly): name -> label -> value."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("conduit_decisions_total", "conduit_feedback_total"):
                key = s.labels.get("model") or f"{s.labels['kind']}/{s.labels['source']}"
                out.setdefault(s.name, {})[key] = out.get(s.name, {}).get(key, 0.0) + s.value
    return out


def test_proxy_routes_and_learns(proxy: Proxy) -> None:
    import openai

    records = read_log(shipped_log(), limit=REQUESTS)
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    )
    deployments = {f"openai/{m}" for m in (*GOOD, BAD)}
    served: list[str] = []
    qualities: dict[str, float] = dict.fromkeys(deployments, 0.0)
    for record in records:
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": record.prompt}]
        )
        completion = raw.parse()
        deployment = raw.headers["x-litellm-model-name"]
        assert deployment in deployments
        quality = record.outcomes[deployment.removeprefix("openai/")].quality
        assert float(raw.headers["llm_provider-x-conduit-quality"]) == quality
        answer = post_feedback(
            proxy.feedback_url, {"response_id": completion.id, "quality": quality}
        )
        assert answer == {"learned": ["quality"]}, (deployment, answer)
        served.append(deployment)
        qualities[deployment] += quality

    # a key the proxy does not accept: refused by the proxy's own auth before Conduit sees it
    # (without a key database LiteLLM 1.110 answers 400 "No connected db.")
    with pytest.raises(urllib.error.HTTPError) as refused:
        post_feedback(proxy.feedback_url, {"response_id": completion.id, "thumbs": True}, "x" * 20)
    assert refused.value.code in (400, 401)
    assert "learned" not in refused.value.read().decode()

    per_model = Counter(served)
    assert len(per_model) >= 2, per_model  # it chose, rather than always the same one
    want = {model: float(n) for model, n in per_model.items()}
    for url, headers in (
        (proxy.metrics_url, None),
        (f"{proxy.url}/metrics", {"Authorization": f"Bearer {MASTER_KEY}"}),
    ):
        metrics = scrape(url, headers)
        assert metrics["conduit_decisions_total"] == want, url
        assert metrics["conduit_feedback_total"]["quality/explicit"] == REQUESTS, url
    sums = wait_for_state(proxy.state_path, per_model)
    for model in per_model:
        assert sums[model]["quality_sum"] == pytest.approx(qualities[model])
        assert sums[model]["cost_sum"] > 0
    half = REQUESTS // 2
    early, late = Counter(served[:half]), Counter(served[half:])
    bad = f"openai/{BAD}"
    assert late[bad] / half < 0.1, (early, late)
    assert late[bad] < early[bad], (early, late)

    # A target per request, in the request's metadata, routes under its own controller
    # (part of the saved state); a bad one is refused with the reason, and routes nothing.
    floor = {"metadata": {"conduit_preferences": {"quality_floor": 0.9}}}
    for record in records[:TARGETED]:
        completion = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": record.prompt}], extra_body=floor
        )
        post_feedback(proxy.feedback_url, {"response_id": completion.id, "quality": 1.0})
    with pytest.raises(openai.BadRequestError, match="at most one target"):
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"metadata": {"conduit_preferences": {"budget": 0.2, "quality_floor": 0.9}}},
        )
    targets = wait_for_targets(proxy.state_path, "quality_floor=0.9", TARGETED)
    assert set(targets) == {"quality_floor=0.9"}
