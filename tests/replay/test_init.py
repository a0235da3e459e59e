from __future__ import annotations

import inspect

import conduit.replay as replay_pkg
from conduit.replay import _loop as loop
from conduit.replay import _metrics as metrics
from conduit.replay import _report as report
from conduit.replay import log


def test_public_names_are_exported_and_sorted() -> None:
    assert replay_pkg.__all__ == sorted(replay_pkg.__all__, key=lambda s: (not s.isupper(), s))
    for name in replay_pkg.__all__:
        assert hasattr(replay_pkg, name), name
    modules = (log, loop, report)
    public = {n for m in modules for n in m.__all__}
    assert public <= set(replay_pkg.__all__)
    assert {"apgr", "cpt", "pgr"} <= set(metrics.__all__) & set(replay_pkg.__all__)


def test_replay_and_sweep_are_keyword_only_after_data() -> None:
    for fn in (replay_pkg.replay, replay_pkg.sweep, replay_pkg.load):
        params = list(inspect.signature(fn).parameters.values())
        assert params[0].name == "data"
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
