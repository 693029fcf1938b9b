"""core.hierarchy: the cache staircase read off measured rates, and one real sweep."""

from memlab.core import hierarchy

MiB = 2**20


def test_sizes_double_up_to_the_largest():
    assert hierarchy.sizes(40 * MiB) == (4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB, 40 * MiB)
    assert hierarchy.sizes(4 * MiB) == (4 * MiB,)


def test_the_edge_is_the_working_set_after_the_last_fast_one():
    ns = hierarchy.sizes(256 * MiB)                      # 4 .. 256 MiB, 7 sizes
    rates = [80, 50, 30, 50, 50, 24, 24]                 # a dip at 16 MiB, then fast again, DRAM from 128 MiB
    st = hierarchy.from_rates(ns, rates, os_cache_bytes=100 * MiB)
    assert st.cache_bytes == 128 * MiB and st.dram_gb_per_s == 24 and st.cache_gb_per_s == 80 and st.tail_is_dram
    flat = hierarchy.from_rates(ns, [25, 24, 24, 25, 24, 24, 24])
    assert flat.cache_bytes == 4 * MiB                   # no cache beats DRAM: nothing is assumed to stay cached


def test_a_tail_inside_the_reported_cache_keeps_the_reported_size():
    """On a small container the largest array may still fit the L3: its rate is no DRAM rate."""
    ns = hierarchy.sizes(64 * MiB)
    st = hierarchy.from_rates(ns, [50] * len(ns), os_cache_bytes=480 * MiB)
    assert not st.tail_is_dram and st.cache_bytes == 480 * MiB


def test_a_real_staircase_reads_small_arrays_faster_than_dram():
    st = hierarchy.staircase(quick=True, repeats=3)
    assert st.sizes_bytes[0] == hierarchy.SMALLEST and st.sizes_bytes == tuple(sorted(st.sizes_bytes))
    assert all(r > 0 for r in st.read_gb_per_s) and st.cache_gb_per_s >= st.dram_gb_per_s
    assert st.sizes_bytes[0] <= st.cache_bytes <= max(st.sizes_bytes[-1], st.os_cache_bytes)
