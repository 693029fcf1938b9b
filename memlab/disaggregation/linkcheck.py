"""The simulator checked against a real link of known speed (lab 07, section 9).

`disagg.run_split(..., link_gbps=rates)` sends the KV cache over a loopback the kernel shapes to
each rate (`memlab.core.shaped`). Here the calibrated simulator predicts the same runs, and the
two are put side by side:

  the link's path     copies at both ends (the calibrated loopback fit: latency + bytes / rate_lo)
                      in series with the shaped wire:  transfer = latency + bytes / rate_lo + bytes / G
  TTFT at decode      prefill + transfer: the first token is available on the decode worker
                      (the simulator's `ttft_includes_transfer`); its error splits into the prefill's
                      miss (the profile against this run's prefill) and the link's (ttft_link_error)
  alpha-beta fit      of the measured transfers over the sweep: transfer = alpha + k x bytes / G, so
                      1 / k is the share of the asked rate the transfers achieved
  break-even          the rate G* below which sending the KV costs more than recomputing the prefill:
                      latency + bytes / rate_lo + bytes / G* = prefill  ->  G* = bytes / (prefill - latency - bytes / rate_lo)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from memlab.core import shaped
from memlab.disaggregation.profiles import Profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestSpec


@dataclass(frozen=True, slots=True)
class LinkPoint:
    """One prompt over one shaped rate: the real split beside the simulator's prediction."""
    link_gbps: float               # asked
    link_measured_gbps: float      # the packed cache's sends alone (SplitResult.link_measured_gbps)
    prompt_tokens: int
    kv_bytes: int
    transfer_s: float              # measured: median of the split's sends (SplitResult.transfer_median_s)
    sim_transfer_s: float          # the simulator, same link
    transfer_rel_error: float      # sim / measured - 1
    transfer_spread: float         # |first send / median - 1|: how far one send of this run strayed
    prefill_s: float               # measured on the prefill worker in the same run (SplitResult.split_ttft_s)
    ttft_s: float                  # measured: prefill + transfer (first token available on the decode worker)
    sim_ttft_s: float
    ttft_rel_error: float          # sim / measured - 1
    sim_prefill_s: float           # the simulator's prefill of this prompt (the profile's)
    ttft_link_error: float         # the TTFT error with the prefill's miss set aside: (sim - measured transfer) / TTFT


@dataclass(frozen=True, slots=True)
class LinkFit:
    """transfer = alpha_s + bytes / (rate_share x G), least squares over the swept rates."""
    alpha_s: float                 # the fixed cost of a transfer: messages, pack, rebuild
    rate_share: float              # share of the asked rate the transfers achieved (1 / slope)


def path_bytes_per_s(profile: Profile, gbps: float) -> float:
    """The KV path's rate over a G Gbit/s wire: the copies at both ends (the profile's loopback rate)
    in series with the wire, 1 / (1 / rate_lo + 8 / (G x 1e9))."""
    return 1 / (1 / profile.link_bytes_per_s + 8 / (gbps * 1e9))


def compare(profile: Profile, splits, new_tokens: int) -> tuple[LinkPoint, ...]:
    """The simulator's transfer and TTFT for each shaped run in `splits` (SplitResults), beside the measured."""
    out = []
    for r in splits:
        if not r.link_gbps:
            continue
        cluster = Cluster("disagg", 1, 1, link_bytes_per_s=path_bytes_per_s(profile, r.link_gbps),
                          ttft_includes_transfer=True)
        (sim,) = simulate(profile, cluster, [RequestSpec(0, 0.0, r.prompt_tokens, new_tokens)])
        ttft = r.split_ttft_s + r.transfer_median_s
        out.append(LinkPoint(r.link_gbps, r.link_measured_gbps, r.prompt_tokens, r.kv_bytes, r.transfer_median_s,
                             sim.transfer_s, sim.transfer_s / r.transfer_median_s - 1,
                             abs(r.transfer_s / r.transfer_median_s - 1), r.split_ttft_s, ttft,
                             sim.ttft_s, sim.ttft_s / ttft - 1, sim.prefill_s,
                             (sim.ttft_s - ttft - (sim.prefill_s - r.split_ttft_s)) / ttft))
    return tuple(out)


def fit(points) -> LinkFit:
    """Least squares of transfer_s on x = bytes x 8 / (G x 1e9), the wire time at the asked rate."""
    xs = [p.kv_bytes * 8 / (p.link_gbps * 1e9) for p in points]
    ys = [p.transfer_s for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return LinkFit(my - slope * mx, 1 / slope if slope > 0 else math.inf)


def predicted_break_even_gbps(profile: Profile, prompt_tokens: int) -> float:
    """G* = bytes / (prefill - latency - bytes / rate_lo), in Gbit/s; inf when even an infinitely fast
    wire costs more than the prefill (the copies alone do)."""
    kv = profile.kv_bytes_per_token * prompt_tokens
    spare = profile.prefill_s([prompt_tokens]) - profile.link_latency_s - kv / profile.link_bytes_per_s
    return kv * 8 / spare / 1e9 if spare > 0 else math.inf


def sweep_rates(predicted_gbps: float, fixed=(0.2, 1.0), factors=(0.5, 1.0, 2.0)) -> tuple[float, ...]:
    """The rates to shape, ascending: `fixed` and the predicted break-even times each factor, clamped to
    what core.shaped can shape and rounded to 2 significant digits."""
    around = [predicted_gbps * f for f in factors] if math.isfinite(predicted_gbps) else []
    clamped = {min(max(g, shaped.MIN_GBPS), shaped.MAX_GBPS) for g in list(fixed) + around}
    return tuple(sorted({float(f"{g:.2g}") for g in clamped}))


def measured_break_even(points) -> tuple[float, float]:
    """(low, high) Gbit/s bracketing the measured break-even: `high` is the slowest swept rate at which
    the transfer took less than the prefill (the median prefill over the sweep: it does not depend on
    the link), `low` the swept rate below it (0.0 if none; (fastest, inf) if no rate was fast enough)."""
    prefill = statistics.median(p.prefill_s for p in points)
    rates = sorted({p.link_gbps for p in points})
    by_rate = {g: statistics.median(p.transfer_s for p in points if p.link_gbps == g) for g in rates}
    for i, g in enumerate(rates):
        if by_rate[g] < prefill:
            return (rates[i - 1] if i else 0.0), g
    return rates[-1], math.inf


def within_one_step(predicted_gbps: float, rates, bracket: tuple[float, float]) -> bool:
    """True when the prediction lies in the measured bracket widened by one swept rate on each side."""
    rates = sorted(rates)
    low, high = bracket
    below = [g for g in rates if g < low]
    above = [g for g in rates if g > high]
    return (below[-1] if below else 0.0) <= predicted_gbps <= (above[0] if above else math.inf)


def prefill_spread(points) -> float:
    """max / min - 1 of the prefill measured over the sweep: the same prompt, the same work, so what it
    moves is the machine's noise, and a TTFT error within it is not the simulator's."""
    pre = [p.prefill_s for p in points]
    return max(pre) / min(pre) - 1


def prefill_rel_error(profile: Profile, points) -> float:
    """The simulator's prefill against this sweep's (median) measured prefill, sim / measured - 1: the part
    of its TTFT error that is the profile's, not the link's (the profile was calibrated minutes earlier)."""
    measured = statistics.median(p.prefill_s for p in points)
    return profile.prefill_s([points[0].prompt_tokens]) / measured - 1
