"""Benchmark (printed, never asserted): simulator speed, and its error against the real run.

1. Simulated requests per second of wall time, simple profile (aim >= 50k), for a few cluster
   shapes and loads; the machine's load average is printed next to it because this box is shared.
2. The simulator vs the real two-process run on the same requests (quick calibration + trace):
   relative error of the median TTFT and TPOT. Skip it with --no-real.
"""

import os
import sys
import time

from memlab.disaggregation.profiles import simple_profile
from memlab.disaggregation.simulator import Cluster, Workload, simulate


def sim_speed(cluster: Cluster, work: Workload, repeats: int = 3) -> tuple[float, float]:
    """Requests per wall second and per CPU second (best of `repeats`; CPU time shows what a
    shared, oversubscribed machine hides)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        simulate(simple_profile(), cluster, work)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return work.num_requests / wall, work.num_requests / cpu


def main() -> int:
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    cases = [("disagg 1P:1D, light load, 8 out tok", Cluster(), Workload(20_000, 5, 256, 0.5, 8, 0.5)),
             ("disagg 1P:1D, 32 out tok", Cluster(), Workload(20_000, 5, 256, 0.5, 32, 0.5)),
             ("disagg 4P:4D, 32 out tok, busy", Cluster("disagg", 4, 4), Workload(20_000, 40, 256, 0.5, 32, 0.5)),
             ("colocated 8 workers, 32 out tok, busy", Cluster("colocated", 4, 4), Workload(20_000, 40, 256, 0.5, 32, 0.5))]
    for name, cl, work in cases:
        rate, cpu_rate = sim_speed(cl, work)
        print(f"{name:40s} {rate:9,.0f} simulated req / wall s ({rate / 50_000:.2f}x the 50k aim); "
              f"{cpu_rate:9,.0f} per CPU s")
    if "--no-real" in sys.argv:
        return 0
    from memlab.disaggregation import validation
    t = time.perf_counter()
    v = validation.validate("smollm2-135m", quick=True)[0]
    print(f"sim vs real ({v.num_requests} requests, {time.perf_counter() - t:.0f} s wall): "
          f"median TTFT error {v.ttft_rel_error:+.1%} (real {v.real_ttft_p50_s:.3f} s, sim {v.sim_ttft_p50_s:.3f} s); "
          f"median TPOT error {v.tpot_rel_error:+.1%} (real {v.real_tpot_p50_s * 1e3:.1f} ms, "
          f"sim {v.sim_tpot_p50_s * 1e3:.1f} ms); service-time errors prefill {v.prefill_rel_error:+.1%}, "
          f"decode step {v.decode_step_rel_error:+.1%}; load average {v.load_avg_1m:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
