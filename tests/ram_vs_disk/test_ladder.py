"""Lab 02's bandwidth ladder: two rungs on a CPU (and why the third is absent), four with CUDA."""

import math

import matplotlib
import torch

matplotlib.use("Agg")

from memlab.core import pagecache  # noqa: E402
from memlab.ram_vs_disk import ladder  # noqa: E402


def _reads():
    cold = pagecache.ReadRate("f", 10**8, 1.0, 1e8, 0.0, True)
    warm = pagecache.ReadRate("f", 10**8, 0.02, 5e9, 1.0, False)
    return cold, warm


def test_cpu_ladder_has_disk_and_ram_and_says_why_vram_is_absent():
    lad = ladder.ladder(*_reads(), device="cpu")
    assert [r.name.split(" (")[0] for r in lad.rungs] == ["disk -> RAM", "page cache -> process"]
    assert lad.device == "cpu" and "absent" in lad.absent and "no CUDA GPU" in lad.absent
    assert lad.rung("RAM -> VRAM") is None and math.isnan(ladder.ratio(lad, "RAM -> VRAM", "disk"))
    assert ladder.ratio(lad, "page cache", "disk") == 50.0
    assert lad.rows()[0]["GB/s"] == 0.1
    fig = ladder.plot(lad)
    assert "50x" in fig.axes[0].get_title() and "no RAM -> VRAM rung" in fig.axes[0].get_title()


def test_auto_on_this_machine():
    lad = ladder.ladder(*_reads(), device="auto") if not torch.cuda.is_available() else None
    if lad is not None:
        assert lad.absent and len(lad.rungs) == 2


def test_cuda_ladder_adds_the_pinned_and_pageable_rungs(monkeypatch):
    monkeypatch.setattr(ladder.hardware, "resolve_device", lambda d: torch.device("cuda"))
    calls = []
    monkeypatch.setattr(ladder.ceilings_gpu, "host_device_copies",
                        lambda n, r, device: calls.append((n, device)) or
                        {"h2d_pinned": 50.0, "h2d_pageable": 20.0, "d2h_pinned": 50.0, "d2h_pageable": 10.0})
    lad = ladder.ladder(*_reads(), device="cuda", copy_bytes=2**20)
    assert calls == [(2**20, "cuda")] and lad.absent == ""
    assert lad.rung("RAM -> VRAM, pinned").bytes_per_s == 50e9
    assert ladder.ratio(lad, "RAM -> VRAM, pinned", "RAM -> VRAM, pageable") == 2.5
    assert "no RAM" not in ladder.plot(lad).axes[0].get_title()


def test_mps_says_unified_memory(monkeypatch):
    monkeypatch.setattr(ladder.hardware, "resolve_device", lambda d: torch.device("mps"))
    assert "shares the CPU's memory" in ladder.ladder(*_reads(), device="mps").absent
