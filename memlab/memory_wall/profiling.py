"""Where a decode step's time goes: transformers' eager modules against memlab's fast path (lab 01).

`profile_decode_step` runs one warmed-up step under torch.profiler and splits its CPU time into
matmul kernels and everything else (the overhead wall: hundreds of small operators per token, each
costing microseconds of Python and dispatcher work whatever its size). `profile_both` sets the
eager step beside the fast path's (`memlab.core.fastpath`). `timed_with_roof` picks the kernel
timings of a choice (`memlab.core.kernels`) that were timed in the same minute as its roof.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from memlab.core.fastpath import FastLlama
from memlab.core.generation import decode_step, new_cache, prefill


@dataclass(frozen=True, slots=True)
class OpTime:
    """One operator's share of a profiled decode step."""

    name: str
    num_calls: int
    self_cpu_s: float           # time inside the op itself, children excluded


@dataclass(frozen=True, slots=True)
class StepProfile:
    """Where one decode step's time goes (torch.profiler, CPU time)."""

    label: str
    step_s: float               # wall time of the profiled step
    num_ops: int                # aten operator calls dispatched in one step
    matmul_s: float             # self time in matmul kernels (mm, addmm, bmm, linear)
    other_s: float              # everything else: the overhead wall
    top_ops: tuple              # OpTime, the largest self times first


_MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
               "aten::_scaled_dot_product_flash_attention_for_cpu")


def profile_decode_step(step, label: str = "", top: int = 12) -> StepProfile:
    """Profile one call of `step()` (a decode step, already warmed up) with torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        step_s = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    num_ops = sum(e.count for e in events)
    matmul_s = sum(e.self_cpu_time_total for e in events if e.key in _MATMUL_OPS) / 1e6
    total_self_s = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    ops = tuple(OpTime(e.key, e.count, e.self_cpu_time_total / 1e6) for e in events[:top])
    return StepProfile(label, step_s, num_ops, matmul_s, max(total_self_s - matmul_s, 0.0), ops)


@torch.inference_mode()
def profile_both(model, input_ids: torch.Tensor) -> tuple[StepProfile, StepProfile]:
    """Profile one warmed-up decode step of transformers' eager model and of `FastLlama` with torch's
    F.linear for every matmul and torch's operators between them: every kernel an aten op the profiler sees."""
    T = input_ids.shape[1]
    cache = new_cache(model)
    tok = prefill(model, input_ids, cache).argmax(-1, keepdim=True)  # (B, 1)
    decode_step(model, tok, cache)  # warm-up
    eager = profile_decode_step(lambda: decode_step(model, tok, cache), "eager (transformers modules)")
    fast = FastLlama(model, max_len=T + 4, batch_size=input_ids.shape[0], kernels="linear")
    tok = fast.prefill(input_ids).argmax(-1, keepdim=True)
    fast.step(tok, T)  # warm-up
    return eager, profile_decode_step(lambda: fast.step(tok, T + 1), "fast path through torch (fused, static cache, F.linear)")


def profile_table(*profiles: StepProfile):
    """Side-by-side summary of StepProfiles as a DataFrame (ms and operator counts)."""
    import pandas as pd
    return pd.DataFrame([{"path": p.label, "step_ms": p.step_s * 1e3, "aten_calls": p.num_ops,
                          "matmul_ms": p.matmul_s * 1e3, "other_ms": p.other_s * 1e3,
                          "top_op": p.top_ops[0].name if p.top_ops else ""} for p in profiles])


def timed_with_roof(choice) -> tuple:
    """The KernelTimes of `choice` timed beside its `roof_gb_per_s`: all of them in a fresh choice; in one
    read from the cache only the chosen kernels at the step's thread count, which `kernels.retime` timed
    again with the roof (the others are a past minute's, on a machine whose bandwidth drifts)."""
    if not choice.from_cache:
        return tuple(choice.times)
    chosen = set(choice.kernels)
    return tuple(t for t in choice.times if (t.role, t.kernel) in chosen and t.threads == choice.step_threads)
