"""The standalone code blocks of the usage guide, the README and docs/standalone.md, run as written.

Each block is read from the Markdown and run in a fresh interpreter, with a dummy
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` pointing at a local endpoint over real
HTTP: for the guide's migration blocks the simulator (which answers the guide's
model names with logged models); for the structured-output examples an invoice
endpoint (below) that answers every output tool with an invoice, a valid one from
``gpt-4o`` and one whose total fails validation from ``gpt-4o-mini``. The only
edit: the guide's ``model_list=[...]`` placeholder becomes one simulated
deployment. Lines appended after a block check what its prose says it does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conduit.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "litellm-plugin-usage-guide.md"
STANDALONE = ROOT / "docs" / "standalone.md"
README = ROOT / "README.md"

#: The guide's model names, each answering with a model of the shipped RouterBench log.
ALIASES = {"gpt-4o-mini": "gpt-3.5-turbo-1106", "gpt-4o": "gpt-4-1106-preview"}


def python_blocks(path: Path, heading: str) -> list[str]:
    """The ``python`` blocks of the section of ``path`` under ``heading`` (to the next heading
    of the same or a higher level; a ``#`` line inside a fence is code, not a heading)."""
    level = 0
    blocks: list[str] = []
    fence: list[str] | None = None
    language = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, language = [], line[3:].strip()
            else:
                if level and language == "python":
                    blocks.append("\n".join(fence) + "\n")
                fence = None
            continue
        if fence is not None:
            fence.append(line)
            continue
        found = re.match(r"^(#+) (.*)$", line)
        if found and level and len(found.group(1)) <= level:
            break
        if found and found.group(2).strip() == heading:
            level = len(found.group(1))
    assert level, f"{path.name} has no section {heading!r}"
    return blocks


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(aliases=ALIASES, seed=0) as simulator:
        yield simulator


#: What the invoice endpoint's models put in the output tool's arguments.
INVOICES = {
    "gpt-4o": {"number": "INV-7", "total": 13.5},
    "gpt-4o-mini": {"number": "INV-7", "total": "13.50 USD"},  # fails validation: not a float
}


class _InvoiceHandler(BaseHTTPRequestHandler):
    """An OpenAI chat-completions endpoint that calls the first tool it is offered."""

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = payload["model"]
        tools = payload.get("tools") or []
        message: dict[str, Any] = {"role": "assistant", "content": f"{model} says hello"}
        if tools:
            call = {"name": tools[0]["function"]["name"], "arguments": json.dumps(INVOICES[model])}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
            }
        body = json.dumps(
            {
                "id": "chatcmpl-invoice",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if tools else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def invoices() -> Iterator[str]:
    """The invoice endpoint's base URL, served from a thread on loopback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _InvoiceHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_block(code: str, base_url: str, check: str = "") -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-dummy",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + check],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_guide_migration_blocks_are_found() -> None:
    blocks = python_blocks(GUIDE, "Migration Path")
    assert [b.splitlines()[0] for b in blocks] == [
        "# Before (LiteLLM plugin)",
        "# Before (Standalone)",
    ]


def test_migration_litellm_to_standalone(sim: Simulator) -> None:
    code = python_blocks(GUIDE, "Migration Path")[0]
    deployment = (
        '[{"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", '
        f'"api_base": "{sim.base_url}", "api_key": "sk-dummy"}}}}]'
    )
    assert code.count("model_list=[...]") == 1
    code = code.replace("model_list=[...]", f"model_list={deployment}")
    before = sum(sim.served.values())
    out = run_block(
        code,
        sim.base_url,
        check=(
            "stats = router.stats()\n"
            "assert stats.total_decisions == 1 and stats.total_feedback == 1, stats\n"
            "strategy.cleanup()\n"
        ),
    )
    assert out.strip()  # the answer was printed
    assert sum(sim.served.values()) == before + 1  # over HTTP, by the simulator


def test_migration_standalone_to_litellm(sim: Simulator) -> None:
    code = python_blocks(GUIDE, "Migration Path")[1]
    run_block(
        code,
        sim.base_url,
        check=(
            "from conduit.pydantic_ai import ConduitModel\n"
            "assert isinstance(agent.model, ConduitModel) and agent.model.router is router\n"
            "strategy.cleanup()\n"
        ),
    )


def test_the_readme_standalone_example(invoices: str) -> None:
    (code,) = python_blocks(README, "Standalone, with PydanticAI")
    out = run_block(code, invoices)
    assert out.strip() == "number='INV-7' total=13.5"  # what the comment says


def test_the_standalone_guide_learns_which_model_validates(invoices: str) -> None:
    first, second = python_blocks(STANDALONE, "Usage")
    out = run_block(first, invoices)
    rows = dict(re.findall(r"^(\S+)\s+pulls=\s*\d+\s+quality=(\S+)$", out, re.MULTILINE))
    assert rows == {"openai-chat:gpt-4o-mini": "0.00", "openai-chat:gpt-4o": "1.00"}, out
    out = run_block(first + "\n" + second, invoices)
    # explain() says which model gave the accepted invoice, and why
    assert out.splitlines()[-1].startswith("openai-chat:gpt-4o: ")
