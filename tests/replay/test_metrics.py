from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduit._errors import ValidationError
from conduit.replay._metrics import (
    apgr,
    cpt,
    mean_cost,
    oracle_choices,
    pgr,
    pgr_curve,
    windowed_mean,
)


def test_pgr_by_hand() -> None:
    assert pgr(0.806, q_weak=0.681, q_strong=0.806) == pytest.approx(1.0)
    assert pgr(0.681, q_weak=0.681, q_strong=0.806) == pytest.approx(0.0)
    assert pgr(0.70, q_weak=0.60, q_strong=0.80) == pytest.approx(0.5)
    assert pgr(0.55, q_weak=0.60, q_strong=0.80) == pytest.approx(-0.25)


def test_apgr_by_hand() -> None:
    # (0,0) (0.25,1) (1,1): 0.25 * 1 / 2 + 0.75 * 1 = 0.875
    assert apgr([(0.25, 1.0)]) == pytest.approx(0.875)
    # (0,0) (0.5,0.2) (1,1): 0.5 * 0.2 / 2 + 0.5 * 1.2 / 2 = 0.35
    assert apgr([(0.5, 0.2)]) == pytest.approx(0.35)
    # unsorted input, a point above 1: (0,0) (0.2,0.6) (0.6,1.2) (1,1)
    # 0.2*0.6/2 + 0.4*1.8/2 + 0.4*2.2/2 = 0.06 + 0.36 + 0.44 = 0.86
    assert apgr([(0.6, 1.2), (0.2, 0.6)]) == pytest.approx(0.86)
    assert apgr([]) == pytest.approx(0.5)  # the anchors alone: the diagonal


def test_random_routing_has_apgr_one_half_exactly() -> None:
    # Random routing at strong share s has quality s*q_strong + (1-s)*q_weak: PGR = s.
    q_weak, q_strong = 0.681, 0.806
    points = [
        (s, pgr(s * q_strong + (1 - s) * q_weak, q_weak, q_strong)) for s in np.linspace(0, 1, 11)
    ]
    assert apgr(points) == pytest.approx(0.5, abs=1e-12)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=20))
def test_any_points_on_the_diagonal_give_one_half(shares: list[float]) -> None:
    assert apgr([(s, s) for s in shares]) == pytest.approx(0.5, abs=1e-9)
    assert cpt([(s, s) for s in shares], 0.5) == pytest.approx(0.5, abs=1e-9)


def test_cpt_by_hand() -> None:
    points = [(0.2, 0.6), (0.5, 0.7)]  # curve (0,0) (0.2,0.6) (0.5,0.7) (1,1)
    assert cpt(points, 0.5) == pytest.approx(0.2 * 0.5 / 0.6)
    assert cpt(points, 0.6) == pytest.approx(0.2)
    assert cpt(points, 0.65) == pytest.approx(0.35)
    assert cpt(points, 0.8) == pytest.approx(0.5 + 0.5 * 0.1 / 0.3)
    assert cpt(points, 1.0) == pytest.approx(1.0)
    assert cpt(points, 0.0) == 0.0


def test_cpt_takes_the_first_crossing_of_a_curve_that_dips() -> None:
    # (0,0) (0.2,0.9) (0.4,0.3) (1,1): reaches 0.5 first on the rise to 0.2
    assert cpt([(0.2, 0.9), (0.4, 0.3)], 0.5) == pytest.approx(0.2 * 0.5 / 0.9)


def test_pgr_curve_adds_anchors_and_sorts() -> None:
    assert pgr_curve([(0.7, 0.9), (0.1, 0.2)]) == [(0.0, 0.0), (0.1, 0.2), (0.7, 0.9), (1.0, 1.0)]


BAD: list[tuple[Any, dict[str, Any], str]] = [
    (pgr, {"q": 0.5, "q_weak": 0.7, "q_strong": 0.7}, "two models of different quality"),
    (pgr, {"q": 0.5, "q_weak": 0.7, "q_strong": math.nan}, "two models of different quality"),
    (apgr, {"points": [(1.5, 0.5)]}, r"share in \[0, 1\]"),
    (apgr, {"points": [(-0.1, 0.5)]}, r"share in \[0, 1\]"),
    (apgr, {"points": [(0.5, math.inf)]}, "finite PGR"),
    (cpt, {"points": [(0.5, 0.5)], "x": 1.5}, r"level must be in \[0, 1\], got 1.5"),
    (cpt, {"points": [(0.5, 0.5)], "x": -0.1}, r"level must be in \[0, 1\]"),
    (cpt, {"points": [(0.5, 0.5)], "x": "half"}, r"level must be in \[0, 1\]"),
    (cpt, {"points": [(math.nan, 0.5)], "x": 0.5}, r"share in \[0, 1\]"),
    (windowed_mean, {"values": [1.0], "window": 0}, "window must be a positive int"),
    (windowed_mean, {"values": [1.0], "window": 1.5}, "window must be a positive int"),
]


@pytest.mark.parametrize(("fn", "kwargs", "message"), BAD)
def test_invalid_input_is_refused(fn: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        fn(**kwargs)


def test_oracle_prefers_quality_then_known_low_cost() -> None:
    q = np.array([[0.2, 0.9, 0.9], [1.0, 1.0, 1.0], [0.5, 0.5, 0.1], [0.0, 0.0, 0.0]])
    c = np.array(
        [[0.1, 0.5, 0.4], [np.nan, 0.2, 0.3], [np.nan, np.nan, 0.0], [np.nan, np.nan, np.nan]]
    )
    assert oracle_choices(q, c).tolist() == [2, 1, 0, 0]


def test_mean_cost_skips_unknown() -> None:
    assert mean_cost(np.array([0.001, np.nan, 0.003])) == pytest.approx(0.002)
    assert mean_cost(np.array([np.nan, np.nan])) is None
    assert mean_cost(np.array([])) is None


def test_windowed_mean_by_hand() -> None:
    values = [1.0, 0.0, 1.0, 1.0, np.nan, np.nan, np.nan]
    got = windowed_mean(values, window=3)
    want = [1.0, 0.5, 2 / 3, 2 / 3, 1.0, 1.0, np.nan]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(windowed_mean([0.2, 0.4], window=10), [0.2, 0.3])
