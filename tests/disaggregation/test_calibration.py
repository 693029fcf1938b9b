"""Fitting profiles, spec-derived profiles, and the validation arithmetic."""

import pytest

from memlab.disaggregation import calibration, profiles, workload
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
    v = calibration.compare(recs, recs, prof)
    assert v.ttft_rel_error == 0 and v.tpot_rel_error == 0
    assert abs(v.prefill_rel_error) < 1e-9 and abs(v.decode_step_rel_error) < 1e-6


def test_profile_save_load(tmp_path):
    p = simple_profile()
    assert profiles.load_profile(profiles.save_profile(p, tmp_path / "p.json")) == p
