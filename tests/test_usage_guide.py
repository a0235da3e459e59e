"""What the usage guide and the other docs claim, checked against the code.

The guide's Python blocks themselves run from the Markdown file (sybil, ``docs/conftest.py``),
so no block is copied here. These tests check what cannot be run: the feature count it
quotes, its links, its model names, its install lines (and every other doc's), and that each
Python block is either run or skipped with a reason.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "litellm-plugin-usage-guide.md"
#: Every file a user reads install commands from.
INSTALL_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                *sorted((ROOT / "examples").iterdir())]  # fmt: skip


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def distribution() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return str(project["name"])


def test_the_distribution_is_not_the_unrelated_conduit_on_the_package_index() -> None:
    assert distribution() == "conduit-router"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    self_references = [r for reqs in extras.values() for r in reqs if r.startswith("conduit")]
    assert self_references and all(r.startswith("conduit-router[") for r in self_references)


@pytest.mark.parametrize("doc", INSTALL_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_install_line_names_this_distribution_or_the_source_tree(doc: Path) -> None:
    """``pip install conduit[...]`` would install an unrelated 2019 package."""
    for line in doc.read_text(encoding="utf-8").splitlines():
        for match in re.finditer(r"pip install\s+(.*)", line):
            command = match.group(1).split("#", 1)[0]  # not the comment
            for arg in re.findall(r"""["']?([\w.\-]+(?:\[[\w,]+\])?[^\s"']*)""", command):
                name = re.split(r"[\[<>=!~ ]", arg, maxsplit=1)[0].lower()
                if name.startswith("conduit"):
                    assert name == distribution(), f"{doc.name}: {line.strip()!r}"


def test_the_guide_quotes_the_feature_count_the_code_uses() -> None:
    from conduit.engines.features._extractor import FeatureExtractor
    from conduit.engines.features._metadata import METADATA_NAMES

    projection = inspect.signature(FeatureExtractor).parameters["projection_dim"].default
    flags = len(METADATA_NAMES)
    total = projection + flags + 1  # and a bias term
    text = " ".join(guide().split())
    assert (
        f"see {total} features per query: the embedding projected to {projection} "
        f"dimensions, {flags} flags"
    ) in text
    assert "387" not in text and "384 embedding" not in text


def test_the_guide_links_only_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#\s]+)[^)]*\)", guide()):
        if "://" in target:
            continue
        assert (GUIDE.parent / target).exists(), f"the guide links to a missing {target}"
    for name in ("ARCHITECTURE.md", "BANDIT_ALGORITHMS.md", "LITELLM_INTEGRATION.md",
                 "tests/unit"):  # fmt: skip
        assert name not in guide()


def test_the_guides_model_names_are_ones_litellm_accepts_as_written() -> None:
    litellm = pytest.importorskip("litellm", reason="the litellm extra is not installed")
    spec = importlib.util.spec_from_file_location("guide_conftest", ROOT / "docs" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    aliases: dict[str, str] = module.ALIASES

    names = set(re.findall(r'"model": "([^"]+)"', guide()))
    assert names, "the guide names no model"
    assert names <= set(aliases), "a model the simulator behind the guide does not serve"
    for name in names:
        _, provider, _, _ = litellm.get_llm_provider(name)
        assert provider in ("openai", "anthropic", "gemini", "groq"), name
        assert "claude" not in name or name.startswith("anthropic/"), (
            f"{name}: LiteLLM 1.110's cost map no longer knows it without its provider"
        )


def test_every_python_block_runs_or_is_skipped_with_a_reason() -> None:
    text = guide()
    blocks = [m.start() for m in re.finditer(r"^```python$", text, re.M)]
    skips = re.findall(r'^<!-- skip: next "([^"]+)" -->\n(?=```python)', text, re.M)
    assert blocks and len(skips) == 2, "only the standalone/migration blocks are skipped"
    assert all("tests/pydantic_ai/test_guide_blocks.py" in reason for reason in skips)
