"""How memlab times and weighs things (used by every module that measures).

- `Timer`: wall time with `time.perf_counter`, synchronizing the GPU first so the clock sees
  finished kernels, not queued ones.
- `PeakMemory`: the highest resident set size (RSS) of this process while a block runs, sampled
  by a background thread, plus CUDA's own peak allocation counter on a GPU.
- `repeat` / `summarize`: warm up, repeat, report the median and the spread. Medians, because a
  shared machine adds one-sided noise (a run is never *faster* than the hardware allows).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import psutil
import torch

from memlab.core.errors import InvalidArgumentError


def sync(device: str | torch.device = "cpu") -> None:
    """Wait for queued GPU work (CUDA or Apple's mps) so a timestamp means 'done'; a no-op on the CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def rss_bytes() -> int:
    """Resident set size of this process now (anonymous + file-backed pages)."""
    return psutil.Process().memory_info().rss


def anon_rss_bytes() -> int:
    """The anonymous part of the RSS (heap, arrays): RSS less file-backed pages (library code, mapped files)
    and shared memory. Where the OS gives no split (not Linux), the whole RSS."""
    info = psutil.Process().memory_info()
    return info.rss - getattr(info, "shared", 0)


class Timer:
    """`with Timer(device) as t: ...` then `t.elapsed_s`."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = device
        self.elapsed_s = float("nan")

    def __enter__(self) -> "Timer":
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.elapsed_s = time.perf_counter() - self._start


class PeakMemory:
    """`with PeakMemory(device) as pm: ...` then `pm.peak_rss_bytes`, `pm.peak_vram_bytes`.

    RSS is sampled every `interval_s` by a thread, so a spike shorter than that can be missed;
    the final and starting values are always included.
    """

    def __init__(self, device: str | torch.device = "cpu", interval_s: float = 0.005):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.start_rss_bytes = 0
        self.peak_rss_bytes = 0
        self.peak_vram_bytes = 0

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self.peak_rss_bytes = max(self.peak_rss_bytes, proc.memory_info().rss)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start_rss_bytes = self.peak_rss_bytes = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss_bytes())
        if self.device.type == "cuda":
            sync(self.device)
            self.peak_vram_bytes = int(torch.cuda.max_memory_allocated(self.device))


def release_freed_memory() -> None:
    """Collect garbage, then hand the C heap's freed pages back to the OS (glibc's `malloc_trim`).

    A model loaded and freed in a long-lived process (a lab's kernel) leaves its many small tensors'
    memory on the heap, still counted in RSS, until the allocator trims it; a no-op without glibc."""
    import ctypes
    import ctypes.util
    import gc
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl, Windows): the allocator returns memory its own way


def heap_bytes() -> float:
    """Bytes the C allocator has handed out and not freed, over all its arenas and its mapped blocks (glibc's
    `mallinfo2`: in-use chunks + mmapped chunks): what code asked malloc for, whatever pages the kernel backs
    it with. nan where the allocator keeps no such count (glibc before 2.33, macOS, musl)."""
    import ctypes
    import ctypes.util

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        info = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return float("nan")
    info.restype = MallInfo2
    got = info()
    return float(got.uordblks + got.hblkhd)


def rss_granule_bytes() -> int:
    """The step a large anonymous allocation's RSS moves in: 2 MiB where the kernel's transparent huge pages are
    `always` (it backs the heap with huge pages, so an array can hold up to one more than it asked for),
    else the base page."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            always = "[always]" in f.read()
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            huge = int(f.read())
    except (OSError, ValueError):
        always, huge = False, 0
    return huge if always else os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class Held:
    """What an object holds in this process's memory, as `held_by` measured it."""
    rss_bytes: int      # anonymous RSS grown (heap pages, not library code or mapped files)
    heap_bytes: float   # bytes the C allocator handed out (`heap_bytes`); nan where it keeps no count


def held_by(make: Callable[[], object], repeats: int = 3) -> tuple[object, Held]:
    """`make()`'s result and what it holds: made once to pay one-time costs (library code paged in, lazy
    set-up), then `repeats` times more, each after the last was dropped and the freed memory handed back; the
    least growth of each measure, because other threads (a lab kernel's output and heartbeat) allocate
    meanwhile, which only ever adds. Returns the last object made."""
    made, rss, heap = make(), [], []
    for _ in range(repeats):
        made = None
        release_freed_memory()
        rss0, heap0 = anon_rss_bytes(), heap_bytes()
        made = make()
        rss.append(anon_rss_bytes() - rss0)
        heap.append(heap_bytes() - heap0)
    return made, Held(min(rss), float("nan") if any(h != h for h in heap) else min(heap))


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of repeated measurements, in the caller's unit."""

    median: float
    mean: float
    min: float
    max: float
    stdev: float  # 0.0 for a single value
    n: int


def summarize(values: Iterable[float]) -> Stats:
    """Median, mean, min, max and sample standard deviation of `values`."""
    xs = [float(v) for v in values]
    if not xs:
        raise InvalidArgumentError("summarize() needs at least one value")
    return Stats(
        median=statistics.median(xs),
        mean=statistics.fmean(xs),
        min=min(xs),
        max=max(xs),
        stdev=statistics.stdev(xs) if len(xs) > 1 else 0.0,
        n=len(xs),
    )


def repeat(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
           device: str | torch.device = "cpu", before: Callable[[], object] | None = None) -> Stats:
    """Seconds per call of `fn`: `warmup` untimed calls, then `repeats` timed ones, each after an
    untimed call of `before` when given (e.g. a read that empties the caches of fn's data)."""
    if repeats < 1:
        raise InvalidArgumentError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        with Timer(device) as t:
            fn()
        times.append(t.elapsed_s)
    return summarize(times)


OTHERS_MAX_CORES = 0.25  # what other processes may use of the cores while a kept measurement runs


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, busy s of every core together, this process's own CPU s) now, to pass to `busy` after a
    measurement; None where /proc/stat is missing (not Linux)."""
    try:
        ticks = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()  # every thread of this process, and its waited-for children
    idle = ticks[3] + ticks[4]  # idle + iowait; steal (a hypervisor's other guests) counts as busy
    return time.monotonic(), (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), own[0] + own[1] + own[2] + own[3]


def others_cores(since: tuple[float, float, float] | None) -> float:
    """Cores' worth of CPU that processes other than this one used since `since` (`cpu_snapshot`); nan unknown."""
    now = cpu_snapshot()
    if since is None or now is None or now[0] <= since[0]:
        return float("nan")
    return max(0.0, (now[1] - since[1]) - (now[2] - since[2])) / (now[0] - since[0])


def busy_reason(since: tuple[float, float, float] | None = None) -> str:
    """Why other work shared the cores ("" when it did not): what was timed is then used, but not kept for
    later runs (`ceilings.measure`, `kernels.choose`). With `since` (a `cpu_snapshot` from the start of the
    measurement): other processes used more than `OTHERS_MAX_CORES` of a core meanwhile. Without, or where
    /proc/stat is missing: the 1-minute load average is above the core count (it lags, and one more process
    on two cores stays under it: a stall timed then was once cached)."""
    others = others_cores(since)
    if others == others:
        return f"other processes used {others:.2f} cores meanwhile" if others > OTHERS_MAX_CORES else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return f"the load average ({load:.1f}) is above the core count" if load > (os.cpu_count() or 1) else ""


def busy(since: tuple[float, float, float] | None = None) -> bool:
    """`busy_reason(since)` is not empty."""
    return bool(busy_reason(since))


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch threads (0 or the current count: unchanged)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)
