"""Every docstring example in both packages runs, each module imported once by its real name.

(pytest's own ``--doctest-modules`` would import the package files a second time
under ``--import-mode=importlib``, so ``isinstance`` checks across the copies fail.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import conduit
import conduit_litellm


def _modules() -> list[str]:
    names = []
    for package in (conduit, conduit_litellm):
        names.append(package.__name__)
        prefix = package.__name__ + "."
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix)]
    return sorted(names)


MODULES = _modules()


def test_the_packages_have_examples() -> None:
    examples = sum(
        len(t.examples)
        for name in MODULES
        for t in doctest.DocTestFinder().find(importlib.import_module(name), name)
    )
    assert examples >= 50


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
