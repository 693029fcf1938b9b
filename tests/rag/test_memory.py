"""memlab.rag.memory: what an object holds, by the allocator's count and in RSS, and the anonymous RSS that
leaves mapped files and library code out."""

import math
import os
import sys

import numpy as np
import pytest

from memlab.core.measure import release_freed_memory, rss_bytes
from memlab.rag import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the anonymous/file split is Linux's")
def test_anon_rss_counts_arrays_not_mapped_files(tmp_path):
    """An array read into RAM grows the anonymous RSS; a mapped file's pages, touched, grow the RSS only."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(64 * 2**20))
    release_freed_memory()
    anon0, rss0 = memory.anon_rss_bytes(), rss_bytes()
    mapped = np.memmap(path, np.uint8, mode="r")
    total = int(mapped[::4096].sum())  # touch every page
    assert rss_bytes() - rss0 > 48 * 2**20 and abs(memory.anon_rss_bytes() - anon0) < 8 * 2**20, total
    del mapped
    anon0 = memory.anon_rss_bytes()
    held = np.fromfile(path, np.uint8)
    assert abs(memory.anon_rss_bytes() - anon0 - held.nbytes) < 8 * 2**20


def test_held_by_counts_what_an_object_holds_once_its_one_time_costs_are_paid():
    """An array made by `make` holds its bytes, by the allocator's count (where glibc keeps one) and in RSS; a
    first call's one-time allocation (a cache filled once) is not counted."""
    once = []

    def make():
        if not once:
            once.append(np.ones(8 * 2**20 // 8))  # 8 MiB kept for good on the first call only
        return np.ones(16 * 2**20 // 8)

    made, held = memory.held_by(make, repeats=1)
    assert made.nbytes == 16 * 2**20 and len(once) == 1
    assert 15 * 2**20 < held.rss_bytes < 17 * 2**20 + 2 * memory.rss_granule_bytes()
    if not math.isnan(memory.heap_bytes()):
        assert abs(held.heap_bytes - made.nbytes) < 2**16, held
