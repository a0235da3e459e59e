"""The judge through LiteLLM, against the simulator over HTTP: sampled, budgeted, never routed."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest

from conduit.judge import Judge
from conduit.metrics import Metrics
from conduit.simulator import Simulator
from conduit_litellm import ConduitRoutingStrategy, _compat

pytestmark = pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")

#: prompt -> {model: (quality, cost)}
LOG = {
    f"Question {i}: explain topic {i} carefully.": {
        "small": (float(i % 2), 0.0001), "large": (1.0, 0.0100)
    }
    for i in range(12)
}  # fmt: skip
PROMPTS = list(LOG)


@pytest.fixture(autouse=True)
def collect_garbage(restore_litellm: None) -> Iterator[None]:
    yield
    gc.collect()  # anything left unclosed warns here, in this test, as an error


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    path = tmp_path / "log.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": p, "task": "t",
                        "outcomes": {m: {"quality": q, "cost": c} for m, (q, c) in o.items()}})
            + "\n"
            for i, (p, o) in enumerate(LOG.items())
        ),
        encoding="utf-8",
    )  # fmt: skip
    with Simulator(path, seed=0) as simulator:
        yield simulator


def deployment(group: str, model: str, api_base: str, price: float, **extra: Any) -> Any:
    return {
        "model_name": group,
        "model_info": {"id": f"{group}-{model}"},
        "litellm_params": {
            "model": f"openai/{model}", "api_base": api_base, "api_key": "sk-test",
            "input_cost_per_token": price, "output_cost_per_token": price, **extra,
        },
    }  # fmt: skip


def setup(
    sim: Simulator, judge: Judge, judge_deployment: Any = None, **options: Any
) -> tuple[Any, ConduitRoutingStrategy]:
    models = [
        deployment("tiny", m, sim.base_url, sim.price_per_token(m)) for m in ("small", "large")
    ]
    judge_deployment = judge_deployment or deployment(
        "judge", "large", sim.base_url, sim.price_per_token("large")
    )
    router = litellm.Router(model_list=[*models, judge_deployment])
    options.setdefault("signal_grace", 0.0)
    options.setdefault("scope", "group")  # the judge's group is no arm of the routed one
    strategy = ConduitRoutingStrategy(
        use_hybrid=None, bandit_algorithm="ucb1", embedding_backend="hashing", seed=0,
        judge=judge, **options,
    )  # fmt: skip
    ConduitRoutingStrategy.setup_strategy(router, strategy)
    return router, strategy


def ask(router: Any, n: int, **kwargs: Any) -> list[Any]:
    return [
        router.completion(
            model="tiny", messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            **kwargs,
        )
        for i in range(n)
    ]  # fmt: skip


def wait_events(strategy: ConduitRoutingStrategy, n: int) -> None:
    import time

    for _ in range(500):
        if strategy.feedback.stats()["learned"] >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"only {strategy.feedback.stats()} of {n} events")


def test_sampling_rate_is_honoured_and_judge_calls_are_neither_routed_nor_learned(
    sim: Simulator,
) -> None:
    judge = Judge("judge", sample_rate=0.25, uncertain_sampling=False, seed=1)
    router, strategy = setup(sim, judge)
    try:
        responses = ask(router, 24)
        wait_events(strategy, 24)
        strategy.judge.close()
        stats = strategy.stats()
        conduit = strategy.conduit_router
        assert conduit is not None
        assert stats["judge.sampled"] == 6 and stats["judge.graded"] == 6
        assert sum(sim.judged.values()) == 6 and set(sim.judged) == {"large"}
        # the judge's calls went to the judge group only, and Conduit decided nothing for them
        assert sum(sim.served.values()) == 24
        assert conduit.stats().total_decisions == 24
        assert conduit.stats().total_feedback == 6  # qualities: the judge's grades only
        assert stats["learned"] == 24  # cost and latency of the 24 routed calls, not the judge's
        assert stats["judge.cost"] > 0 and "routing_saved" in stats
        # labels by source, and the judge's calls and cost, kept by the router (and its store)
        assert stats["feedback.judge"] == 6 and stats["feedback.none"] == 24
        assert stats["feedback.explicit"] == stats["feedback.automatic"] == 0
        counters = conduit.stats().counters
        assert counters["judge_calls"] == 6 and counters["judge_sampled"] == 6
        assert counters["judge_cost"] == pytest.approx(stats["judge.cost"])
        assert all(r.choices[0].message.content.startswith("Simulated") for r in responses)
    finally:
        strategy.cleanup()


def test_the_judges_grade_is_the_logged_quality(sim: Simulator) -> None:
    judge = Judge("judge", sample_rate=1.0, seed=0)
    router, strategy = setup(sim, judge)
    try:
        responses = ask(router, 12)
        wait_events(strategy, 12)
        strategy.judge.close()
        conduit = strategy.conduit_router
        assert conduit is not None
        logged: dict[str, list[float]] = {}
        for prompt, response in zip(PROMPTS, responses, strict=True):
            arm = response._hidden_params["model_id"]
            logged.setdefault(arm, []).append(LOG[prompt][arm.removeprefix("tiny-")][0])
        stats = conduit.stats().models
        for arm, qualities in logged.items():  # a noiseless judge grades exactly the log
            assert stats[arm].feedback == len(qualities)
            assert stats[arm].mean_quality == pytest.approx(sum(qualities) / len(qualities))
    finally:
        strategy.cleanup()


def test_budget_pauses_sampling(sim: Simulator) -> None:
    one_call = sim.price_per_token("large") * 400  # more than one judge call costs
    judge = Judge("judge", sample_rate=1.0, max_cost_per_hour=one_call, max_queue=1, seed=0)
    router, strategy = setup(sim, judge)
    try:
        for i in range(10):
            ask(router, 1)
            wait_events(strategy, i + 1)
        strategy.judge.close()
        stats = strategy.stats()
        assert stats["judge.paused_budget"] + stats["judge.paused_queue"] > 0
        conduit = strategy.conduit_router
        assert conduit is not None
        counters = conduit.stats().counters
        assert counters["judge_paused_budget"] == stats["judge.paused_budget"]
        assert counters["judge_paused_queue"] == stats["judge.paused_queue"]
        assert stats["judge.graded"] < 10
        # spending stops once the hour's budget is reached: at most the calls in flight beyond it
        assert stats["judge.cost"] <= one_call * 2
    finally:
        strategy.cleanup()


def test_explicit_feedback_outranks_a_judge_grade(sim: Simulator) -> None:
    judge = Judge("judge", sample_rate=1.0, seed=0)
    router, strategy = setup(sim, judge, signal_grace=300.0)
    try:
        responses = ask(router, 6)
        wait_events(strategy, 6)
        strategy.judge.close()  # every grade is in, held for the explicit window
        assert strategy.stats()["judge.graded"] == 6
        for response in responses:
            assert strategy.record_feedback(response, quality=0.125) == frozenset({"quality"})
        strategy.feedback.apply_due_signals(everything=True)
        conduit = strategy.conduit_router
        assert conduit is not None
        learned = [s for s in conduit.stats().models.values() if s.feedback]
        assert sum(s.feedback for s in learned) == 6
        assert all(s.mean_quality == pytest.approx(0.125) for s in learned)
        assert strategy.stats()["feedback.explicit"] == 6
        assert strategy.stats()["feedback.judge"] == 0
    finally:
        strategy.cleanup()


def test_a_judge_grade_is_learned_when_no_explicit_feedback_comes(sim: Simulator) -> None:
    judge = Judge("judge", sample_rate=1.0, seed=0)
    router, strategy = setup(sim, judge, signal_grace=300.0)
    try:
        ask(router, 4)
        wait_events(strategy, 4)
        strategy.judge.close()
        conduit = strategy.conduit_router
        assert conduit is not None
        assert conduit.stats().total_feedback == 0  # held: the explicit window is open
        strategy.feedback.apply_due_signals(everything=True)
        assert conduit.stats().total_feedback == 4
    finally:
        strategy.cleanup()


@pytest.mark.parametrize(
    ("judge_deployment", "counter"),
    [
        ({"api_base": "http://127.0.0.1:9/v1", "max_retries": 0}, "errors"),  # nothing listens
        ({"mock_response": "The answer looks fine to me."}, "garbage"),
        ({"mock_response": '{"grade": 11, "reason": "great"}'}, "garbage"),
    ],
)
def test_a_failing_or_garbage_judge_never_affects_a_request(
    sim: Simulator, judge_deployment: dict[str, Any], counter: str
) -> None:
    judge = Judge("judge", sample_rate=1.0, seed=0, timeout=10.0)
    bad = deployment("judge", "large", sim.base_url, 1e-6)
    bad["litellm_params"].update(judge_deployment)
    router, strategy = setup(sim, judge, bad)
    try:
        responses = ask(router, 5)
        wait_events(strategy, 5)
        strategy.judge.close()
        stats = strategy.stats()
        assert all(r.choices[0].message.content.startswith("Simulated") for r in responses)
        assert stats[f"judge.{counter}"] == 5 and stats["judge.graded"] == 0
        conduit = strategy.conduit_router
        assert conduit is not None and conduit.stats().total_feedback == 0
        assert conduit.stats().counters[f"judge_{counter}"] == 5  # dropped, counted
    finally:
        strategy.cleanup()


def test_a_slow_judge_times_out_and_never_affects_a_request(sim: Simulator, tmp_path: Path) -> None:
    with Simulator(sim.catalog, latency_ms=3000.0, seed=0) as slow:
        judge = Judge("judge", sample_rate=1.0, seed=0, timeout=0.2)
        slow_judge = deployment("judge", "large", slow.base_url, 1e-6)
        router, strategy = setup(sim, judge, slow_judge)
        try:
            responses = ask(router, 3)
            wait_events(strategy, 3)
            strategy.judge.close(timeout=60)
            stats = strategy.stats()
            assert len(responses) == 3
            assert stats["judge.timeouts"] == 3 and stats["judge.graded"] == 0
        finally:
            strategy.cleanup()


def test_shadow_comparison_asks_the_dearest_deployment(sim: Simulator) -> None:
    judge = Judge("judge", sample_rate=1.0, shadow_rate=1.0, seed=0)
    router, strategy = setup(sim, judge)
    try:
        ask(router, 8)
        wait_events(strategy, 8)
        strategy.judge.close()
        stats = strategy.stats()
        conduit = strategy.conduit_router
        assert conduit is not None
        decided = conduit.stats().models
        small_answers = decided["tiny-small"].decisions
        assert stats["judge.shadow_graded"] == small_answers  # large vs itself: a plain grade
        assert stats["judge.graded"] == decided["tiny-large"].decisions
        assert sum(sim.judged.values()) == 2 * small_answers + decided["tiny-large"].decisions
        assert sim.served["large"] == decided["tiny-large"].decisions + small_answers
        assert stats["feedback.shadow"] == small_answers
    finally:
        strategy.cleanup()


def test_a_regenerated_answer_gets_a_low_quality(sim: Simulator) -> None:
    judge = Judge("judge", sample_rate=0.0, seed=0)
    router, strategy = setup(sim, judge)
    try:
        ask(router, 1, user="alice")
        wait_events(strategy, 1)
        ask(router, 1, user="alice")  # the same message again: the first answer failed her
        wait_events(strategy, 2)
        conduit = strategy.conduit_router
        assert conduit is not None
        learned = [s for s in conduit.stats().models.values() if s.feedback]
        assert [s.mean_quality for s in learned] == [0.2]
        assert strategy.stats()["judge.regenerations"] == 1
        assert strategy.stats()["feedback.regeneration"] == 1
    finally:
        strategy.cleanup()


def test_judge_metrics(sim: Simulator) -> None:
    metrics = Metrics()
    judge = Judge("judge", sample_rate=1.0, seed=0)
    router, strategy = setup(sim, judge, metrics=metrics)
    try:
        ask(router, 3)
        wait_events(strategy, 3)
        strategy.judge.close()
        assert metrics.value("conduit_judge_events_total", event="graded") == 3
        assert metrics.value("conduit_judge_calls_total") == 3
        cost = metrics.value("conduit_judge_cost_dollars_total")
        assert cost is not None and cost == pytest.approx(strategy.stats()["judge.cost"])
        assert metrics.value("conduit_feedback_total", kind="quality", source="judge") == 3
    finally:
        strategy.cleanup()


@pytest.mark.parametrize("configured", ["keyword", "environment"])
async def test_the_proxy_plugin_judges_too(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin's router refuses sync calls: its judge calls go through ``acompletion``.
    Configured by ``judge=`` or, as in the proxy's config, by ``CONDUIT_JUDGE_*`` variables
    (the config's ``environment_variables:``) and ``conduit_litellm.plugin.default``."""
    import asyncio
    import time

    from litellm.proxy.types_utils.utils import get_instance_fn

    from conduit_litellm import ConduitRoutingPlugin
    from conduit_litellm import plugin as plugin_module

    if not _compat.has_registry(litellm.Router(model_list=[])):
        pytest.skip("this LiteLLM has no routing plugins")
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    # Earlier tests' queued logging events move onto this loop: handle them before this
    # plugin's logger is registered, so it sees only this test's requests.
    await GLOBAL_LOGGING_WORKER.flush()
    if configured == "keyword":
        plugin = ConduitRoutingPlugin(
            embedding_backend="hashing", seed=0, bandit_algorithm="random",
            state_store="memory://", judge=Judge("judge", sample_rate=1.0, seed=0),
        )  # fmt: skip
    else:
        environ = {
            "CONDUIT_EMBEDDING_BACKEND": "hashing", "CONDUIT_SEED": "0",
            "CONDUIT_BANDIT_ALGORITHM": "random", "CONDUIT_STATE_URL": "memory://",
            "CONDUIT_JUDGE_MODEL": "judge", "CONDUIT_JUDGE_SAMPLE_RATE": "1.0",
            "CONDUIT_JUDGE_MAX_COST_PER_HOUR": "5", "CONDUIT_JUDGE_MAX_COST_PER_DAY": "50",
        }  # fmt: skip
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(plugin_module, "_default", None)
        plugin = get_instance_fn("conduit_litellm.plugin.default")  # as the proxy loads it
        judge = plugin.judge.judge
        assert judge is not None and judge.model == "judge" and judge.sample_rate == 1.0
        assert (judge.max_cost_per_hour, judge.max_cost_per_day) == (5.0, 50.0)
    model_list = [
        {"model_name": "chat", "litellm_params": {"model": m, "mock_response": "Paris."}}
        for m in ("gpt-4o-mini", "gpt-4o")
    ] + [
        {"model_name": "judge",
         "litellm_params": {"model": "gpt-4o", "mock_response": '{"grade": 4, "reason": "ok"}'}}
    ]  # fmt: skip
    router = litellm.Router(model_list=model_list, plugins=[plugin])
    plugin.bind(router)
    try:
        for i in range(4):
            await router.acompletion(
                model="chat", messages=[{"role": "user", "content": f"Question number {i}?"}]
            )
        deadline = time.monotonic() + 120  # a hang, not a slow machine
        while plugin.feedback.stats()["learned"] < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            await GLOBAL_LOGGING_WORKER.flush()
        while plugin.stats()["judge.graded"] < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the judge's calls run on this loop
        stats = plugin.stats()
        assert stats["judge.graded"] == 4 and stats["judge.errors"] == 0
        conduit = plugin.conduit_router
        assert conduit is not None
        assert set(conduit.models) == {"gpt-4o-mini", "gpt-4o"}  # the judge's calls: no arm
        assert conduit.stats().total_decisions == 4
        plugin.feedback.apply_due_signals(everything=True)
        assert conduit.stats().total_feedback == 4
        assert all(s.mean_quality == 0.75 for s in conduit.stats().models.values() if s.feedback)
    finally:
        plugin.cleanup()


def test_the_strategy_reads_the_judge_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDUIT_JUDGE_MODEL", "judge")
    monkeypatch.setenv("CONDUIT_JUDGE_SAMPLE_RATE", "0.2")
    monkeypatch.setenv("CONDUIT_JUDGE_MAX_COST_PER_HOUR", "1.5")
    strategy = ConduitRoutingStrategy(embedding_backend="hashing")
    judge = strategy.judge.judge
    assert judge is not None and (judge.model, judge.sample_rate) == ("judge", 0.2)
    assert judge.max_cost_per_hour == 1.5 and judge.max_cost_per_day is None
    given = Judge("other", sample_rate=0.5)
    assert ConduitRoutingStrategy(embedding_backend="hashing", judge=given).judge.judge is given
