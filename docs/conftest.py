"""Run the usage guide's Python blocks, from the Markdown file itself, against the simulator.

Sybil collects ``litellm-plugin-usage-guide.md``; its Python blocks run in order in one
namespace, top-level ``await`` included (on one event loop kept for the document).
For the duration of the document:

- Conduit's simulator (:class:`conduit.simulator.Simulator`) serves logged outcomes of real
  models under the guide's model names (:data:`ALIASES`);
- ``litellm.Router.__init__`` points every deployment at it (``custom_llm_provider="openai"``,
  the simulator's ``api_base``, a dummy key), so the guide's ``from litellm import Router``
  and its model lists run as written;
- provider keys are dummies, ``CONDUIT_STATE_URL`` is unset and the user data directory
  (where the default state store lives) is a temporary one.

Hidden blocks (``<!-- invisible-code-block: python ... -->``) assert what the visible ones
claim; ``<!-- skip: next "reason" -->`` skips a block, with its reason.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import logging
import os
import shutil
import tempfile
import warnings
from typing import Any

import pytest

litellm = pytest.importorskip("litellm", reason="the litellm extra is not installed")

from sybil import Example, Sybil  # noqa: E402
from sybil.evaluators.python import pad  # noqa: E402
from sybil.parsers.markdown import CodeBlockParser, SkipParser  # noqa: E402

from conduit.simulator import Simulator  # noqa: E402

#: The guide's model names, each answering with a model of the shipped RouterBench log.
ALIASES = {
    "gpt-4o-mini": "gpt-3.5-turbo-1106",
    "gpt-4o": "gpt-4-1106-preview",
    "anthropic/claude-3-haiku-20240307": "claude-instant-v1",
    "anthropic/claude-3-5-sonnet-20241022": "claude-v2",
    "gemini/gemini-2.5-flash": "mistralai/mixtral-8x7b-chat",
    "groq/llama-3.1-8b-instant": "meta/llama-2-70b-chat",
}
GUIDE = "litellm-plugin-usage-guide.md"
_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY")
_ENV = (*_KEYS, "XDG_DATA_HOME", "CONDUIT_STATE_URL")
_CALLBACKS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback",
              "_async_failure_callback")  # fmt: skip
_LOOP = "__guide_loop__"


def evaluate(example: Example) -> None:
    """Run one block; a block with top-level ``await`` runs on the document's loop."""
    source = pad(example.parsed, example.line + example.parsed.line_offset)
    code = compile(source, example.path, "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, True)
    namespace = example.namespace
    if code.co_flags & inspect.CO_COROUTINE:
        namespace[_LOOP].run_until_complete(eval(code, namespace))
    else:
        exec(code, namespace)
    namespace.pop("__builtins__", None)


def setup(namespace: dict[str, Any]) -> None:
    simulator = Simulator(aliases=ALIASES, seed=0)
    simulator.__enter__()  # served from a background thread until teardown
    real_init = litellm.Router.__init__
    served = {"custom_llm_provider": "openai", "api_base": simulator.base_url,
              "api_key": "sk-simulated"}  # fmt: skip

    def simulated_init(self: Any, model_list: list[dict[str, Any]] | None = None,
                       **kwargs: Any) -> None:  # fmt: skip
        """``litellm.Router.__init__`` with every deployment calling the simulator."""
        model_list = [
            {**d, "litellm_params": {**d.get("litellm_params", {}), **served}}
            for d in model_list or []
        ]
        real_init(self, model_list=model_list, **kwargs)

    data_home = tempfile.mkdtemp(prefix="conduit-guide-")
    saved = {
        "simulator": simulator,
        "init": real_init,
        "env": {name: os.environ.get(name) for name in _ENV},
        "callbacks": {n: list(getattr(litellm, n)) for n in _CALLBACKS if hasattr(litellm, n)},
        "levels": {n: logging.getLogger(n).level for n in ("", "conduit_litellm")},
        "data_home": data_home,
    }
    litellm.Router.__init__ = simulated_init  # LiteLLM 1.110 forbids subclassing Router
    os.environ.update({key: "sk-dummy" for key in _KEYS}, XDG_DATA_HOME=data_home)
    os.environ.pop("CONDUIT_STATE_URL", None)
    namespace["__guide_saved__"] = saved
    namespace[_LOOP] = asyncio.new_event_loop()


async def _close_loop_tasks() -> None:
    """Close LiteLLM's clients of this loop, and cancel what still runs on it (LiteLLM's
    logging worker, late callbacks)."""
    await litellm.close_litellm_async_clients()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def teardown(namespace: dict[str, Any]) -> None:
    saved = namespace["__guide_saved__"]
    loop = namespace[_LOOP]
    loop.run_until_complete(_close_loop_tasks())
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    litellm.Router.__init__ = saved["init"]
    saved["simulator"].__exit__(None, None, None)
    for name, value in saved["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for name, value in saved["callbacks"].items():
        getattr(litellm, name)[:] = value
    for name, level in saved["levels"].items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    for handler in root.handlers[:]:  # the guide's logging.basicConfig
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    # LiteLLM keeps clients of loops that are gone (asyncio.run in a block): drop them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        litellm.in_memory_llm_clients_cache.flush_cache()
        gc.collect()
    shutil.rmtree(saved["data_home"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[CodeBlockParser(language="python", evaluator=evaluate), SkipParser()],
    patterns=[GUIDE],
    setup=setup,
    teardown=teardown,
).pytest()
