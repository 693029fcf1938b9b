"""The cache staircase: read bandwidth against working-set size, measured (labs 01 and 03).

A decode step reads every weight once per token, so whether the weights come from a cache or from
DRAM depends on how many bytes there are. `staircase` times the read kernel of `ceilings.stream`
(the same kernel as the memory roof: the sum of one fp32 array, best of `repeats`) on arrays from
4 MiB, doubling, up to `ceilings.array_size` (at least twice the last-level cache the OS reports).
The largest array reads from DRAM; a smaller one that reads clearly faster (more than `margin`
times) was served by a cache.

Lab 01 draws it (`memory_wall.plots.staircase`); labs 01 and 03 pass `cache_bytes` to their decode
bounds (`roofline.predict(cached_bytes=...)`).

`cache_bytes` is the smallest working set that no longer reads faster than DRAM: an upper bound on
how many bytes stay cached between two passes, as a bound needs (the read kernel re-reads its array
back to back, the most cache-friendly pass there is). On a virtual machine that shares its socket
with other tenants it can be far below the L3 size the OS reports
(`HardwareCard.last_level_cache_bytes`, the whole socket's). Where memory is too short for an array
twice the reported cache (`tail_is_dram` False), `cache_bytes` is never below the reported size.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core import ceilings
from memlab.core.hardware import last_level_cache_bytes

MiB = 2**20
SMALLEST = 4 * MiB  # smaller arrays time the kernel's launch and thread start more than the reads
MARGIN = 1.25       # faster than DRAM by more than this: served by a cache, not by noise


@dataclass(frozen=True, slots=True)
class Staircase:
    """Read GB/s per working set, and what it says about the caches."""

    sizes_bytes: tuple[int, ...]
    read_gb_per_s: tuple[float, ...]
    dram_gb_per_s: float        # the largest working set's rate
    cache_gb_per_s: float       # the fastest rate seen (a cache's, when it beats DRAM)
    cache_bytes: int            # smallest working set that reads at DRAM speed (upper bound on the cached bytes)
    os_cache_bytes: int         # the last-level cache the OS reports (0 where it does not say)
    margin: float
    tail_is_dram: bool          # the largest array is at least twice os_cache_bytes (else cache_bytes >= it)


def sizes(largest: int, smallest: int = SMALLEST) -> tuple[int, ...]:
    """smallest, 2 x smallest, ... while below `largest`, then `largest` itself."""
    out, n = [], smallest
    while n < largest:
        out.append(n)
        n *= 2
    return tuple(out + [largest])


def from_rates(sizes_bytes, rates_gb_per_s, os_cache_bytes: int = 0, margin: float = MARGIN) -> Staircase:
    """Read the staircase off measured rates (largest working set last: it is DRAM's)."""
    dram = rates_gb_per_s[-1]
    fast = [i for i, r in enumerate(rates_gb_per_s[:-1]) if r > margin * dram]
    # the working set after the last fast one: a dip before it (noise) must not shrink the bound
    cache = sizes_bytes[fast[-1] + 1] if fast else sizes_bytes[0]
    tail_is_dram = not os_cache_bytes or sizes_bytes[-1] >= 2 * os_cache_bytes
    if not tail_is_dram:  # too little memory for an array past the cache: the "DRAM" rate may be a cache's
        cache = max(cache, os_cache_bytes)
    return Staircase(tuple(sizes_bytes), tuple(rates_gb_per_s), dram, max(rates_gb_per_s), cache,
                     os_cache_bytes, margin, tail_is_dram)


def staircase(quick: bool = False, repeats: int | None = None) -> Staircase:
    """Measure the read rate at every working set of `sizes(ceilings.array_size(quick))`, on the CPU."""
    ns = sizes(ceilings.array_size(quick))
    reps = repeats or (3 if quick else 7)
    rates = [ceilings.stream(n, reps, read_only=True)["read"] for n in ns]
    return from_rates(ns, rates, last_level_cache_bytes())
