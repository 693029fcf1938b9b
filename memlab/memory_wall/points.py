"""Measured steps as points on the roofline (lab 01's roofline figure), and the ridge point between
its two roofs. The bounds themselves (workloads, `predict`) are the core's: core/roofline.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlab.core.roofline import Workload, decode_workload, prefill_workload


@dataclass(frozen=True, slots=True)
class Point:
    """A measured step placed on the roofline."""

    label: str
    phase: str
    intensity_flop_per_byte: float
    flop_per_s: float           # achieved: workload FLOPs / measured time
    bytes_per_s: float          # achieved: workload bytes / measured time
    time_s: float
    tok_per_s: float


def ridge_point(peak_flop_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """I* = peak / bandwidth (FLOP/byte): left of it a step is memory-bound."""
    return peak_flop_per_s / bandwidth_bytes_per_s


def point(label: str, workload: Workload, time_s: float) -> Point:
    """A measured step of `workload` that took `time_s`, as a point on the roofline."""
    return Point(label, workload.phase, workload.intensity_flop_per_byte, workload.flops / time_s,
                 workload.bytes / time_s, time_s, workload.batch_size * workload.num_tokens / time_s)


def points_from_generation(result, config: Any, label: str = "") -> list[Point]:
    """Prefill and (mean) decode points of a GenerationResult (context = prompt + half the new tokens)."""
    label = label or f"{result.model_name} {result.dtype} B={result.batch_size}"
    pre = prefill_workload(config, result.prompt_tokens, result.batch_size, result.dtype)
    out = [point(f"{label} prefill", pre, result.prefill_s)]
    if result.new_tokens > 1:
        ctx = result.prompt_tokens + result.new_tokens // 2
        dec = decode_workload(config, result.batch_size, ctx, result.dtype)
        out.append(point(f"{label} decode", dec, result.tpot_s))
    return out
