"""End to end: LiteLLM -> HTTP -> simulator, with Conduit routing, against the engine's replay.

The same 1,000 RouterBench queries, in the same seeded order, go once through
``litellm.Router.acompletion`` with ``ConduitRoutingStrategy`` (feedback from
the answers' logged quality, cost from LiteLLM's ``response_cost``, several
requests in flight) and once through :func:`conduit.replay.replay` (the engine
alone, feedback immediately). Both run the hybrid policy; the engine under seeds
0-4, compared by their mean.

Noise, measured: replaying this subset with seeds 0-7 gave mean quality
0.842-0.886 (mean 0.874, sd 0.016) and mean cost 0.000366-0.000437 USD (sd 7%);
three runs through LiteLLM (seed 0, 8 requests in flight, so the order in which
feedback lands varies) gave 0.846, 0.883, 0.887 and one in CI 0.827. The
difference between one served run and the mean of 5 replays has an sd of about
0.02, so the served run must land within 0.05 quality (2.5 sd) and 20% cost
(about 3 sd) of the replays' mean.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conduit._demo import run
from conduit.replay._loop import load, replay
from conduit.replay.log import read_log, shipped_log

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
        json.dumps(
            {
                "id": r.id,
                "prompt": r.prompt,
                "task": r.task,
                "outcomes": {
                    m: {"quality": o.quality, "cost": o.cost} for m, o in r.outcomes.items()
                },
            }
        )
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
    data = load(subset)
    replays = [replay(data, algorithm="hybrid", seed=seed) for seed in range(5)]
    engine = replays[0]
    quality = sum(r.policy.mean_quality for r in replays) / len(replays)
    cost = sum(r.policy.mean_cost or 0.0 for r in replays) / len(replays)

    print(
        f"\nthrough LiteLLM: quality {served.conduit.mean_quality:.4f}, "
        f"cost {served.conduit.mean_cost:.6f}, {served.seconds:.1f} s; "
        f"engine replays (mean of 5 seeds): quality {quality:.4f}, cost {cost:.6f}"
    )
    assert served.n == engine.n == N
    assert served.failed == 0 and served.learned == N
    assert served.oracle.mean_quality == pytest.approx(engine.baselines.oracle.mean_quality)
    assert served.strongest.model == engine.baselines.best_single.model

    assert served.conduit.mean_quality == pytest.approx(quality, abs=0.05)
    assert served.conduit.mean_cost is not None
    assert served.conduit.mean_cost == pytest.approx(cost, rel=0.20)
    # Both learned to spend far less than the strongest model for most of its quality.
    assert served.cost_saving > 0.5
    assert served.conduit.mean_quality > 0.8 * served.strongest.mean_quality
