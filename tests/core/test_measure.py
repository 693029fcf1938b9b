import os
import subprocess
import sys
import time

import numpy as np
import pytest

from memlab.core import measure, pagecache


def test_timer_measures_sleep():
    with measure.Timer() as t:
        time.sleep(0.05)
    assert 0.045 <= t.elapsed_s < 1.0


def test_peak_memory_sees_an_allocation():
    import mmap
    size = 200 * 2**20
    with measure.PeakMemory() as pm:
        # a fresh anonymous mapping, touched: new resident pages, whatever malloc kept from earlier tests
        block = mmap.mmap(-1, size)
        block.write(b"\1" * size)
        time.sleep(0.05)
        block.close()
    assert pm.peak_rss_bytes - pm.start_rss_bytes > 150 * 2**20


def test_summarize_and_repeat():
    s = measure.summarize([3.0, 1.0, 2.0])
    assert (s.median, s.min, s.max, s.n) == (2.0, 1.0, 3.0, 3)
    calls = []
    stats = measure.repeat(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and stats.n == 4
    with pytest.raises(ValueError):
        measure.summarize([])


def test_evict_makes_a_file_cold_and_reading_makes_it_warm(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).bytes(8 * 2**20))
    path.read_bytes()
    assert pagecache.resident_fraction(path) > 0.95
    pagecache.evict(path)
    if pagecache.resident_fraction(path) > 0.05:
        pytest.skip("this filesystem ignores POSIX_FADV_DONTNEED (e.g. tmpfs)")
    assert pagecache.state(path) == "cold"
    path.read_bytes()
    assert pagecache.state(path) == "warm"


def test_release_freed_memory_hands_a_freed_model_back():
    import torch
    from memlab.core.measure import release_freed_memory, rss_bytes
    release_freed_memory()
    before = rss_bytes()
    many = [torch.ones(4096) for _ in range(20_000)]  # 16 KB each, 320 MB on the C heap
    del many
    release_freed_memory()  # no-op where there is no glibc; must not raise
    import ctypes.util
    if ctypes.util.find_library("c"):
        assert rss_bytes() - before < 100 * 2**20


def test_every_timer_waits_for_the_device(monkeypatch):
    """A timed call on a GPU returns before its work is done: the clock stops only after `sync` waited
    (here a fake mps whose queued work the sync records)."""
    import torch
    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append(time.perf_counter()))
    with measure.Timer("mps") as t:
        start = time.perf_counter()
    assert len(waited) == 2 and waited[0] <= start <= waited[1]  # before the start and before the stop
    assert t.elapsed_s >= waited[1] - start >= 0
    measure.repeat(lambda: None, repeats=3, warmup=0, device="mps")
    assert len(waited) == 2 + 2 * 3


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="counts other processes' CPU time from /proc/stat (Linux)")
def test_busy_counts_other_processes_cpu_not_this_ones():
    """A measurement is kept only when other processes left the cores alone: a child burning a core is
    counted, this process burning one is not (the old rule, the 1-minute load average, saw neither)."""
    start = measure.cpu_snapshot()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pass
    alone = measure.others_cores(start)
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass"])
    try:
        time.sleep(0.3)  # the interpreter starts
        start = measure.cpu_snapshot()
        time.sleep(0.6)
        beside = measure.others_cores(start)  # before the wait: a waited-for child's time counts as this process's
        reason = measure.busy_reason(start)
    finally:
        child.wait()
    assert alone <= measure.OTHERS_MAX_CORES < 0.6 < beside, (alone, beside)
    assert "other processes used" in reason


def test_a_file_read_three_ways_and_a_mappings_advice(tmp_path):
    import mmap

    from memlab.core.errors import InvalidArgumentError
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(4 * 2**20))
    for via in pagecache.READ_WAYS:
        r = pagecache.measure_read_rate(path, cold=False, via=via)
        assert r.num_bytes == 4 * 2**20 and r.read_bytes_per_s > 0, via
    with pytest.raises(InvalidArgumentError, match="unknown way to read"):
        pagecache.measure_read_rate(path, via="dd")
    assert pagecache.mapping_flags(path) == []
    if not os.path.exists("/proc/self/smaps"):
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        m.madvise(mmap.MADV_RANDOM)
        flags = pagecache.mapping_flags(path)
    assert len(flags) == 1 and "rr" in flags[0].split(), flags


def test_a_settled_cold_read_waits_after_the_eviction_and_before_the_read(tmp_path, monkeypatch):
    """settle_s: the eviction, then the wait, then the read (a floor read as late as a fresh process loads)."""
    if not pagecache.supports_eviction():
        pytest.skip(pagecache.EVICTION_UNSUPPORTED)
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(2**20))
    seen = []
    monkeypatch.setattr(pagecache, "evict", lambda p, _evict=pagecache.evict: seen.append("evict") or _evict(p))
    monkeypatch.setattr(pagecache.time, "sleep", lambda s: seen.append(("sleep", s)))
    r = pagecache.measure_read_rate(path, cold=True, settle_s=2.5)
    assert seen == ["evict", ("sleep", 2.5)] and r.is_cold and r.num_bytes == 2**20
    seen.clear()
    pagecache.measure_read_rate(path, cold=False, settle_s=2.5)  # nothing evicted: nothing to wait for
    assert seen == []


def test_reads_in_flight_fill_every_piece_and_a_short_file_is_refused(tmp_path):
    """pread_pieces: each buffer gets its own file range whatever the order the threads finish in; a read
    past the end of the file raises instead of leaving zeros."""
    data = os.urandom(3 * 2**20 + 5)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    bufs = [bytearray(2**20) for _ in range(3)] + [bytearray(5)]
    with open(path, "rb") as f:
        got = pagecache.pread_pieces(f.fileno(), [(b, k * 2**20) for k, b in enumerate(bufs)], streams=4)
        assert got == len(data) and b"".join(bufs) == data
        with pytest.raises(OSError, match="short read"):
            pagecache.pread_pieces(f.fileno(), [(bytearray(10), len(data) - 5)], streams=2)
    r = pagecache.measure_read_rate(path, cold=False, block_bytes=2**20, streams=4)
    assert r.num_bytes == len(data) and r.read_bytes_per_s > 0
