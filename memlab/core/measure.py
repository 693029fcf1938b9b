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
