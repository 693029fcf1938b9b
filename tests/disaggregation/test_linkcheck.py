"""linkcheck: the simulator's prediction of a shaped-link split, the alpha-beta fit, the break-even."""

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest

from memlab.disaggregation import linkcheck, profiles

KV = 2_949_120  # SmolLM2's fp32 cache at 64 tokens


def profile():
    return replace(profiles.simple_profile(), kv_bytes_per_token=KV // 64, link_bytes_per_s=1.2e9, link_latency_s=2e-4)


def split(gbps, transfer_s, prefill_s=0.05, first_s=None):
    return SimpleNamespace(link_gbps=gbps, link_measured_gbps=gbps, prompt_tokens=64, kv_bytes=KV,
                           transfer_median_s=transfer_s, transfer_s=first_s or transfer_s, split_ttft_s=prefill_s)


def test_simulated_transfer_is_the_copies_in_series_with_the_wire():
    p = profile()
    for g in (0.2, 1.0, 5.0):
        want = p.link_latency_s + KV / p.link_bytes_per_s + KV * 8 / (g * 1e9)
        (pt,) = linkcheck.compare(p, [split(g, want)], new_tokens=8)
        assert pt.sim_transfer_s == pytest.approx(want, rel=1e-9)
        assert pt.transfer_rel_error == pytest.approx(0, abs=1e-9)
        assert pt.sim_ttft_s == pytest.approx(p.prefill_s([64]) + want, rel=1e-9)  # the token counts at the decode worker
        assert pt.ttft_s == pytest.approx(0.05 + want)


def test_unshaped_runs_are_left_out():
    assert linkcheck.compare(profile(), [split(0.0, 0.01)], new_tokens=8) == ()


def test_fit_recovers_alpha_and_the_share_of_the_rate():
    alpha, share = 0.004, 0.8
    pts = linkcheck.compare(profile(), [split(g, alpha + KV * 8 / (share * g * 1e9)) for g in (0.1, 0.5, 2.0)], 8)
    fit = linkcheck.fit(pts)
    assert fit.alpha_s == pytest.approx(alpha, rel=1e-6)
    assert fit.rate_share == pytest.approx(share, rel=1e-6)


def test_predicted_break_even_makes_transfer_equal_prefill():
    p = profile()
    g = linkcheck.predicted_break_even_gbps(p, 64)
    assert p.link_latency_s + KV / p.link_bytes_per_s + KV * 8 / (g * 1e9) == pytest.approx(p.prefill_s([64]), rel=1e-9)
    slow_copies = replace(p, link_bytes_per_s=KV / p.prefill_s([64]) / 2)  # the copies alone outlast the prefill
    assert linkcheck.predicted_break_even_gbps(slow_copies, 64) == math.inf


def test_measured_break_even_brackets_the_crossing_and_one_step():
    rates = (0.05, 0.1, 0.2, 0.4, 0.8)
    pts = linkcheck.compare(profile(), [split(g, KV * 8 / (g * 1e9), prefill_s=0.08) for g in rates], 8)
    assert linkcheck.measured_break_even(pts) == (0.2, 0.4)  # 0.118 s at 0.2 > 0.08 s > 0.059 s at 0.4
    assert linkcheck.within_one_step(0.3, rates, (0.2, 0.4))
    assert linkcheck.within_one_step(0.1, rates, (0.2, 0.4))
    assert not linkcheck.within_one_step(0.09, rates, (0.2, 0.4))
    assert not linkcheck.within_one_step(0.81, rates, (0.2, 0.4))
    never = linkcheck.compare(profile(), [split(g, 1.0, prefill_s=0.08) for g in rates], 8)
    assert linkcheck.measured_break_even(never) == (0.8, math.inf)


def test_sweep_rates_sit_around_the_prediction_within_what_can_be_shaped():
    assert linkcheck.sweep_rates(0.3) == (0.15, 0.2, 0.3, 0.6, 1.0)
    assert linkcheck.sweep_rates(0.004)[0] == 0.01
    assert linkcheck.sweep_rates(math.inf) == (0.2, 1.0)


def test_prefill_spread():
    pts = linkcheck.compare(profile(), [split(0.2, 0.1, prefill_s=s) for s in (0.05, 0.06, 0.075)], 8)
    assert linkcheck.prefill_spread(pts) == pytest.approx(0.5)


def test_prefill_rel_error_is_the_profiles_share_of_the_ttft_error():
    p = profile()
    pts = linkcheck.compare(p, [split(0.2, 0.1, prefill_s=s) for s in (0.9, 1.0, 1.1)], 8)
    assert linkcheck.prefill_rel_error(p, pts) == pytest.approx(p.prefill_s([64]) / 1.0 - 1)


def test_ttft_link_error_sets_the_prefill_miss_aside():
    p = profile()
    wire = p.link_latency_s + KV / p.link_bytes_per_s + KV * 8 / 0.2e9
    (pt,) = linkcheck.compare(p, [split(0.2, wire, prefill_s=3 * p.prefill_s([64]))], 8)  # the prefill ran 3x slow
    assert pt.ttft_rel_error < -0.2                     # the TTFT misses, by the prefill's miss
    assert pt.ttft_link_error == pytest.approx(0, abs=1e-9)  # the link's part does not
    (pt,) = linkcheck.compare(p, [split(0.2, 2 * wire, prefill_s=p.prefill_s([64]))], 8)  # the transfer took 2x
    assert pt.ttft_link_error == pytest.approx(-wire / (p.prefill_s([64]) + 2 * wire))
