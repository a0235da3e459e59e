"""Property-based fuzzing (hypothesis) of feature extraction, state loading and feedback.

Derandomized with modest example counts, so CI sees the same few hundred cases every
run in a few seconds. To fuzz harder (random, many more cases):
``CONDUIT_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conduit import ConduitError, InvalidQueryError, Router, StateError
from conduit._state import decode, encode
from conduit.engines.features._extractor import FeatureExtractor, make_embedder
from conduit.engines.router import MAX_COST, MAX_LATENCY
from conduit.stores._base import Snapshot
from conduit_litellm.feedback import ConduitFeedbackLogger

EXAMPLES = int(os.environ.get("CONDUIT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    derandomize=not EXAMPLES,
    max_examples=EXAMPLES or 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Any text, lone surrogates (from JSON "\ud800" escapes) and odd whitespace included.
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
        st.sampled_from(" \t\n\r\x00\u3000\u200b\ufeff"),
    ),
    max_size=400,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


# -- feature extraction ----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["hashing", "static", "onnx"])
def extractor(request: pytest.FixtureRequest) -> FeatureExtractor:
    if request.param == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx backend is not installed")
    return FeatureExtractor(embedder=make_embedder(backend=request.param), cache_size=0)


@FUZZ
@given(text=TEXT)
def test_any_text_is_a_finite_vector_of_the_right_shape(
    extractor: FeatureExtractor, text: str
) -> None:
    x = extractor.features(text)
    assert x.shape == (extractor.dim,)
    assert np.all(np.isfinite(x))
    assert x[-1] == 1.0  # the bias


@FUZZ
@given(text=TEXT)
def test_routing_any_text_decides_or_refuses_blank(text: str) -> None:
    router = Router(["a", "b"], embedding_backend="hashing", seed=0)
    if not text.strip():
        with pytest.raises(InvalidQueryError, match="empty or only whitespace"):
            router.route_sync(text)
        assert router.stats().total_decisions == 0
    else:
        decision = router.route_sync(text)
        assert decision.selected_model in ("a", "b")
        assert 0.0 < decision.propensity <= 1.0
        assert all(math.isfinite(s.utility) for s in decision.scores.values())


# -- state loading ---------------------------------------------------------------------------------
def _trained(algorithm: str) -> Router:
    router = Router(
        ["a", "b", "c"], embedding_backend="hashing", bandit_algorithm=algorithm, seed=0
    )
    for i in range(8):
        decision = router.route_sync(f"question {i}: what is {i} + {i}?")
        router.update_sync(decision.decision_id, quality=(i % 3) / 2, cost=0.001 * i, latency=0.5)
    return router


ALGORITHMS = ["hybrid", "linucb", "thompson", "epsilon_greedy"]
SAVED = {algorithm: _trained(algorithm).state_dict() for algorithm in ALGORITHMS}


def _envelope(payload: Any) -> str:
    """A state file with a correct checksum around any payload (so the payload itself is
    what gets checked, not only the checksum)."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return json.dumps(
        {
            "format": "conduit-state",
            "version": 1,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "payload": payload,
        }
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = _replace(value[path[0]], path[1:], new)
    return copied


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_decode_or_raise_state_error(data: bytes) -> None:
    with contextlib.suppress(StateError):  # the documented refusal: anything else fails
        decode(data)


@FUZZ
@given(payload=JSON)
def test_any_json_payload_loads_or_raises_state_error(payload: Any) -> None:
    router = Router(["a", "b", "c"], embedding_backend="hashing", bandit_algorithm="thompson")
    before = copy.deepcopy(router.state_dict())
    try:
        state = decode(_envelope({"router": payload}))
        router.load_state_dict(state["router"])
    except StateError:
        assert json.dumps(router.state_dict(), default=repr) == json.dumps(before, default=repr)


