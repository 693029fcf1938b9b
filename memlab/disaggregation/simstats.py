"""What the simulator's request records mean: latency distributions, SLOs, goodput (lab 07).

Definitions (DistServe, Zhong et al., OSDI 2024; published targets in `slo.py`):
  SLO attainment = share of requests with ttft_s <= ttft_slo_s AND tpot_s <= tpot_slo_s.
  goodput        = the highest arrival rate (req/s) at which SLO attainment stays >= a target
                   (90 % by default); per-worker goodput divides it by the number of workers,
                   which is how DistServe compares clusters of different sizes.
Also: a Chrome-trace export of the simulated timeline (open it in chrome://tracing or Perfetto).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from memlab.core.errors import InvalidArgumentError
from memlab.core.results import as_dict
from memlab.disaggregation.profiles import Profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestRecord, Traffic


@dataclass(frozen=True, slots=True)
class SimSummary:
    mode: str
    num_prefill_workers: int
    num_decode_workers: int
    num_requests: int
    rate_per_s: float                 # offered load (requests / span of arrivals)
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p90_s: float
    tpot_p99_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    transfer_p50_s: float
    ttft_slo_s: float
    tpot_slo_s: float
    slo_attainment: float             # fraction of requests meeting both SLOs
    throughput_req_per_s: float       # finished requests / (last finish - first arrival)

    def as_json(self, profile=None) -> dict:
        """The `memlab simulate --json` view: the summary, plus the profile it ran on."""
        return {**as_dict(self), **({"profile": as_dict(profile)} if profile is not None else {})}


def summarize(records: tuple[RequestRecord, ...], cluster: Cluster = Cluster(),
              ttft_slo_s: float = float("inf"), tpot_slo_s: float = float("inf")) -> SimSummary:
    """Percentiles of TTFT, TPOT, E2E and the SLO attainment of one simulated run."""
    ttft = np.array([r.ttft_s for r in records])
    tpot = np.array([r.tpot_s for r in records if r.output_tokens > 1] or [0.0])
    e2e = np.array([r.e2e_s for r in records])
    first = min(r.arrived_at_s for r in records)
    span = max(r.arrived_at_s for r in records) - first
    ok = sum(1 for r in records if r.ttft_s <= ttft_slo_s and r.tpot_s <= tpot_slo_s)
    q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
    return SimSummary(
        cluster.mode, cluster.num_prefill_workers, cluster.num_decode_workers, len(records),
        (len(records) - 1) / span if span > 0 else float("nan"),
        q(ttft, 50), q(ttft, 90), q(ttft, 99), q(tpot, 50), q(tpot, 90), q(tpot, 99),
        q(e2e, 50), q(e2e, 99), q(np.array([r.transfer_s for r in records]), 50),
        ttft_slo_s, tpot_slo_s, ok / len(records),
        len(records) / (max(r.finished_at_s for r in records) - first))


def cached_token_share(records) -> float:
    """Share of all prompt tokens the prefix cache served (their prefill was skipped)."""
    return sum(r.cached_tokens for r in records) / sum(r.prompt_tokens for r in records)


def slo_attainment(records, ttft_slo_s: float, tpot_slo_s: float) -> float:
    """Share of requests that meet both the TTFT and the TPOT target."""
    return sum(1 for r in records if r.ttft_s <= ttft_slo_s and r.tpot_s <= tpot_slo_s) / len(records)


@dataclass(frozen=True, slots=True)
class GoodputResult:
    """What a goodput search found: the rate, its bracket, and the attainment on both sides."""

    mode: str
    num_workers: int
    ttft_slo_s: float
    tpot_slo_s: float
    target: float                     # share of requests that must meet both SLOs
    rate_per_s: float                 # goodput of the whole cluster (requests/s); 0.0 if even light load fails
    goodput_per_worker: float         # rate_per_s / num_workers (DistServe's per-GPU goodput)
    resolution_per_s: float           # the bracket's width: the true crossing is in [rate, rate + resolution)
    attainment_at_rate: float         # SLO attainment at rate_per_s (>= target unless rate is 0)
    attainment_above: float           # ... at rate_per_s + resolution_per_s (< target when is_bracketed)
    is_bracketed: bool                # False: even the top of the search range met the target
    num_simulations: int


def goodput_search(profile: Profile, cluster: Cluster, workload: Traffic, ttft_slo_s: float,
                   tpot_slo_s: float, target: float = 0.9, max_rate_per_s: float | None = None,
                   iterations: int = 12) -> GoodputResult:
    """DistServe's goodput: the highest rate (req/s) whose SLO attainment is still >= target, by bisection.

    Every probe serves the same seeded requests (`workload.seed`), only the arrival gaps scale with
    the rate, so the search is deterministic. The bracket starts at (0, hi] with hi = `max_rate_per_s`
    or 4x what the cluster can prefill; if hi still meets the target it doubles (up to 4 times).
    Then `iterations` halvings leave a bracket of width hi / 2**iterations, the resolution.
    Attainment need not be exactly monotone in the rate (a seeded sample); the search returns one
    crossing, with the attainment measured on both sides of it.
    """
    if not 0 < target <= 1:
        raise InvalidArgumentError(f"target is a share of requests in (0, 1], got {target}")
    runs = 0

    def attainment(rate):
        nonlocal runs
        runs += 1
        return slo_attainment(simulate(profile, cluster, replace(workload, rate_per_s=rate)), ttft_slo_s, tpot_slo_s)
    hi = max_rate_per_s or 4 * cluster.num_workers / profile.prefill_s([workload.prompt_tokens])
    at_hi = attainment(hi)
    for _ in range(4 if max_rate_per_s is None else 0):
        if at_hi < target:
            break
        hi *= 2
        at_hi = attainment(hi)
    if at_hi >= target:
        return GoodputResult(cluster.mode, cluster.num_workers, ttft_slo_s, tpot_slo_s, target, hi,
                             hi / cluster.num_workers, 0.0, at_hi, at_hi, False, runs)
    lo, at_lo = 0.0, 1.0                  # no load: nothing waits (the convention that starts the bracket)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        at_mid = attainment(mid)
        if at_mid >= target:
            lo, at_lo = mid, at_mid
        else:
            hi, at_hi = mid, at_mid
    return GoodputResult(cluster.mode, cluster.num_workers, ttft_slo_s, tpot_slo_s, target, lo,
                         lo / cluster.num_workers, hi - lo, at_lo, at_hi, True, runs)


def goodput(profile: Profile, cluster: Cluster, workload: Traffic, ttft_slo_s: float,
            tpot_slo_s: float, target: float = 0.9, max_rate_per_s: float | None = None,
            iterations: int = 12) -> float:
    """Highest rate (req/s) with SLO attainment >= target: `goodput_search(...).rate_per_s`."""
    return goodput_search(profile, cluster, workload, ttft_slo_s, tpot_slo_s, target, max_rate_per_s,
                          iterations).rate_per_s


def best_ratio(profile: Profile, num_workers: int, workload: Traffic, ttft_slo_s: float,
               tpot_slo_s: float, target: float = 0.9, **cluster_kw) -> list[tuple[int, int, float]]:
    """Goodput per worker for every P:D split of `num_workers` (and colocated as P=0), best first."""
    rows = []
    for p in range(1, num_workers):
        cl = Cluster("disagg", p, num_workers - p, **cluster_kw)
        rows.append((p, num_workers - p, goodput(profile, cl, workload, ttft_slo_s, tpot_slo_s, target) / num_workers))
    cl = Cluster("colocated", num_workers - 1, 1, **cluster_kw)
    rows.append((0, num_workers, goodput(profile, cl, workload, ttft_slo_s, tpot_slo_s, target) / num_workers))
    return sorted(rows, key=lambda row: -row[2])


def chrome_trace(records: tuple[RequestRecord, ...], path: str | Path | None = None) -> dict:
    """Chrome trace-event JSON of the timeline: one row per worker, prefill / transfer / decode spans.

    Colocated runs put prefill and decode on the same worker row (pid 'worker').
    """
    us = 1e6
    events = []
    colocated = all(r.kv_bytes == 0 for r in records)
    for r in records:
        pre = "worker" if colocated else "prefill"
        dec = "worker" if colocated else "decode"
        events.append({"name": f"prefill r{r.request_id}", "ph": "X", "pid": pre, "tid": r.prefill_worker,
                       "ts": r.prefill_started_at_s * us, "dur": r.prefill_s * us,
                       "args": {"prompt_tokens": r.prompt_tokens}})
        events.append({"name": f"queued r{r.request_id}", "ph": "X", "pid": "queue", "tid": r.request_id,
                       "ts": r.arrived_at_s * us, "dur": (r.prefill_started_at_s - r.arrived_at_s) * us})
        if r.transfer_s > 0:
            events.append({"name": f"kv r{r.request_id}", "ph": "X", "pid": "link", "tid": r.prefill_worker,
                           "ts": r.transfer_started_at_s * us, "dur": r.transfer_s * us,
                           "args": {"kv_bytes": r.kv_bytes}})
        if r.output_tokens > 1:
            events.append({"name": f"decode r{r.request_id}", "ph": "X", "pid": dec,
                           "tid": f"{r.decode_worker}.{r.request_id}", "ts": r.decode_started_at_s * us,
                           "dur": (r.finished_at_s - r.decode_started_at_s) * us,
                           "args": {"output_tokens": r.output_tokens}})
    trace = {"traceEvents": events, "displayTimeUnit": "ms"}
    if path is not None:
        Path(path).write_text(json.dumps(trace))
    return trace


def load_sweep(profile: Profile, clusters, workload: Traffic, rates, ttft_slo_s: float = float("inf"),
               tpot_slo_s: float = float("inf")) -> list[SimSummary]:
    """One SimSummary per (cluster, rate): the same seeded requests, arriving faster."""
    return [summarize(simulate(profile, cl, replace(workload, rate_per_s=rate)), cl, ttft_slo_s, tpot_slo_s)
            for cl in clusters for rate in rates]


def link_sweep(profile: Profile, cluster: Cluster, workload: Traffic, links: dict[str, float],
               ttft_slo_s: float = float("inf"), tpot_slo_s: float = float("inf")) -> list[tuple]:
    """(link name, bytes/s, SimSummary) per link, first token counted once the KV has landed."""
    rows = []
    for name, bw in sorted(links.items(), key=lambda kv: kv[1]):
        cl = replace(cluster, link_bytes_per_s=bw, ttft_includes_transfer=True)
        rows.append((name, bw, summarize(simulate(profile, cl, workload), cl, ttft_slo_s, tpot_slo_s)))
    return rows
