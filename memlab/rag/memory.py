"""What an index holds in this process's memory, counted two ways (lab 06's scale sweep, `memlab.rag.sweep`).

- `heap_bytes`: what code asked the C allocator for (glibc's own count), whatever pages back it;
- `anon_rss_bytes`: the resident pages of the heap (RSS less library code and mapped files), which the
  kernel counts in pages: 4 KiB, or 2 MiB where transparent huge pages are `always` (`rss_granule_bytes`);
- `held_by`: both, grown by making an object, once its one-time costs are paid.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable

import psutil

from memlab.core.measure import release_freed_memory


def anon_rss_bytes() -> int:
    """The anonymous part of the RSS (heap, arrays): RSS less file-backed pages (library code, mapped files)
    and shared memory. Where the OS gives no split (not Linux), the whole RSS."""
    info = psutil.Process().memory_info()
    return info.rss - getattr(info, "shared", 0)


@functools.cache
def _mallinfo2():
    """glibc's `mallinfo2`, looked up once (find_library runs ldconfig: not between two counts), or None."""
    import ctypes
    import ctypes.util

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        info = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    info.restype = MallInfo2
    return info


def heap_bytes() -> float:
    """Bytes the C allocator has handed out and not freed, over all its arenas and its mapped blocks (glibc's
    `mallinfo2`: in-use chunks + mmapped chunks): what code asked malloc for, whatever pages the kernel backs
    it with. nan where the allocator keeps no such count (glibc before 2.33, macOS, musl)."""
    info = _mallinfo2()
    if info is None:
        return float("nan")
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
