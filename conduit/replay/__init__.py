"""Replay evaluation: stream a routing log through a learning router and score it.

>>> from conduit.replay import replay
>>> result = replay(limit=50, embedding_backend="hashing", seed=0)  # the shipped log
>>> result.n, len(result.models)
(50, 11)
>>> oracle = result.baselines.oracle
>>> result.policy.regret_vs_oracle == oracle.mean_quality - result.policy.mean_quality
True
"""

from conduit.replay._loop import (
    ALL_LABELS,
    DEFAULT_ALGORITHM,
    DEFAULT_PREFERENCE,
    DEFAULT_TIME_STEP,
    SWEEP_COST_WEIGHTS,
    Labels,
    ReplayData,
    baselines,
    load,
    replay,
    sweep,
)
from conduit.replay._metrics import apgr, cpt, pgr
from conduit.replay._report import (
    Baselines,
    LearningCurve,
    Level,
    PolicySummary,
    ReplayResult,
    SweepPoint,
    SweepResult,
    format_replay,
    format_sweep,
)
from conduit.replay.log import DEFAULT_LOG, LogRecord, Outcome, iter_log, read_log, shipped_log

__all__ = [
    "ALL_LABELS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_LOG",
    "DEFAULT_PREFERENCE",
    "DEFAULT_TIME_STEP",
    "SWEEP_COST_WEIGHTS",
    "Baselines",
    "Labels",
    "LearningCurve",
    "Level",
    "LogRecord",
    "Outcome",
    "PolicySummary",
    "ReplayData",
    "ReplayResult",
    "SweepPoint",
    "SweepResult",
    "apgr",
    "baselines",
    "cpt",
    "format_replay",
    "format_sweep",
    "iter_log",
    "load",
    "pgr",
    "read_log",
    "replay",
    "shipped_log",
    "sweep",
]
