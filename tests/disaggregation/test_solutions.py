"""Lab 07's worked solutions against what the code counts and times, and wrong answers marked a miss."""

from __future__ import annotations

from dataclasses import replace

import pytest

from memlab.core import footprint
from memlab.course import exercises
from memlab.disaggregation import profiles, simstats, solutions, workload


@pytest.fixture(autouse=True)
def _learner_mode(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)  # a wrong answer only misses, never raises


def test_transfer_is_exact_on_a_latency_plus_bytes_over_a_rate_link():
    # a link of 0.3 ms + bytes / 1.5 GB/s: two measured sizes give any third; a wrong model misses the band
    link = lambda nbytes: 3e-4 + nbytes / 1.5e9
    sizes = (2_949_120, 5_898_240, 11_796_480)  # SmolLM2's fp32 cache at 64, 128, 256 tokens
    solved = solutions.transfer_s([(b, link(b)) for b in sizes[:2]], sizes[2])
    assert solved == pytest.approx(link(sizes[2]), rel=1e-9)
    assert exercises.grade("07-transfer", solved, link(sizes[2]), band=solutions.TRANSFER_BAND) is True
    at_memory_speed = 3e-4 + sizes[2] / 30e9  # the bytes at a DRAM read rate, not the loopback's
    assert exercises.grade("07-transfer", at_memory_speed, link(sizes[2]), band=solutions.TRANSFER_BAND) is False


def test_link_transfer_matches_the_simulators_transfer(tiny):
    cfg = tiny.config
    prof = replace(profiles.simple_profile(), kv_bytes_per_token=footprint.kv_bytes_per_token(cfg, "bf16"))
    bw = profiles.ETHERNET_BYTES_PER_S["10 Gb Ethernet"]
    work = workload.Traffic(num_requests=5, rate_per_s=1.0, prompt_tokens=300, output_tokens=4)
    rows = simstats.link_sweep(prof, workload.Cluster("disagg", 1, 1), work, {"10 Gb Ethernet": bw})
    simulated = rows[0][2].transfer_p50_s
    solved = solutions.link_transfer_s(cfg, 300, bw, prof.link_latency_s)
    assert solved == pytest.approx(simulated, rel=1e-9)
    assert exercises.grade("07-link", solved, simulated, rel=0.001) is True
    assert exercises.grade("07-link", 2 * solved, simulated, rel=0.001) is False
    fp32 = solutions.link_transfer_s(cfg, 300, bw, prof.link_latency_s, dtype="fp32")
    assert exercises.grade("07-link", fp32, simulated, rel=0.001) is False  # the GPU profile's cache is bf16


def test_fitted_prefill_is_the_simulated_ttft_of_a_lone_prompt():
    from memlab.disaggregation import published, simulator
    fit = published.model("distserve-opt-13b-a100-tp1")
    (r,) = simulator.simulate(fit.profile(), workload.Cluster("disagg", 1, 1), [workload.RequestSpec(0, 0.0, 1024, 8)])
    solved = solutions.fitted_prefill_s(fit.prefill, 1024, fit.time_unit_s)
    assert solved == pytest.approx(r.ttft_s, rel=1e-12)
    assert exercises.grade("07-fit", solved, r.ttft_s, rel=0.01) is True
    a, b, c = fit.prefill
    assert exercises.grade("07-fit", (a + b * 1024) * 1e-3, r.ttft_s, rel=0.01) is False    # forgot the quadratic term
    assert exercises.grade("07-fit", solved * 1e3, r.ttft_s, rel=0.01) is False             # left it in milliseconds


def test_shaped_transfer_is_the_simulators_and_bits_for_bytes_misses():
    from types import SimpleNamespace

    from memlab.disaggregation import linkcheck
    kv = 2_949_120
    prof = replace(profiles.simple_profile(), kv_bytes_per_token=kv // 64, link_bytes_per_s=1.2e9, link_latency_s=2e-4)
    solved = solutions.shaped_transfer_s(kv, 0.2, prof.link_latency_s, prof.link_bytes_per_s)
    run = SimpleNamespace(link_gbps=0.2, link_measured_gbps=0.2, prompt_tokens=64, kv_bytes=kv, transfer_median_s=solved,
                          transfer_s=solved, split_ttft_s=0.05)
    (pt,) = linkcheck.compare(prof, [run], new_tokens=8)
    assert solved == pytest.approx(pt.sim_transfer_s, rel=1e-9)
    assert exercises.grade("07-shaped", solved, solved, band=solutions.SHAPED_BAND) is True
    bytes_for_bits = prof.link_latency_s + kv / prof.link_bytes_per_s + kv / (0.2e9)  # forgot the 8 bits per byte
    assert exercises.grade("07-shaped", bytes_for_bits, solved, band=solutions.SHAPED_BAND) is False
