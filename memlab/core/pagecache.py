"""The page cache: is a file's data in RAM already (warm) or still on disk (cold)?

Linux keeps recently read file pages in RAM. A "cold" measurement must first evict them:
`posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)` drops the clean pages of a file, *except* pages
some process still has mapped (an open mmap pins them), so evict before mapping. `mincore(2)`
over a fresh mapping tells how many pages are resident, which is how memlab checks that cold
really is cold. Used by labs 01 (disk ceilings) and 02 (RAM vs disk).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_PAGE = mmap.PAGESIZE


def evict(path: str | Path) -> None:
    """Ask the kernel to drop `path`'s pages from the page cache (cannot drop mapped pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd) if os.access(path, os.W_OK) else None  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path: str | Path) -> float:
    """Share of `path`'s pages that are in the page cache now, 0.0 to 1.0 (via mincore)."""
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    with open(path, "rb") as f:
        # a private (copy-on-write) mapping reads nothing until touched, and gives ctypes an address
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            num_pages = (size + _PAGE - 1) // _PAGE
            vec = (ctypes.c_ubyte * num_pages)()
            anchor = ctypes.c_char.from_buffer(mm)  # gives the mapping's address
            try:
                rc = _libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), size, vec)
            finally:
                del anchor  # an exported buffer would keep the mapping from closing
            if rc != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore failed on {path}: {os.strerror(err)}")
            return sum(b & 1 for b in vec) / num_pages
        finally:
            mm.close()


def state(path: str | Path) -> str:
    """'cold' (< 5 % of pages cached), 'warm' (> 95 %) or 'partial'."""
    frac = resident_fraction(path)
    return "cold" if frac < 0.05 else "warm" if frac > 0.95 else "partial"


@dataclass(frozen=True, slots=True)
class ReadRate:
    """Sequential read of a whole file: how fast the disk (cold) or the page cache (warm) delivers."""

    path: str
    num_bytes: int
    read_s: float
    read_bytes_per_s: float
    page_cache_before: float  # resident fraction measured just before the read
    is_cold: bool


def measure_read_rate(path: str | Path, cold: bool = True, block_bytes: int = 16 * 2**20) -> ReadRate:
    """The one disk-read probe: read `path` in `block_bytes` chunks with `readinto`; rate = bytes / s.

    cold evicts the file first (and checks it): the rate is the disk's; warm: the page cache's.
    """
    if cold:
        evict(path)
    before = resident_fraction(path)
    buf = bytearray(block_bytes)
    total = 0
    with open(path, "rb", buffering=0) as f:
        t0 = time.perf_counter()
        while (n := f.readinto(buf)) > 0:
            total += n
        dt = time.perf_counter() - t0
    return ReadRate(str(path), total, dt, total / dt, before, cold)
