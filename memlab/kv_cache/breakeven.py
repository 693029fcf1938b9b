"""The break-even: the prefix length above which restoring a KV cache beats recomputing it (lab 09).

Restoring moves bytes, recomputing does FLOPs; both grow with the prefix length P:
    restore(P)   = a_t + P x kv_bytes_per_token / rate_t           (a_t: a tier's fixed cost)
    recompute(P) = a_r + (2 x body params x P + 2 x L x H x D x P x (P + 1)) / FLOP/s
On this machine, `fit` draws a straight line through each way's measured prefix times and
`crossover_tokens` is where a tier's line drops below recompute's. For a machine that is not here,
`spec_curves` uses the device table (`memlab.core.devices`): a GPU's peak FLOP/s, and the
bandwidth of each tier below it (host RAM over PCIe, an NVMe or SATA SSD); `spec_crossover` is
where the restore curve drops below the recompute curve (fixed costs left out: both at their
peak, the best case of each). A fast GPU recomputes so fast that a slow disk only wins for long
prefixes, where attention's P^2 term has grown: that is where the answer flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memlab.core import devices, footprint
from memlab.kv_cache.reuse import prefix_flops

SERVER_GPU = "NVIDIA H100 SXM5"
SERVER_TIERS = {"host RAM over PCIe 5.0 x16": "PCIe 5.0 x16",  # tier -> its device-table row
                "NVMe SSD": "Samsung 990 PRO NVMe (PCIe 4.0)",
                "SATA SSD": "SATA III SSD"}


@dataclass(frozen=True, slots=True)
class Line:
    """prefix_s ~= intercept_s + slope_s_per_token x P, least squares over the measured lengths."""

    way: str
    intercept_s: float
    slope_s_per_token: float


@dataclass(frozen=True, slots=True)
class Crossover:
    """Where restoring from `tier` starts to beat recomputing the prefix."""

    machine: str                 # "this machine" or a device-table name
    tier: str
    crossover_tokens: float      # 0: restoring always wins; inf: never within the model's reach
    source: str                  # "measured (fit over N lengths)" or "spec sheets"


def fit(runs) -> dict[str, Line]:
    """One straight line per way through its (P, median prefix_s) points (needs two lengths or more)."""
    out = {}
    for way in dict.fromkeys(r.way for r in runs):
        pts = sorted((r.prefix_tokens, r.prefix_s) for r in runs if r.way == way)
        if len({p for p, _ in pts}) < 2:
            continue
        slope, intercept = np.polyfit([p for p, _ in pts], [s for _, s in pts], 1)
        out[way] = Line(way, float(intercept), float(slope))
    return out


def crossover_tokens(tier: Line, recompute: Line) -> float:
    """P where the tier's line falls below recompute's: 0 if it is below everywhere, inf if never."""
    gap_per_token = recompute.slope_s_per_token - tier.slope_s_per_token
    if gap_per_token <= 0:
        return 0.0 if tier.intercept_s < recompute.intercept_s else math.inf
    return max((tier.intercept_s - recompute.intercept_s) / gap_per_token, 0.0)


def measured(runs) -> list[Crossover]:
    """This machine's crossover for every way measured beside recompute."""
    lines = fit(runs)
    if "recompute" not in lines:
        return []
    n = len({r.prefix_tokens for r in runs})
    return [Crossover("this machine", way, crossover_tokens(line, lines["recompute"]),
                      f"measured (fit over {n} lengths)") for way, line in lines.items() if way != "recompute"]


def server_rates(gpu: str = SERVER_GPU, dtype: str = "bf16") -> tuple[float, dict[str, float]]:
    """(the GPU's peak FLOP/s for `dtype`, {tier: bytes/s}) from the device table."""
    row = devices.row(gpu)
    tflops = row.get(f"{dtype}_tflop_per_s") or row.get("fp32_tflop_per_s")
    return tflops * 1e12, {tier: devices.row(name)["bandwidth_gb_per_s"] * 1e9 for tier, name in SERVER_TIERS.items()}


def recompute_s(config, prefix_tokens, flop_per_s: float, dtype: str = "bf16") -> np.ndarray:
    """Seconds to recompute each prefix length at `flop_per_s` (prefix FLOPs, `reuse.prefix_flops`)."""
    return np.array([prefix_flops(config, int(p), dtype) / flop_per_s for p in prefix_tokens])


def restore_s(config, prefix_tokens, bytes_per_s: float, dtype: str = "bf16") -> np.ndarray:
    """Seconds to move each prefix's KV cache (`footprint.kv_cache_bytes`) at `bytes_per_s`."""
    return np.array([footprint.kv_cache_bytes(config, int(p), dtype=dtype) / bytes_per_s for p in prefix_tokens])


def spec_crossover(config, flop_per_s: float, bytes_per_s: float, dtype: str = "bf16",
                   max_tokens: int = 10**7) -> float:
    """The smallest P where restore(P) < recompute(P), by bisection over whole tokens (restore is
    linear in P and recompute convex, so once restoring wins it keeps winning). 0 / inf as in
    `crossover_tokens`."""
    def restore_wins(p: int) -> bool:
        return restore_s(config, [p], bytes_per_s, dtype)[0] < recompute_s(config, [p], flop_per_s, dtype)[0]
    if restore_wins(1):
        return 0.0
    if not restore_wins(max_tokens):
        return math.inf
    lo, hi = 1, max_tokens  # restore loses at lo, wins at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if restore_wins(mid) else (mid, hi)
    return float(hi)


def server(config, gpu: str = SERVER_GPU, dtype: str = "bf16", efficiency: float = 1.0) -> list[Crossover]:
    """The crossovers of a GPU server (recompute at `efficiency` x peak FLOP/s), per tier."""
    flops, rates = server_rates(gpu, dtype)
    return [Crossover(gpu, tier, spec_crossover(config, flops * efficiency, rate, dtype), "spec sheets")
            for tier, rate in rates.items()]


def server_curves(config, prefix_tokens, gpu: str = SERVER_GPU, dtype: str = "bf16",
                  efficiency: float = 1.0) -> dict[str, np.ndarray]:
    """{"recompute": seconds, tier: seconds, ...} over `prefix_tokens` on a GPU server (spec sheets)."""
    flops, rates = server_rates(gpu, dtype)
    out = {"recompute": recompute_s(config, prefix_tokens, flops * efficiency, dtype)}
    out.update({tier: restore_s(config, prefix_tokens, rate, dtype) for tier, rate in rates.items()})
    return out
