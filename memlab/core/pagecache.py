"""The page cache: is a file's data in RAM already (warm) or still on disk (cold)?

Linux keeps recently read file pages in RAM. A "cold" measurement must first evict them:
`posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)` drops the clean pages of a file, *except* pages
some process still has mapped (an open mmap pins them), so evict before mapping. `mincore(2)`
over a fresh mapping tells how many pages are resident, which is how memlab checks that cold
really is cold. Used by labs 01 (disk ceilings), 02 (RAM vs disk) and 06 (a mapped index read cold:
`measure_read_rate(via=...)` reads a file by `read` or through a mapping, `mapping_flags` shows a mapping's advice).

Both calls are Linux's. Where a platform lacks them (macOS has no `posix_fadvise`, Windows has
neither), memlab says so instead of failing: `supports_eviction()` is False, `evict` returns
False, a cold `measure_read_rate` returns a record with `is_supported=False` and nan numbers, and
`resident_fraction` is nan where there is no `mincore`. `limitations()` lists what is missing.
"""

from __future__ import annotations

import ctypes
import functools
import ctypes.util
import mmap
import os
import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from memlab.core.errors import InvalidArgumentError, MemlabError

_PAGE = mmap.PAGESIZE
EVICTION_UNSUPPORTED = "cold page cache unsupported on this platform (no os.posix_fadvise): cold numbers are skipped"
RESIDENCY_UNKNOWN = "page-cache residency unknown on this platform (no mincore in the C library): reported as nan"


@functools.cache
def _libc_name() -> str:
    return ctypes.util.find_library("c") or "libc.so.6"  # find_library runs ldconfig: look once


def mincore():
    """libc's `mincore` as a ctypes function, or None where the C library has none (Windows)."""
    try:
        libc = ctypes.CDLL(_libc_name(), use_errno=True)
        fn = libc.mincore
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    return fn


def supports_eviction() -> bool:
    """True where memlab can drop a file's pages (Linux's posix_fadvise DONTNEED)."""
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


def supports_residency() -> bool:
    """True where memlab can count a file's cached pages (mincore)."""
    return mincore() is not None


def limitations() -> list[str]:
    """What this platform cannot measure about the page cache, one sentence each ([] on Linux)."""
    return ([] if supports_eviction() else [EVICTION_UNSUPPORTED]) + \
           ([] if supports_residency() else [RESIDENCY_UNKNOWN])


def evict(path: str | Path) -> bool:
    """Ask the kernel to drop `path`'s pages from the page cache (cannot drop mapped pages).

    False, with a warning, where the platform has no way to ask (nothing is dropped)."""
    if not supports_eviction():
        warnings.warn(EVICTION_UNSUPPORTED, RuntimeWarning, stacklevel=2)
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd) if os.access(path, os.W_OK) else None  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def resident_fraction(path: str | Path) -> float:
    """Share of `path`'s pages that are in the page cache now, 0.0 to 1.0 (via mincore); nan,
    with a warning, where there is no mincore."""
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    fn = mincore()
    if fn is None:
        warnings.warn(RESIDENCY_UNKNOWN, RuntimeWarning, stacklevel=2)
        return float("nan")
    with open(path, "rb") as f:
        # a private (copy-on-write) mapping reads nothing until touched, and gives ctypes an address
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            num_pages = (size + _PAGE - 1) // _PAGE
            vec = (ctypes.c_ubyte * num_pages)()
            anchor = ctypes.c_char.from_buffer(mm)  # gives the mapping's address
            try:
                rc = fn(ctypes.c_void_p(ctypes.addressof(anchor)), size, vec)
            finally:
                del anchor  # an exported buffer would keep the mapping from closing
            if rc != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore failed on {path}: {os.strerror(err)}")
            return sum(b & 1 for b in vec) / num_pages
        finally:
            mm.close()


def state(path: str | Path) -> str:
    """'cold' (< 5 % of pages cached), 'warm' (> 95 %), 'partial', or 'unknown' without mincore."""
    frac = resident_fraction(path)
    if frac != frac:  # nan: no mincore here
        return "unknown"
    return "cold" if frac < 0.05 else "warm" if frac > 0.95 else "partial"


@dataclass(frozen=True, slots=True)
class ReadRate:
    """Sequential read of a whole file: how fast the disk (cold) or the page cache (warm) delivers."""

    path: str
    num_bytes: int
    read_s: float
    read_bytes_per_s: float
    page_cache_before: float  # resident fraction measured just before the read (nan: unknown here)
    is_cold: bool
    is_supported: bool = True  # False: a cold read was asked where eviction is unsupported (nan numbers)
    reason: str = ""           # why not, when is_supported is False


READ_WAYS = ("read", "mmap", "mmap-random")
# reads a whole-checkpoint load keeps in flight. A virtual disk serves one request at a time slowly and
# unevenly: on a 2-vCPU Xeon VM, 16 MiB reads of the 135M checkpoint one at a time came at 0.25-1.1 GB/s
# (slowest a few seconds after the file's eviction), four in flight at 0.94-1.31 GB/s, three runs each
READ_STREAMS = 4


