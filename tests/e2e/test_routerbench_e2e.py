"""End to end: LiteLLM -> HTTP -> simulator, with Conduit routing, against the engine's replay.

The same 1,000 RouterBench queries, in the same seeded order, go once through
``litellm.Router.acompletion`` with ``ConduitRoutingStrategy`` (feedback from
the answers' logged quality, cost from LiteLLM's ``response_cost``, several
requests in flight) and once through :func:`conduit.replay.replay` (the engine
alone, feedback immediately). Both run the hybrid policy under seed 0.

Noise: replaying this subset with seeds 0-5 gave mean quality 0.826-0.855 (sd
0.010) and mean cost 0.000434-0.000497 USD (sd 5%). The plugin path may differ
by delayed feedback and LiteLLM's token-priced cost, so it must land within
0.03 quality (3 sd) and 20% cost (4 sd) of the replay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conduit.demo import run
from conduit.replay.log import read_log, shipped_log
from conduit.replay.loop import replay

N = 1000

pytestmark = [
    pytest.mark.slow,
    # LiteLLM imports its GitHub Copilot provider lazily; pydantic warns about its TypedDicts.
    pytest.mark.filterwarnings("ignore:Item.*ReadOnly. qualifier:UserWarning"),
]


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first N records of the shipped log, as a log of their own."""
    path = tmp_path_factory.mktemp("e2e") / "routerbench-1000.jsonl"
    lines = [
        json.dumps({
            "id": r.id, "prompt": r.prompt, "task": r.task,
            "outcomes": {m: {"quality": o.quality, "cost": o.cost} for m, o in r.outcomes.items()},
        })
        for r in read_log(shipped_log(), limit=N)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_conduit_through_litellm_matches_the_engine_replay(subset: Path) -> None:
    try:
        from conduit_litellm import ConduitRoutingStrategy  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"conduit_litellm.ConduitRoutingStrategy is not importable yet ({exc})")
    served = await run(subset, n=N, seed=0, concurrency=8, progress=False)
    engine = replay(subset, algorithm="hybrid", seed=0)

    print(
        f"\nthrough LiteLLM: quality {served.conduit.mean_quality:.4f}, "
        f"cost {served.conduit.mean_cost:.6f}, {served.seconds:.1f} s; "
        f"engine replay: quality {engine.policy.mean_quality:.4f}, "
        f"cost {engine.policy.mean_cost:.6f}"
    )
    assert served.n == engine.n == N
    assert served.failed == 0 and served.learned == N
    assert served.oracle.mean_quality == pytest.approx(engine.baselines.oracle.mean_quality)
    assert served.strongest.model == engine.baselines.best_single.model

    assert served.conduit.mean_quality == pytest.approx(engine.policy.mean_quality, abs=0.03)
    assert engine.policy.mean_cost is not None and served.conduit.mean_cost is not None
    assert served.conduit.mean_cost == pytest.approx(engine.policy.mean_cost, rel=0.20)
    # Both learned to spend far less than the strongest model for most of its quality.
    assert served.cost_saving > 0.5
    assert served.conduit.mean_quality > 0.8 * served.strongest.mean_quality
