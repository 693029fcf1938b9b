"""TTFT anatomy on the tiny model: stages add up, sweeps have the right shape, bounds are sane."""

from __future__ import annotations

import dataclasses
import math

import pytest

import memlab as ml

from memlab.core import ceilings, loading, models, roofline
from memlab.ttft import latency


@pytest.fixture(scope="module")
def tiny_loaded(tmp_path_factory):
    return loading.load(str(models.build_tiny(tmp_path_factory.mktemp("tiny_lat"))))


def test_waterfall_of_a_generation_adds_up(tiny_loaded):
    from memlab.core import generation
    r = generation.generate(tiny_loaded, [1, 2, 3, 4], max_new_tokens=2)
    stages = latency.waterfall(r)
    assert [s.name for s in stages] == ["tokenize", "prefill", "first sample"]
    assert math.isclose(stages[-1].start_s + stages[-1].duration_s, r.ttft_s, rel_tol=1e-9)


def test_prompt_sweep_and_bounds(tiny_loaded):
    record = {f.name: 0.0 for f in dataclasses.fields(ceilings.Ceilings)}
    ceil = ceilings.Ceilings(**{**record, "triad_gb_per_s": 10.0, "fp32_flop_per_s": 1e11})
    pts = latency.prompt_sweep(tiny_loaded, (8, 32), repeats=2, ceilings=ceil)
    assert [p.prompt_tokens for p in pts] == [8, 32]
    assert all(p.ttft_min_s <= p.ttft_s <= p.ttft_max_s for p in pts)
    work = roofline.prefill_workload(tiny_loaded.config, 32, 1, "fp32")
    expected = max(work.flops / 1e11, work.bytes / 10e9)  # the roofline: the slower of the two roofs
    assert pts[1].predicted_prefill_s == pytest.approx(expected)
    assert pts[1].predicted_prefill_s > pts[0].predicted_prefill_s
    step1 = latency.decode_step_floor_s(tiny_loaded.config, 10, ceil, 1)
    step8 = latency.decode_step_floor_s(tiny_loaded.config, 10, ceil, 8)
    assert step8 >= step1 > 0


def test_batch_sweep_reports_total_and_per_request(tiny_loaded):
    pts = latency.batch_sweep(tiny_loaded, (1, 3), prompt_tokens=8, new_tokens=4)
    for p in pts:
        assert p.total_tok_per_s == pytest.approx(p.batch_size * p.per_request_tok_per_s)
        assert math.isnan(p.bound_total_tok_per_s)  # no ceilings given: no bound invented


def test_batch_sweep_bound_counts_only_the_bytes_that_cannot_stay_cached(tiny_loaded):
    record = {f.name: 0.0 for f in dataclasses.fields(ceilings.Ceilings)}
    ceil = ceilings.Ceilings(**{**record, "read_gb_per_s": 1e-3, "fp32_flop_per_s": 1e15})  # the bound is the bytes
    none, half = (latency.batch_sweep(tiny_loaded, (1,), prompt_tokens=8, new_tokens=4, ceilings=ceil,
                                      cached_bytes=c)[0] for c in (0, ml.tensors.model_bytes(tiny_loaded.model) // 2))
    assert half.bound_total_tok_per_s > 1.5 * none.bound_total_tok_per_s


def test_cold_start_in_a_fresh_process(tmp_path):
    folder = models.build_tiny(tmp_path / "tiny_cs")
    r = latency.cold_start(str(folder), "mmap", [1, 2, 3], cold=True)
    assert r.page_cache_before < 0.05  # the child found the checkpoint evicted
    parts = r.spawn_s + r.imports_s + r.load_s + r.tokenize_s + r.prefill_s + r.sample_s
    assert parts == pytest.approx(r.ttft_s, rel=1e-6)
    assert all(s.duration_s >= 0 for s in latency.waterfall(r))
    assert r.imports_s > 0 and r.load_s > 0
