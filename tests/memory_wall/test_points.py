"""Lab 01's roofline points and ridge point (memlab/memory_wall/points.py)."""

import math

import pytest

import memlab as ml
from memlab.core import roofline
from memlab.memory_wall import points


def test_the_ridge_point_is_where_the_two_roofs_meet():
    ridge = points.ridge_point(1e12, 1e9)
    assert roofline.attainable_flop_per_s(ridge, 1e12, 1e9) == pytest.approx(1e12)
    assert roofline.attainable_flop_per_s(ridge / 2, 1e12, 1e9) == pytest.approx(5e11)


def test_points_from_generation(tiny):
    r = ml.generate(tiny, [1, 2, 3, 4], max_new_tokens=4, stop_at_eos=False)
    pre, dec = points.points_from_generation(r, tiny.model.config)
    assert pre.phase == "prefill" and dec.phase == "decode"
    assert dec.tok_per_s == pytest.approx(1 / r.tpot_s)
    assert pre.intensity_flop_per_byte > dec.intensity_flop_per_byte
    assert math.isfinite(pre.flop_per_s) and pre.flop_per_s > 0
