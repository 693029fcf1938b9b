"""The GPU side of the ceilings, as far as a CPU can test it: absent roofs refused, a GPU record's
roofs swapped in for the roofline, table rows, old records still read."""

import dataclasses

import pytest
import torch

from memlab.core import ceilings, ceilings_gpu
from memlab.core.errors import DeviceUnavailableError


_BASE = []


def _record(**gpu):
    if not _BASE:  # one quick measurement for the whole module
        _BASE.append(ceilings.measure_now(quick=True))
    return dataclasses.replace(_BASE[0], **gpu)


def test_a_cpu_record_has_no_gpu_roofs_and_says_so():
    c = _record(vram_gb_per_s=0.0)
    assert ceilings_gpu.rows(c) == []
    assert ceilings_gpu.on_device(c, "cpu") is c
    with pytest.raises(DeviceUnavailableError, match="no cuda roofs"):
        ceilings_gpu.on_device(c, "cuda")
    with pytest.raises(DeviceUnavailableError, match="CUDA only"):
        ceilings_gpu.on_device(c, "mps")
    if not torch.cuda.is_available():
        assert c.vram_gb_per_s == 0.0 and c.h2d_pinned_gb_per_s == 0.0
        with pytest.raises(DeviceUnavailableError, match="need a CUDA GPU"):
            ceilings_gpu.host_device_copies(2**20)


def test_a_gpu_record_draws_a_gpu_roofline():
    c = _record(vram_gb_per_s=4000.0, gpu_fp32_flop_per_s=50e12, gpu_bf16_flop_per_s=700e12,
                gpu_fp16_flop_per_s=0.0, h2d_pinned_gb_per_s=50.0, h2d_pageable_gb_per_s=20.0,
                d2h_pinned_gb_per_s=50.0, d2h_pageable_gb_per_s=15.0)
    g = ceilings_gpu.on_device(c, "cuda")
    assert g.bandwidth_bytes_per_s == 4000e9 and g.flop_per_s("fp32") == 50e12
    assert g.flop_per_s("fp16") == 700e12  # not timed: the bf16 rate stands in
    assert g.roof("bf16") == c.roof("bf16", "cuda") == (700e12, 4000e9)
    assert c.roof("fp16", "cuda")[0] == 700e12
    names = [r["ceiling"] for r in ceilings_gpu.rows(c)]
    assert names[0].startswith("HBM") and "host->device, pinned" in names and "device->host, pageable" in names
    assert "GPU matmul fp16" not in names
    import matplotlib
    matplotlib.use("Agg")
    from memlab.memory_wall import plots
    fig = plots.roofline(g, [], None)
    assert "ridge" in fig.axes[0].get_title()


def test_records_without_gpu_fp16_still_load():
    d = dataclasses.asdict(_record())
    d.pop("gpu_fp16_flop_per_s")
    d["a_field_from_the_future"] = 1
    c = ceilings.from_dict(d)
    assert c.gpu_fp16_flop_per_s == 0.0


def test_a_cached_cpu_record_is_measured_again_once_a_gpu_is_seen(tmp_path, monkeypatch, quiet_machine):
    calls = []
    real = _record()
    monkeypatch.setattr(ceilings, "measure_now", lambda **kw: calls.append(1) or real)
    ceilings.measure(quick=True, cache_dir=tmp_path, disk=False)
    ceilings.measure(quick=True, cache_dir=tmp_path, disk=False)
    assert len(calls) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    ceilings.measure(quick=True, cache_dir=tmp_path, disk=False)
    assert len(calls) == 2
