"""Ceilings: each measurement returns sane units, the cache round-trips, GPU parts skip cleanly."""

import json

import pytest
import torch

from memlab.core import ceilings, pagecache


def test_stream_kernels_report_gb_per_s():
    bw = ceilings.stream(16 * 2**20, repeats=2)
    reads = {f"read:{k}" for k in ceilings.read_kernel_names()}
    assert reads >= {"read:sum", "read:c", "read:blas"}  # this machine has a C compiler and numpy
    assert set(bw) == {"read", "copy", "scale", "add", "triad"} | reads
    assert all(0.1 < v < 10_000 for v in bw.values())  # GB/s, not bytes/s
    assert bw["read"] == max(bw[k] for k in reads)  # the roof's read is the fastest read kernel


def test_the_blas_read_reads_the_same_bytes():
    a = torch.arange(3 * 65536 * 16, dtype=torch.float32)
    rates = ceilings.read_rates(a, repeats=1)
    assert set(rates) == {"sum", "c", "blas"} and all(v > 0 for v in rates.values())


def test_read_kernels_without_a_compiler_or_numpy(monkeypatch):
    from memlab.core import ckernels
    monkeypatch.setattr(ckernels, "library", lambda: None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert ceilings.read_kernel_names() == {"sum"}
    assert set(ceilings.read_rates(torch.ones(65536), repeats=1)) == {"sum"}


def test_matmul_respects_its_time_budget():
    import time
    t0 = time.perf_counter()
    rows = ceilings.matmul_flops(torch.float32, (64, 128, 4096, 8192), budget_s=0.3)
    assert time.perf_counter() - t0 < 10  # 8192^3 fp32 would take seconds: it must be skipped
    assert rows and rows[0][0] == 64 and all(f > 0 for _, f in rows)
    assert all(n < 8192 for n, _ in rows)


def test_disk_cold_read_is_verified(tmp_path):
    cold, warm, resident = pagecache.disk_read(tmp_path, 8 * 2**20, block_bytes=2**20)
    assert cold > 0 and warm > 0
    assert resident < 0.05  # posix_fadvise really dropped the pages before the cold read
    assert not list(tmp_path.iterdir())  # scratch file removed


def test_measure_caches_per_machine(tmp_path, monkeypatch, quiet_machine):
    calls = []
    real = ceilings.measure_now

    def fake_now(quick=False, disk_folder=None):
        calls.append(quick)
        return real(quick=True, disk_folder=None)

    monkeypatch.setattr(ceilings, "measure_now", fake_now)
    a = ceilings.measure(quick=True, cache_dir=tmp_path)
    b = ceilings.measure(quick=True, cache_dir=tmp_path)
    assert a == b and len(calls) == 1
    c = ceilings.measure(quick=True, cache_dir=tmp_path, refresh=True)
    assert len(calls) == 2 and c.measured_at >= a.measured_at
    files = list((tmp_path / "ceilings").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["mode"] == "quick"
    assert a.triad_gb_per_s > 0 and a.fp32_flop_per_s > 0
    assert a.bandwidth_bytes_per_s == max(a.read_gb_per_s, a.copy_gb_per_s, a.scale_gb_per_s, a.add_gb_per_s,
                                          a.triad_gb_per_s) * 1e9  # the roof: the fastest kernel
    assert a.vram_gb_per_s == 0.0 or torch.cuda.is_available()


@pytest.mark.gpu
def test_host_device_copies():
    out = ceilings.host_device_copies(16 * 2**20, repeats=2)
    assert all(v > 0 for v in out.values())
    assert out["h2d_pinned"] > 0.5 * out["h2d_pageable"]


def test_cli_ceilings_json(tmp_path, monkeypatch, capsys):
    from memlab import cli
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    assert cli.main(["ceilings", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "quick" and out["triad_gb_per_s"] > 0
    assert out["disk_cold_resident_fraction"] < 0.05 and out["disk_warm_gb_per_s"] > 0
    assert cli.main(["ceilings", "--quick"]) == 0  # second call: from the cache, human-readable
    assert "triad" in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["read_gb_per_s", "read_kernels"])
def test_a_cached_record_without_the_read_kernel_is_measured_again(tmp_path, monkeypatch, missing, quiet_machine):
    import dataclasses
    import json
    calls = []
    real = ceilings.measure_now
    monkeypatch.setattr(ceilings, "measure_now", lambda **kw: calls.append(1) or real(quick=True))
    old = dataclasses.asdict(real(quick=True))
    old.pop(missing)
    path = tmp_path / "ceilings"
    path.mkdir()
    (path / f"{__import__('socket').gethostname()}-quick.json").write_text(json.dumps(old))
    c = ceilings.measure(quick=True, cache_dir=tmp_path, disk=False)
    assert calls and c.read_gb_per_s > 0
