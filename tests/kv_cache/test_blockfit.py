"""The fit recovers a tier's latency and rate, and the break-even block size follows from them."""

from __future__ import annotations

import math
import random

import pytest

from memlab.core.errors import InvalidArgumentError
from memlab.kv_cache import blockfit, granularity

LATENCY_S, RATE = 200e-6, 1e9


def point(P, block_bytes, restore_s, recompute_s=0.05, per_token=46080):
    nbytes = P * per_token
    return granularity.BlockRestore(
        tier="disk-cold", layout="per-layer", prefix_tokens=P, block_tokens=1, block_bytes=block_bytes,
        num_transfers=math.ceil(nbytes / block_bytes), num_bytes=nbytes, restore_s=restore_s, restore_best_s=restore_s,
        restore_runs_s=(restore_s,), recompute_s=recompute_s, recompute_best_s=recompute_s, page_cache_before=(0.0,),
        same_bytes=True, same_tokens=None)


def sweep(noise=0.0, recompute_s=0.05):
    rng = random.Random(0)
    out = []
    for P in (64, 256):
        for b in (1536, 6144, 24576, 98304, 393216):
            n, nbytes = math.ceil(P * 46080 / b), P * 46080
            t = (n * LATENCY_S + nbytes / RATE) * (1 + noise * rng.uniform(-1, 1))
            out.append(point(P, b, t, recompute_s * P / 64))
    return out


def test_the_fit_recovers_latency_and_rate_exactly_from_exact_points():
    f = blockfit.fit(sweep(), "disk-cold")
    assert f.latency_s == pytest.approx(LATENCY_S, rel=1e-9)
    assert f.rate_bytes_per_s == pytest.approx(RATE, rel=1e-9)
    assert f.r2 == pytest.approx(1.0) and f.num_points == 10


def test_noise_lowers_r2():
    assert blockfit.fit(sweep(noise=0.5), "disk-cold").r2 < blockfit.fit(sweep(noise=0.05), "disk-cold").r2 < 1.0


def test_one_prefix_length_cannot_identify_both_terms():
    with pytest.raises(InvalidArgumentError, match="two prefix lengths"):
        blockfit.fit([p for p in sweep() if p.prefix_tokens == 64], "disk-cold")


def test_the_break_even_block_size_is_where_restore_meets_recompute():
    f = blockfit.TierFit("disk-cold", LATENCY_S, RATE, 1.0, 10)
    nbytes, rec = 64 * 46080, 0.05
    b = blockfit.breakeven_block_bytes(f, nbytes, rec)
    assert blockfit.predict_s(f, nbytes / b, nbytes) == pytest.approx(rec)
    assert blockfit.breakeven_block_bytes(f, nbytes, nbytes / RATE * 0.9) == math.inf  # the bytes alone cost more


def test_the_sweep_flips_where_the_fit_says():
    points = sweep()
    rows = blockfit.breakevens(points, blockfit.fits(points))
    assert [r.prefix_tokens for r in rows] == [64, 256]
    for r in rows:
        assert r.largest_losing_bytes < r.predicted_block_bytes < r.smallest_winning_bytes
        assert r.is_within_one_step


def test_a_wrong_prediction_is_not_within_one_step():
    """is_within_one_step can fail: a fit that claims ten times the latency predicts a flip far above the sweep's."""
    points = sweep()
    f = blockfit.fit(points, "disk-cold")
    wrong = {"disk-cold": blockfit.TierFit(f.tier, 30 * f.latency_s, f.rate_bytes_per_s, f.r2, f.num_points)}
    assert not all(r.is_within_one_step for r in blockfit.breakevens(points, wrong))
