"""Where a decode step's time goes: the profiler's split of eager and fast-path steps."""

import torch

from memlab.core import fastpath
from memlab.memory_wall import profiling


def test_profile_counts_ops(tiny):
    fast = fastpath.FastLlama(tiny.model, max_len=8, step="torch")  # torch operators: what a profiler counts
    ids = torch.tensor([[1, 2, 3]])
    fast.prefill(ids)
    prof = profiling.profile_decode_step(lambda: fast.step(ids[:, :1], 3), "fast")
    assert prof.num_ops > 10 and prof.step_s > 0
    assert prof.top_ops and all(o.self_cpu_s >= 0 for o in prof.top_ops)


def test_profile_both(tiny):
    eager, fast = profiling.profile_both(tiny.model, torch.tensor([[1, 2, 3, 4]]))
    assert fast.num_ops < eager.num_ops  # fewer, larger operations: the point of the fast path
    table = profiling.profile_table(eager, fast)
    assert list(table["aten_calls"]) == [eager.num_ops, fast.num_ops]


def test_timed_with_roof_keeps_only_this_minutes_rows():
    from types import SimpleNamespace as NS
    rows = (NS(role="qkv", kernel="c", threads=1), NS(role="qkv", kernel="blas", threads=1),
            NS(role="qkv", kernel="c", threads=2), NS(role="o", kernel="linear", threads=1))
    fresh = NS(from_cache=False, kernels=(("qkv", "c"), ("o", "linear")), step_threads=1, times=rows)
    assert profiling.timed_with_roof(fresh) == rows  # all timed beside the roof
    cached = NS(**{**vars(fresh), "from_cache": True})  # retime timed only the chosen kernels at step_threads again
    assert profiling.timed_with_roof(cached) == (rows[0], rows[3])
