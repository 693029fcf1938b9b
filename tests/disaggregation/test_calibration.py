"""Fitting profiles, spec-derived profiles, and the validation arithmetic."""

from dataclasses import replace

import pytest

from memlab.disaggregation import calibration, profiles, validation, workload
from memlab.core import models
from memlab.disaggregation.profiles import Profile, simple_profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, Traffic


def test_fit_recovers_known_costs():
    truth = Profile("t", "test", 0.02, 3e-3, 1e-6, 0.05, 4e-3, 2e-6, 2e9, 1e-3, 46080)
    cal = calibration.Calibration(
        tuple((n, truth.prefill_s([n])) for n in (16, 64, 256, 512)),
        tuple((b, c, truth.decode_step_s(b, b * c)) for b in (1, 2, 4) for c in (64, 512)),
        tuple((nb, truth.transfer_s(nb)) for nb in (1e6, 2e7)), 46080, "test")
    fit = calibration.fit_profile(cal)
    for f in ("prefill_base_s", "prefill_per_token_s", "prefill_per_token2_s", "decode_base_s",
              "decode_per_seq_s", "decode_per_ctx_token_s", "link_bytes_per_s", "link_latency_s"):
        assert getattr(fit, f) == pytest.approx(getattr(truth, f), rel=1e-6), f
    assert fit.source == "measured on test"


def test_fit_never_negative():
    cal = calibration.Calibration(((10, 0.5), (20, 0.4), (40, 0.6)), ((1, 10, 0.1), (2, 10, 0.1)),
                                  ((1e6, 0.01), (2e6, 0.005)), 100, "noisy")
    fit = calibration.fit_profile(cal)
    assert min(fit.prefill_base_s, fit.prefill_per_token_s, fit.decode_base_s, fit.link_latency_s) >= 0


def test_spec_profile_is_labelled(tmp_path):
    csv = tmp_path / "hw.csv"
    csv.write_text("name,kind,vendor,year,fp32_tflop_per_s,fp16_tflop_per_s,bf16_tflop_per_s,"
                   "bandwidth_gb_per_s,capacity_gb,memory,source_url,notes\n"
                   "GPU X,gpu,V,2024,50,400,400,2000,80,HBM,u,n\n"
                   "PCIe 4.0 x16,link,P,2017,,,,31.5,,,u,n\n")
    cfg = models.tiny_config()
    p = profiles.spec_profile("GPU X", cfg, table_path=csv)
    assert p.source.startswith("spec-derived")
    assert p.link_bytes_per_s == 31.5e9
    assert p.decode_per_ctx_token_s == pytest.approx(p.kv_bytes_per_token / 2000e9)
    assert profiles.link_bytes_per_s("400 Gb Ethernet") == 50e9
    # the spec profile's prefill is the course's one prefill count at peak x MFU, whatever the length
    from memlab.core import roofline
    for n in (1, 100, 4096):
        flops = roofline.prefill_workload(cfg, n).flops
        assert p.prefill_s([n]) - 1e-3 == pytest.approx(flops / (400e12 * 0.5), rel=1e-9)


def test_trace_at_utilization_sets_rate():
    prof = simple_profile()
    w = Traffic(num_requests=50, prompt_tokens=100, output_tokens=10)
    lo = workload.trace_at_utilization(prof, w, 0.2)
    hi = workload.trace_at_utilization(prof, w, 0.8)
    assert hi[-1].arrived_at_s == pytest.approx(lo[-1].arrived_at_s / 4)


def test_compare_zero_error_against_itself():
    prof = simple_profile()
    recs = simulate(prof, Cluster(max_prefill_batch=1, max_decode_batch=1), Traffic(20, 2.0))
    v = validation.compare(recs, recs, prof)
    assert v.ttft_rel_error == 0 and v.tpot_rel_error == 0
    assert abs(v.prefill_rel_error) < 1e-9 and abs(v.decode_step_rel_error) < 1e-6


def test_profile_save_load(tmp_path):
    p = simple_profile()
    assert profiles.load_profile(profiles.save_profile(p, tmp_path / "p.json")) == p


def test_merged_takes_each_points_median_over_the_bursts():
    burst = lambda t, link: calibration.Calibration(  # noqa: E731
        ((32, t), (128, 2 * t)), ((1, 64, t / 10),), link, 100, "h")
    m = calibration.merged([burst(1.0, ((1e6, 0.02),)), burst(5.0, ()), burst(2.0, ((1e6, 0.01), (2e6, 0.03)))])
    assert m.prefill_points == ((32, 2.0), (128, 4.0))
    assert m.decode_points == ((1, 64, pytest.approx(0.2)),)
    assert m.link_points == ((1e6, 0.01), (2e6, 0.03))   # each size's fastest transfer


def test_chunks_served_apart_simulate_as_the_whole_trace():
    """Three bursts of requests 100 s apart: the system empties between them, so simulating each chunk
    from an empty system (arrivals rebased, records shifted back) gives the whole trace's records."""
    prof = simple_profile()
    specs = Traffic(4, 2.0, seed=3).requests()
    trace = tuple(replace(s, request_id=10 * k + s.request_id, arrived_at_s=s.arrived_at_s + 100 * k)
                  for k in range(3) for s in specs)
    cluster = Cluster(max_prefill_batch=1, max_decode_batch=1)
    parts = validation._chunks(trace, 3)
    assert [len(c) for _, c in parts] == [4, 4, 4] and all(c[0].arrived_at_s == 0 for _, c in parts)
    chunked = sum((validation._shifted(simulate(prof, cluster, c), start) for start, c in parts), ())
    whole = simulate(prof, cluster, trace)
    for a, b in zip(sorted(chunked, key=lambda r: r.request_id), sorted(whole, key=lambda r: r.request_id)):
        assert a.request_id == b.request_id
        for f in ("arrived_at_s", "first_token_at_s", "finished_at_s", "ttft_s", "tpot_s"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-9), f
