"""How wrong the simulator is on this machine: a trace served for real and simulated (lab 07).

`validate` runs two real workers (rank 0 prefills, rank 1 decodes) and alternates, `rounds` times,
a short calibration burst (prefill vs prompt length, decode step vs batch and context:
`calibration.measure_points`) with a chunk of the trace served for real (`serve.serve_rows`), and
ends with one more burst. The profile is fit to each point's median over all the bursts
(`calibration.merged`), so the calibration and the real requests sample the same minutes of the
machine. That is the point of the rounds: a shared VM's speed drifts by tens of percent over
seconds (on a 2-vCPU Xeon one thread's decode step moved between 55 and 80 ms within a minute, no
other work running, no steal time), and a single calibration before the run samples one moment of
that drift: five runs so calibrated missed the median TPOT by -35 % to +32 %. `calibration_spread`
reports this run's drift (slowest / fastest burst). Each chunk is served and simulated from an
empty system, arrivals rebased to its start, and its records shifted back to the trace's clock.

The error of a latency is (simulated - real) / real, for the medians and the 90th percentiles; the
service-time errors (one prefill, one request's decode steps, no queueing) say whether the cost
model or the queueing is wrong. A second calibration, with the other rank busy, measures the
interference the two workers suffer on one machine (`contended_*`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

import numpy as np

from memlab.core import launch
from memlab.core.models import DEFAULT_MODEL
from memlab.disaggregation import serve
from memlab.disaggregation.calibration import fit_profile, measure_points, merged, worker_grid
from memlab.disaggregation.profiles import Profile
from memlab.disaggregation.serve import to_records
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, RequestRecord, Traffic, trace_at_utilization, validation_workload


@dataclass(frozen=True, slots=True)
class Validation:
    num_requests: int
    real_ttft_p50_s: float
    sim_ttft_p50_s: float
    ttft_rel_error: float         # (sim - real) / real
    real_tpot_p50_s: float
    sim_tpot_p50_s: float
    tpot_rel_error: float
    real_transfer_p50_s: float
    sim_transfer_p50_s: float
    prefill_rel_error: float      # median over requests of predicted / real prefill time - 1
    decode_step_rel_error: float  # same for the mean decode step (service time, no queueing)
    contended_ttft_rel_error: float    # the same, simulated with the profile measured next to a busy neighbour
    contended_tpot_rel_error: float
    prefill_contention_slowdown: float # contended / alone: 256-token prefill
    decode_contention_slowdown: float  # contended / alone: decode step, batch 1, 256 tokens of context
    load_avg_1m: float            # os.getloadavg() after the run: other work on this machine
    num_cpus: int
    profile_source: str
    ttft_p90_rel_error: float = float("nan")   # the same error of the 90th percentiles
    tpot_p90_rel_error: float = float("nan")
    backend: str = "gloo"                # of the two real workers' group
    hosts: tuple = ()                    # the prefill and the decode worker's hosts (two under torchrun across nodes)
    rounds: int = 1                      # calibration bursts between served chunks: rounds + 1 bursts, rounds chunks
    calibration_spread: float = float("nan")  # slowest / fastest burst's batch-1 decode step: the machine's drift


def _chunks(trace, rounds: int) -> list[tuple[float, tuple]]:
    """The trace cut into `rounds` runs of consecutive requests: (start on the trace's clock, the run
    with its arrivals rebased to that start)."""
    out = []
    for idx in np.array_split(np.arange(len(trace)), min(rounds, len(trace))):
        part = [trace[i] for i in idx]
        start = part[0].arrived_at_s
        out.append((start, tuple(replace(r, arrived_at_s=r.arrived_at_s - start) for r in part)))
    return out


def _shifted(records, dt: float) -> tuple[RequestRecord, ...]:
    """Records moved `dt` seconds later on the clock (every `*_at_s` field)."""
    at = [f.name for f in fields(RequestRecord) if f.name.endswith("_at_s")]
    return tuple(replace(r, **{f: getattr(r, f) + dt for f in at}) for r in records)


def _validate_worker(rank, world_size, model_name, trace, workload, utilization, quick, rounds):
    import torch.distributed as dist

    loaded, kw = worker_grid(model_name, quick)
    bursts = [measure_points(rank, loaded, **kw)]
    # a neighbour on another host (torchrun across nodes) shares no cores, and cannot see the stop flag
    one_host = len(set(launch.rank_hosts())) == 1
    busy = measure_points(rank, loaded, **kw, neighbour_busy=True) if one_host else bursts[0]
    box = [trace or (trace_at_utilization(fit_profile(bursts[0]), workload, utilization) if rank == 0 else None)]
    dist.broadcast_object_list(box, src=0)
    later = dict(kw, link_tokens=(), repeats=1, warmup=0)   # the link measured once; the model is warm
    rows = []
    for _, chunk in _chunks(box[0], rounds):
        rows.append(serve.serve_rows(rank, loaded, chunk))
        bursts.append(measure_points(rank, loaded, **later))
    return bursts, busy, box[0], rows


def validate(model: str = DEFAULT_MODEL, trace=None, quick: bool = True, utilization: float = 0.5,
             workload: Traffic | None = None, timeout_s: float = 900, rounds: int | None = None):
    """Calibrate on this machine between chunks of a trace served for real, simulate the trace;
    (Validation, profile, calibration, real records, simulated records).

    Without `trace`, the requests come from `workload` at `utilization` of the capacity the first
    burst measured, so the real workers are loaded but not saturated (queueing would amplify any
    cost error). `rounds`: served chunks (5 quick, 8 full), each after a calibration burst.
    """
    workload = workload or validation_workload(quick)
    rounds = rounds or (5 if quick else 8)
    ranks = launch.run_ranks(_validate_worker, world_size=2, timeout_s=timeout_s,
                             args=(str(model), tuple(trace) if trace else None, workload, utilization, quick, rounds))
    bursts, busy, trace, rows0 = ranks.results[0]
    cal = merged(bursts)
    profile, contended = fit_profile(cal), fit_profile(busy, "measured next to a busy neighbour")
    cluster = Cluster("disagg", 1, 1, max_prefill_batch=1, max_decode_batch=1)
    real, sim, sim_busy = (), (), ()
    for (start, chunk), r0, r1 in zip(_chunks(trace, rounds), rows0, ranks.results[1][3]):
        real += _shifted(to_records(chunk, r0, r1), start)
        sim += _shifted(simulate(profile, cluster, chunk), start)
        sim_busy += _shifted(simulate(contended, cluster, chunk), start)
    step = [t for c in bursts for b, ctx, t in c.decode_points if (b, ctx) == cal.decode_points[0][:2]]
    v = replace(compare(real, sim, profile, sim_busy, contended), backend=ranks.backend, hosts=ranks.hosts,
                rounds=len(rows0), calibration_spread=max(step) / min(step))
    return v, profile, cal, real, sim


def compare(real: tuple[RequestRecord, ...], sim: tuple[RequestRecord, ...], profile: Profile,
            sim_contended: tuple[RequestRecord, ...] | None = None, contended: Profile | None = None) -> Validation:
    """Relative error of the simulated median TTFT and TPOT against the real run's.

    Also splits the error: service times alone (prefill, decode step: cost model and contention)
    vs the whole latency (service times amplified by queueing).
    """
    med = lambda recs, f: float(np.median([getattr(r, f) for r in recs]))  # noqa: E731
    rt, st, rp, sp = med(real, "ttft_s"), med(sim, "ttft_s"), med(real, "tpot_s"), med(sim, "tpot_s")
    pre = [profile.prefill_s([r.prompt_tokens]) / r.prefill_s - 1 for r in real]
    dec = [sum(profile.decode_step_s(1, r.prompt_tokens + 1 + j) for j in range(r.output_tokens - 1))
           / (r.finished_at_s - r.decode_started_at_s) - 1 for r in real if r.output_tokens > 1]
    sim_contended, contended = sim_contended or sim, contended or profile
    ct, cp = med(sim_contended, "ttft_s"), med(sim_contended, "tpot_s")
    p90 = lambda recs, f: float(np.percentile([getattr(r, f) for r in recs], 90))  # noqa: E731
    return Validation(len(real), rt, st, (st - rt) / rt, rp, sp, (sp - rp) / rp,
                      med(real, "transfer_s"), med(sim, "transfer_s"), float(np.median(pre)),
                      float(np.median(dec)), (ct - rt) / rt, (cp - rp) / rp,
                      contended.prefill_s([256]) / profile.prefill_s([256]),
                      contended.decode_step_s(1, 256) / profile.decode_step_s(1, 256),
                      os.getloadavg()[0], os.cpu_count() or 1, profile.source,
                      p90(sim, "ttft_s") / p90(real, "ttft_s") - 1, p90(sim, "tpot_s") / p90(real, "tpot_s") - 1)


