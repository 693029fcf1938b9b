"""Another OS, simulated on Linux: without posix_fadvise, mincore or /proc, what labs 01-03 call
returns and says what it cannot measure, instead of raising (issue 13, item 5).

Two platforms are simulated with monkeypatch:
  macos  no os.posix_fadvise (macOS has mincore, but no way to ask the kernel to drop pages)
  bare   no posix_fadvise, no mincore in the C library, no /proc/cpuinfo, no /sys (Windows-like)
"""

from __future__ import annotations

import ctypes
import math
import sys

import pytest
import torch

from memlab.core import ceilings, hardware, loading, pagecache
from memlab.core.errors import DeviceUnavailableError, MemlabError
from memlab.ram_vs_disk import runs

COLD = "cold page cache unsupported on this platform"


def _no_libc(*args, **kwargs):
    raise OSError("simulated: no C library with mincore on this platform")


@pytest.fixture
def macos(monkeypatch):
    monkeypatch.delattr("os.posix_fadvise")


@pytest.fixture
def bare(macos, monkeypatch, tmp_path):
    monkeypatch.setattr(ctypes, "CDLL", _no_libc)
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "no-proc" / "cpuinfo")
    monkeypatch.setattr(hardware, "SYSFS_CACHE", tmp_path / "no-sys" / "cache")


@pytest.fixture
def scratch(tmp_path):
    path = tmp_path / "scratch.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux baseline")
def test_linux_has_nothing_to_report():
    assert pagecache.supports_eviction() and pagecache.supports_residency()
    assert hardware.limitations() == []
    assert hardware.card().cpu_features != "unknown"


def test_card_and_describe_say_what_is_unknown(bare, capsys):
    hw = hardware.describe()
    assert hw.cpu_features == "unknown" and hw.last_level_cache_bytes == 0
    assert hw.cpu_model  # platform.processor() or the machine type stands in
    out = capsys.readouterr().out
    assert COLD in out and "CPU flags unknown" in out and "residency unknown" in out
    assert hardware.cpu_features() == () and not hardware.native_dtype("bf16")


def test_evict_and_residency_degrade(bare, scratch):
    assert not pagecache.supports_eviction() and not pagecache.supports_residency()
    with pytest.warns(RuntimeWarning, match=COLD):
        assert pagecache.evict(scratch) is False
    with pytest.warns(RuntimeWarning, match="residency unknown"):
        assert math.isnan(pagecache.resident_fraction(scratch))
        assert pagecache.state(scratch) == "unknown"


def test_macos_still_counts_resident_pages(macos, scratch):
    scratch.read_bytes()
    assert pagecache.supports_residency() and pagecache.resident_fraction(scratch) > 0.95
    assert pagecache.limitations() == [pagecache.EVICTION_UNSUPPORTED]


@pytest.mark.parametrize("platform", ["macos", "bare"])
def test_cold_read_is_skipped_and_warm_read_measured(platform, request, scratch):
    request.getfixturevalue(platform)
    with pytest.warns(RuntimeWarning, match=COLD):
        cold = pagecache.measure_read_rate(scratch, cold=True, block_bytes=2**16)
    assert not cold.is_supported and COLD in cold.reason and math.isnan(cold.read_bytes_per_s)
    assert cold.num_bytes == scratch.stat().st_size
    warm = pagecache.measure_read_rate(scratch, cold=False, block_bytes=2**16)
    assert warm.is_supported and warm.num_bytes == cold.num_bytes and warm.read_bytes_per_s > 0


def test_ceilings_disk_probe_in_quick_mode(bare, tmp_path, monkeypatch, quiet_machine):
    monkeypatch.setattr(ceilings, "array_size", lambda quick=False: 16 * 2**20)  # the disk is the point here
    with pytest.warns(RuntimeWarning, match=COLD):
        c = ceilings.measure(quick=True, refresh=True, cache_dir=tmp_path)
    assert math.isnan(c.disk_cold_gb_per_s) and c.disk_warm_gb_per_s > 0 and COLD in c.disk_cold_reason
    assert c.read_gb_per_s > 0 and c.fp32_flop_per_s > 0  # the rest is measured as on Linux
    again = ceilings.measure(quick=True, cache_dir=tmp_path)  # the cached record, NaN and reason kept
    assert math.isnan(again.disk_cold_gb_per_s) and again.disk_cold_reason == c.disk_cold_reason


@pytest.mark.parametrize("platform", ["macos", "bare"])
def test_cold_load_warns_and_loads_warm(platform, request, tiny_dir, tiny):
    request.getfixturevalue(platform)
    loading.checkpoint_file(tiny_dir).read_bytes()  # in the page cache now, whatever an earlier test evicted
    with pytest.warns(RuntimeWarning, match=COLD):
        loaded = loading.load(str(tiny_dir), cold=True)
    assert loaded.result.is_cold  # asked for; page_cache_before says it did not happen
    frac = loaded.result.page_cache_before
    assert math.isnan(frac) if platform == "bare" else frac > 0.95
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        assert torch.equal(loaded.model(ids).logits, tiny.model(ids).logits)
    with pytest.raises(MemlabError, match="cannot evict"):
        loading.load(str(tiny_dir), "paged", bigger_than_ram=True)


@pytest.mark.parametrize("platform", ["macos", "bare"])
def test_ram_vs_disk_runs_skip_cold_and_measure_warm(platform, request, tiny_dir):
    request.getfixturevalue(platform)
    with pytest.warns(RuntimeWarning, match=COLD):
        cold = runs.run_strategy(str(tiny_dir), "resident", "Hi", cold=True, max_new_tokens=2)
        huge = runs.run_strategy(str(tiny_dir), "paged", "Hi", bigger_than_ram=True, max_new_tokens=2)
    for r in (cold, huge):
        assert not r.is_supported and COLD in r.reason and math.isnan(r.tpot_s) and math.isnan(r.load_s)
    warm = runs.run_strategy(str(tiny_dir), "mmap", "Hi", cold=False, max_new_tokens=2)
    assert warm.is_supported and warm.reason == "" and warm.tpot_s > 0 and warm.load_s > 0


def test_apple_gpu_is_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 8 * 2**30, raising=False)
    assert hardware.gpu_device() == "mps" and hardware.resolve_device("mps") == torch.device("mps")
    hw = hardware.card()
    assert hw.gpu_name == "Apple GPU (mps)" and hw.gpu_vram_bytes == 8 * 2**30


def test_no_gpu_says_which_device_to_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert hardware.gpu_device() == "cpu"
    for device in ("mps", "cuda"):
        with pytest.raises(DeviceUnavailableError, match="device='cpu'"):
            hardware.resolve_device(device)
