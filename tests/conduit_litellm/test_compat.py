"""Only conduit_litellm/_compat.py touches LiteLLM's internals; the fallback is LiteLLM's own."""

from __future__ import annotations

import ast
import functools
import random
from pathlib import Path
from typing import Any

import litellm
import pytest

from conduit_litellm import _compat

PACKAGE = Path(_compat.__file__).parent
#: LiteLLM's private fields, proxy globals and version-dependent router members.
INTERNAL_ATTRIBUTES = frozenset(
    {
        "_hidden_params",
        "llm_router",
        "modules",  # sys.modules[...]
        "cooldown_cache",
        "model_list",
        "registry",
        "register_plugin",
        "set_custom_routing_strategy",
        "get_model_list",
        "logging_callback_manager",
        "_custom_strategy",
    }
)
INTERNAL_STRINGS = frozenset(
    {
        "_hidden_params",
        "standard_logging_object",
        "routing_plugin_signals",
        "llm_router",
        "litellm.proxy.proxy_server",
    }
)


def touches(path: Path) -> list[str]:
    """Where a module names a LiteLLM internal in code (docstrings and comments may)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in INTERNAL_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value in INTERNAL_STRINGS
        ):
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("litellm.proxy", "litellm.router_strategy", "litellm.litellm_core_utils")
        ):
            found.append(f"{path.name}:{node.lineno} from {node.module}")
    return found


def test_only_compat_touches_litellm_internals() -> None:
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name != "_compat.py")
    assert modules, PACKAGE
    offending = [hit for path in modules for hit in touches(path)]
    assert offending == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Mentions _hidden_params in a docstring: fine."""\n'
        "import sys\n"
        "x = response._hidden_params\n"
        "y = kwargs['standard_logging_object']\n"
        "z = sys.modules.get('litellm.proxy.proxy_server')\n"
    )
    assert sorted(touches(sample)) == [
        "sample.py:3 ._hidden_params",
        "sample.py:4 'standard_logging_object'",
        "sample.py:5 'litellm.proxy.proxy_server'",
        "sample.py:5 .modules",
    ]


def test_the_fallback_is_litellms_own_simple_shuffle(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.router_strategy import simple_shuffle as module

    calls: list[Any] = []
    real = module.simple_shuffle

    @functools.wraps(real)
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "simple_shuffle", spy)
    deployments = [
        {
            "model_name": "g",
            "litellm_params": {"model": "openai/a", "weight": 1},
            "model_info": {"id": "a"},
        },
        {
            "model_name": "g",
            "litellm_params": {"model": "openai/b", "weight": 0},
            "model_info": {"id": "b"},
        },
    ]
    router = litellm.Router(model_list=[dict(d) for d in deployments])  # 1.74.9 logs through it
    picks = {
        _compat.simple_shuffle(router, deployments, "g", {}, random.Random(0))["model_info"]["id"]
        for _ in range(20)
    }
    assert picks == {"a"}  # weights honoured
    assert len(calls) == 20
