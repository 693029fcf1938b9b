"""Units: the one place bytes, seconds and rates are converted for display.

Capacity is shown in binary units (KiB, MiB, GiB = 1024^n), bandwidth and FLOP/s in decimal
units (GB/s = 1e9 B/s), and every label says which. Records always hold base units (bytes,
seconds); only display code calls these helpers. Used by every lab.
"""

from __future__ import annotations

import math

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
KB, MB, GB, TB = 1000, 1000**2, 1000**3, 1000**4


def fmt_bytes(num_bytes: float) -> str:
    """Capacity in binary units: 538090408 -> '513.2 MiB'."""
    value = float(num_bytes)
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_rate(bytes_per_s: float) -> str:
    """Bandwidth in decimal units: 3.42e10 -> '34.2 GB/s'."""
    value = float(bytes_per_s)
    for unit, scale in (("TB/s", TB), ("GB/s", GB), ("MB/s", MB), ("KB/s", KB)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B/s"


def fmt_flops(flop_per_s: float) -> str:
    """Compute rate in decimal units: 1.72e11 -> '172.0 GFLOP/s'."""
    value = float(flop_per_s)
    for unit, scale in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} FLOP/s"


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits: 0.0123 -> '12.3 ms'."""
    s = float(seconds)
    if not math.isfinite(s):
        return f"{s} s"  # "nan s", "inf s": not a duration in ns
    if abs(s) >= 1.0:
        return f"{s:.2f} s"
    if abs(s) >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    if abs(s) >= 1e-6:
        return f"{s * 1e6:.0f} us"
    return f"{s * 1e9:.0f} ns"
