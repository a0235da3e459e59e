from __future__ import annotations

import subprocess
import sys

import conduit.simulator


def test_every_exported_name_resolves() -> None:
    public = {n for n in vars(conduit.simulator) if not n.startswith("_")} - {"annotations"}
    modules = {"catalog", "command", "server", "TYPE_CHECKING", "Any"}
    assert public - modules <= set(conduit.simulator.__all__)
    for name in conduit.simulator.__all__:
        assert getattr(conduit.simulator, name) is not None, name


def test_importing_the_package_does_not_import_aiohttp() -> None:
    """The CLI imports the argument helpers for every command; aiohttp only when serving."""
    code = (
        "import sys, conduit.simulator, conduit._demo; "
        "print('aiohttp' in sys.modules, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