def pread_pieces(fd: int, pieces, streams: int = 1) -> int:
    """Fill each (writable buffer, file offset) of `pieces` from `fd` with `pread`, `streams` reads in
    flight (threads: a read waits in the kernel without the GIL), handed out in the order given; bytes read."""
    def one(piece) -> int:
        view, offset = memoryview(piece[0]).cast("B"), piece[1]
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                raise OSError(f"short read at byte {offset + got} of {len(view)} asked at {offset}")
            got += n
        return got
    if streams <= 1 or len(pieces) <= 1:
        return sum(map(one, pieces))
    with ThreadPoolExecutor(min(streams, len(pieces))) as pool:
        return sum(pool.map(one, pieces))


def measure_read_rate(path: str | Path, cold: bool = True, block_bytes: int = 16 * 2**20,
                      via: str = "read", settle_s: float = 0.0, streams: int = 1) -> ReadRate:
    """The one file-read probe: rate = bytes / s reading all of `path`, `via`:
      read         `readinto` in `block_bytes` chunks (the kernel reads ahead of sequential reads); with
                   `streams` > 1, that many `pread`s in flight (`pread_pieces`, as a resident load reads);
      mmap         mapped, one byte of every page touched in order (each fault reads around it);
      mmap-random  the same after madvise(MADV_RANDOM): each fault reads its own page only, as a
                   FAISS index mapped by `read_index` is (lab 06; `mapping_flags` shows it).
    cold evicts the file first (and checks it): the rate is the disk's; warm: the page cache's.
    Where eviction is unsupported a cold read is skipped: the record says so, its times are nan.
    settle_s: wait this long between the eviction and the read. A virtual disk's speed can depend on
    how recently it was asked: on a 2-vCPU Xeon VM the 135M checkpoint, read one chunk at a time right
    after its eviction, came at 0.9-1.5 GB/s and 3 s later at 0.4-0.8 GB/s (six pairs in one run); four
    reads in flight took most of the difference away (1.1-1.2 vs 0.9-1.0 GB/s: `READ_STREAMS`). A
    process that evicts, imports for seconds and then loads meets the later disk: a floor for it is read
    as late (bench_decode.py does).
    """
    if via not in READ_WAYS:
        raise InvalidArgumentError(f"unknown way to read {via!r}: choose {', '.join(READ_WAYS)}")
    if cold and not evict(path):
        nan = float("nan")
        return ReadRate(str(path), os.path.getsize(path), nan, nan, resident_fraction(path), True,
                        is_supported=False, reason=EVICTION_UNSUPPORTED)
    if cold and settle_s > 0:
        time.sleep(settle_s)
    before = resident_fraction(path)
    total = 0
    with open(path, "rb", buffering=0) as f:
        if via == "read" and streams > 1:
            size = os.path.getsize(path)
            bufs = [bytearray(block_bytes) for _ in range(streams)]  # chunk k lands in buffer k % streams (thrown away)
            pieces = [(memoryview(bufs[k % streams])[:min(block_bytes, size - o)], o)
                      for k, o in enumerate(range(0, size, block_bytes))]
            t0 = time.perf_counter()
            total = pread_pieces(f.fileno(), pieces, streams)
        elif via == "read":
            buf = bytearray(block_bytes)
            t0 = time.perf_counter()
            while (n := f.readinto(buf)) > 0:
                total += n
        else:
            import numpy as np
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
                if via == "mmap-random" and hasattr(m, "madvise"):
                    m.madvise(mmap.MADV_RANDOM)
                    held = mapping_flags(path)  # the kernel holds the advice: VmFlags 'rr' ([] off Linux: not known)
                    if held and not any("rr" in flags.split() for flags in held):
                        raise MemlabError(f"madvise(MADV_RANDOM) did not hold on {path} (VmFlags {held})")
                t0 = time.perf_counter()  # the faults, not the mapping's set-up nor reading /proc/self/smaps
                pages = np.frombuffer(m, np.uint8)[::mmap.PAGESIZE]
                int(pages.sum())  # one load per page: the faults are the cost
                total = len(m)
                del pages
        dt = time.perf_counter() - t0
    return ReadRate(str(path), total, dt, total / dt, before, cold)


def mapping_flags(path: str | Path) -> list[str]:
    """The kernel's flags (/proc/self/smaps VmFlags) of each of this process's mappings of `path`: "rr" is
    madvise(MADV_RANDOM), "sr" MADV_SEQUENTIAL; [] where unmapped or not Linux."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return []
    target, out, mapped = str(Path(path).resolve()), [], False
    for line in text.splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
            mapped = line.rstrip().endswith(target)
        elif mapped and line.startswith("VmFlags:"):
            out.append(line.split(":", 1)[1].strip())
    return out


def disk_read(folder: Path, file_bytes: int, block_bytes: int = 16 * 2**20) -> tuple[float, float, float]:
    """(cold GB/s, warm GB/s, resident fraction after eviction) reading a scratch file.

    Cold is nan where eviction is unsupported (`supports_eviction()`), and the resident
    fraction is nan where residency cannot be counted."""
    path = Path(folder) / f"ceilings-scratch-{os.getpid()}.bin"
    block = random.Random(0).randbytes(block_bytes)  # incompressible, the same every run
    try:
        with open(path, "wb") as f:
            for _ in range(max(1, file_bytes // block_bytes)):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())  # dirty pages cannot be dropped: write them out first
        cold = measure_read_rate(path, cold=True, block_bytes=block_bytes)
        warm = max(measure_read_rate(path, cold=False, block_bytes=block_bytes).read_bytes_per_s
                   for _ in range(2))
        return cold.read_bytes_per_s / 1e9, warm / 1e9, cold.page_cache_before
    finally:
        path.unlink(missing_ok=True)