@FUZZ
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    pick=st.integers(min_value=0),
    new=JSON | st.sampled_from([[], {}, -1, 0, 1e308, "", [[1.0]], {"__ndarray__": {}}]),
)
def test_a_state_with_any_one_field_changed_loads_or_raises_state_error(
    algorithm: str, pick: int, new: Any
) -> None:
    """Structured fuzzing: a real saved state (arrays as base64 JSON) with one field, at
    any depth, replaced by any JSON value; a state that loads still routes."""
    payload = json.loads(encode({"router": SAVED[algorithm]}))["payload"]
    paths = list(_paths(payload))
    mutated = _replace(payload, paths[pick % len(paths)], new)
    router = Router(
        ["a", "b", "c"], embedding_backend="hashing", bandit_algorithm=algorithm, seed=0
    )
    try:
        state = decode(_envelope(mutated))
        if not isinstance(state.get("router"), dict):
            raise StateError("no router state")
        router.load_state_dict(state["router"])
    except StateError:
        return
    with contextlib.suppress(ConduitError):  # a clear error is fine, a crash is not
        router.route_sync("does it still route?")


@FUZZ
@given(payload=JSON)
def test_any_store_blob_decodes_or_raises_state_error(payload: Any) -> None:
    blob = _envelope(
        {"kind": "conduit-store-state", "meta": payload, "sums": payload, "replicas": payload}
        if isinstance(payload, dict)
        else payload
    )
    with contextlib.suppress(StateError):
        Snapshot.decode(blob, "fuzzed blob")


# -- the feedback API ------------------------------------------------------------------------------
NUMBER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([True, "0.5", MAX_COST, MAX_LATENCY * 2, -0.0]),
)
FEEDBACK_OP = st.tuples(
    st.integers(min_value=0, max_value=5),  # which decision (5: an id nobody issued)
    NUMBER,  # quality
    NUMBER,  # cost
    NUMBER,  # latency
)


def _valid(value: object, upper: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= upper
    )


@FUZZ
@given(ops=st.lists(FEEDBACK_OP, max_size=25))
def test_feedback_is_learned_at_most_once_or_refused(
    ops: list[tuple[int, object, object, object]],
) -> None:
    router = Router(["a", "b"], embedding_backend="hashing", bandit_algorithm="thompson", seed=0)
    ids = [router.route_sync(f"question {i}").decision_id for i in range(5)] + ["f" * 32]
    learned: dict[str, set[str]] = {i: set() for i in ids}
    for which, quality, cost, latency in ops:
        given_parts = {
            name: value
            for name, value in (("quality", quality), ("cost", cost), ("latency", latency))
            if value is not None
        }
        upper = {"quality": 1.0, "cost": MAX_COST, "latency": MAX_LATENCY}
        ok = (
            bool(given_parts)
            and which < 5
            and all(_valid(v, upper[k]) for k, v in given_parts.items())
        )
        try:
            parts = router.update_sync(ids[which], quality=quality, cost=cost, latency=latency)
        except ConduitError:
            assert not ok
            continue
        assert ok
        assert parts == set(given_parts) - learned[ids[which]]
        learned[ids[which]] |= parts
    stats = router.stats()
    assert stats.total_feedback == sum("quality" in parts for parts in learned.values())
    assert stats.total_decisions == 5
    assert math.isfinite(stats.total_cost)
    for model in stats.models.values():
        for mean in (model.mean_quality, model.mean_cost, model.mean_latency):
            assert mean is None or math.isfinite(mean)


JUDGEMENT = st.fixed_dictionaries(
    {},
    optional={
        "quality": NUMBER,
        "thumbs": st.one_of(st.booleans(), st.integers(), st.text(max_size=3)),
        "rating": st.one_of(st.integers(min_value=-2, max_value=8), st.floats(), st.booleans()),
    },
)


@FUZZ
@given(
    judgements=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3) | st.text(max_size=40), JUDGEMENT),
        max_size=15,
    )
)
def test_explicit_feedback_is_learned_once_or_refused(
    judgements: list[tuple[int | str, dict[str, Any]]],
) -> None:
    router = Router(["a", "b"], embedding_backend="hashing", bandit_algorithm="thompson", seed=0)
    feedback = ConduitFeedbackLogger(router=lambda: router, signal_grace=0)
    ids = [router.route_sync(f"question {i}").decision_id for i in range(4)]
    judged: set[str] = set()
    for target, judgement in judgements:
        key = ids[target] if isinstance(target, int) else target
        try:
            parts = feedback.record_feedback(key, **judgement)
        except ConduitError:
            continue
        assert key in ids  # only a real decision can be judged
        assert parts == (frozenset() if key in judged else {"quality"})
        judged.add(key)
    assert router.stats().total_feedback == len(judged)
